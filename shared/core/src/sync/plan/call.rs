//! `calls`: each connect, status or terminate event becomes the `call` record of what it says
//! about its call, on the user's contact; stores merge them into one ([`crate::calls`]).

use crate::calls::CallRecord;
use crate::event::Event;
use crate::records::Record;
use crate::webhook::model::{CallEvent, Contact, Item};

use super::{IdentityOp, Plan, PlanError, Who};

pub(super) fn plan(event: &Event, call: CallEvent, contact: &Contact) -> Result<Plan, PlanError> {
    let record =
        CallRecord::of_event(&call).ok_or(PlanError::Missing("call event without an id"))?;
    let user = call.user_wa_id(event.display_phone_number.as_deref());
    let who = Who::of(user, call.recipient_user_id.as_deref(), contact)?;
    let keys = who.keys();
    if keys.is_empty() {
        return Err(PlanError::Missing(
            "call event without a user: no from / to / recipient_id nor contacts[] entry",
        ));
    }
    let name = contact.profile.as_ref().and_then(|p| p.name.clone());
    Ok(Plan {
        identity: IdentityOp::Resolve(keys),
        contact: Some(who.contact(name, None, event.received_at)),
        upsert_contact: false,
        records: vec![("call", Record::Call(record))],
        status: None,
        item: Item::Call(Box::new(call)),
    })
}
