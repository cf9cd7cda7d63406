//! `statuses[]`: what happened to a message we sent.

use serde_json::json;

use crate::consent::META_STOPPED_MARKETING;
use crate::event::Event;
use crate::records::{ActivityRecord, Direction, Record, StatusError};
use crate::webhook::model::{Item, Status, StatusKind};

use super::{meta_opt_out, ms, nonempty, IdentityOp, Plan, PlanError, Who};

pub(super) fn plan(event: &Event, status: Status) -> Result<Plan, PlanError> {
    // A message sent to a group: `recipient_id` is the group's id, not a phone. Its status
    // belongs to the group's message (one record per message, moving forward), not to a person.
    let group_id = status
        .is_group()
        .then(|| nonempty(status.recipient_id.as_deref()).map(str::to_string))
        .flatten();
    if status.is_group() && group_id.is_none() {
        return Err(PlanError::Missing("group status without recipient_id"));
    }
    let who = if group_id.is_some() {
        None
    } else {
        Some(Who::new(
            status.recipient_id.as_deref(),
            status.recipient_user_id.as_deref(),
        )?)
    };
    let keys = who.as_ref().map(Who::keys).unwrap_or_default();
    if who.is_some() && keys.is_empty() {
        return Err(PlanError::Missing(
            "status without recipient_id nor recipient_user_id",
        ));
    }
    let message_id = nonempty(status.id.as_deref())
        .ok_or(PlanError::Missing("status without id"))?
        .to_string();
    let kind = status
        .status
        .ok_or(PlanError::Missing("status without status"))?;
    let errors: Vec<StatusError> = status
        .errors
        .iter()
        .map(|e| StatusError {
            code: e.code,
            title: e.title.clone(),
            message: e.message.clone(),
            details: e.error_data.as_ref().and_then(|d| d.details.clone()),
        })
        .collect();
    let callback_data = nonempty(status.biz_opaque_callback_data.as_deref()).map(str::to_string);
    // Our sends carry their id as callback data (see `sends::request`).
    let send_id = callback_data.clone().filter(|d| d.starts_with("snd_"));
    // Meta's 131050 (the user stopped marketing messages) on a message that is not one of our
    // sends by its callback data (sent by another tool on the same number, or ours without it)
    // is a marketing opt-out the CRM must see; for a send named by its callback data the sender
    // reports it (`Sends::apply_status`), so exactly one route does.
    let stopped_marketing = kind == StatusKind::Failed
        && errors
            .iter()
            .any(|e| e.code == Some(META_STOPPED_MARKETING));
    let at = ms(status.timestamp);
    // A group names no person whose consent this is.
    let opt_out = (stopped_marketing && send_id.is_none() && who.is_some()).then(|| {
        meta_opt_out(
            event,
            json!({"message_id": message_id, "code": META_STOPPED_MARKETING}),
            at.or(Some(event.received_at)),
        )
    });
    let activity = ActivityRecord {
        event_id: event.key.clone(),
        kind: "status".into(),
        direction: Some(Direction::Outbound),
        message_id: Some(message_id.clone()),
        at,
        // Kept as Meta named it, also a status we do not model yet.
        status: Some(status_name(&event.item, kind)),
        errors,
        pricing_category: status.pricing.as_ref().and_then(|p| p.category.clone()),
        callback_data,
        send_id,
        group_id,
        ..Default::default()
    };
    let mut records = vec![("status", Record::Activity(activity))];
    if let Some(consent) = opt_out {
        records.push(("consent", Record::Consent(consent)));
    }
    Ok(Plan {
        identity: match who {
            Some(_) => IdentityOp::Resolve(keys),
            None => IdentityOp::None,
        },
        contact: who.map(|w| w.contact(None, None, event.received_at)),
        upsert_contact: false,
        records,
        status: Some((message_id, kind)),
        item: Item::Status(Box::new(status)),
    })
}

/// The status's name: the typed one, or for a status Meta added since, the raw `status` string.
fn status_name(raw: &serde_json::value::RawValue, kind: StatusKind) -> String {
    if kind != StatusKind::Unknown {
        return kind.as_str().to_string();
    }
    #[derive(serde::Deserialize)]
    struct Name {
        status: String,
    }
    serde_json::from_str::<Name>(raw.get()).map_or_else(|_| kind.as_str().to_string(), |n| n.status)
}
