//! wabridge's own `media_result` events (see `media::job`): one `media` record for the contact
//! the job named, found by its stored identity key (the contact is not written again).

use crate::event::Event;
use crate::identity::{Bsuid, IdentityKey, Phone};
use crate::media::job::MediaResultItem;
use crate::media::record::MediaRecord;
use crate::records::Record;
use crate::webhook::model::Item;

use super::{IdentityOp, Plan, PlanError, Who};

pub(super) fn plan(event: &Event, result: MediaResultItem) -> Result<Plan, PlanError> {
    if result.media_id.is_empty() || result.activity_event_id.is_empty() {
        return Err(PlanError::Missing(
            "media_result without media_id or activity_event_id",
        ));
    }
    let key = IdentityKey::from_stored(&result.contact)
        .ok_or(PlanError::Missing("media_result without a contact key"))?;
    let who = match &key {
        IdentityKey::Phone(p) => Who {
            phone: Some(Phone::parse(p, None).or_else(|_| Phone::from_wa_id(p))?),
            bsuid: None,
        },
        IdentityKey::Bsuid(b) => Who {
            phone: None,
            bsuid: Some(Bsuid::parse(b)?),
        },
    };
    let record = MediaRecord {
        v: Default::default(),
        event_id: event.key.clone(),
        activity_event_id: result.activity_event_id.clone(),
        contact_id: String::new(),
        message_id: result.message_id.clone(),
        media_id: result.media_id.clone(),
        kind: result.kind.as_str().into(),
        state: result.state,
        stored: result.stored.clone(),
        error: result.error.clone(),
        at: result.at,
    };
    Ok(Plan {
        identity: IdentityOp::Resolve(vec![key]),
        contact: Some(who.contact(None, None, event.received_at)),
        upsert_contact: false,
        records: vec![("media", Record::Media(record))],
        status: None,
        item: Item::MediaResult(Box::new(result)),
    })
}
