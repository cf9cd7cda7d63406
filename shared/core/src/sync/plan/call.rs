//! `calls`: each connect, status or terminate event becomes the `call` record of what it says
//! about its call, on the user's contact; stores merge them into one ([`crate::calls`]). Other
//! call events (a recording or transcript available) are kept raw as unknown records.

use crate::calls::CallRecord;
use crate::event::Event;
use crate::records::Record;
use crate::webhook::model::{CallEvent, Contact, Item};

use super::{IdentityOp, Plan, PlanError, Who};

pub(super) fn plan(event: &Event, call: CallEvent, contact: &Contact) -> Result<Plan, PlanError> {
    let user = call.user_wa_id(event.display_phone_number.as_deref());
    let who = Who::of(user, call.recipient_user_id.as_deref(), contact)?;
    let keys = who.keys();
    if keys.is_empty() {
        return Err(PlanError::Missing(
            "call event without a user: no from / to / recipient_id nor contacts[] entry",
        ));
    }
    let name = contact.profile.as_ref().and_then(|p| p.name.clone());
    let contact = who.contact(name, None, event.received_at);
    let step = call.event.as_deref().map(str::to_ascii_lowercase);
    if !call.is_status() && !matches!(step.as_deref(), Some("connect" | "terminate")) {
        // Another kind of call event (a recording or transcript available, ...): kept raw on
        // the person's contact, not read into the call.
        let mut plan = super::account::unknown(event, Item::Call(Box::new(call)));
        plan.identity = IdentityOp::Resolve(keys);
        plan.contact = Some(contact);
        return Ok(plan);
    }
    let record =
        CallRecord::of_event(&call).ok_or(PlanError::Missing("call event without an id"))?;
    Ok(Plan {
        identity: IdentityOp::Resolve(keys),
        contact: Some(contact),
        upsert_contact: false,
        records: vec![("call", Record::Call(record))],
        status: None,
        item: Item::Call(Box::new(call)),
    })
}
