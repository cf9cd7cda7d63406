//! wabridge's own `send_result` events (see `sends::events`): a send that ended without a status
//! webhook becomes one outbound activity with its final state and error; Meta's 131050 becomes a
//! marketing opt-out consent record whose evidence names the send. Its own `consent` events (a
//! consent recorded through `POST /consents`) become one consent record.

use serde_json::json;

use crate::consent::{ConsentAction, ConsentCategory, ConsentEntry, META_STOPPED_MARKETING};
use crate::event::{Event, SendResultItem};
use crate::identity::{Bsuid, IdentityKey, Phone};
use crate::records::{
    ActivityRecord, ConsentRecord, ConsentSource, ConsentStatus, Direction, Record, StatusError,
};
use crate::webhook::model::Item;

use super::{meta_opt_out, nonempty, IdentityOp, Plan, PlanError, Who};

pub(super) fn plan(event: &Event, result: SendResultItem) -> Result<Plan, PlanError> {
    if result.send_id.is_empty() {
        return Err(PlanError::Missing("send_result without send_id"));
    }
    let phone = nonempty(result.to.as_deref())
        .map(|t| Phone::parse(t, None).or_else(|_| Phone::from_wa_id(t)))
        .transpose()?;
    let bsuid = nonempty(result.recipient.as_deref())
        .map(Bsuid::parse)
        .transpose()?;
    let mut who = Who { phone, bsuid };
    let mut keys = who.keys();
    if keys.is_empty() {
        // Only the stored contact key: resolve the person by it.
        let key = nonempty(result.contact.as_deref())
            .and_then(IdentityKey::from_stored)
            .ok_or(PlanError::Missing(
                "send_result without to, recipient nor contact",
            ))?;
        if let IdentityKey::Bsuid(b) = &key {
            who.bsuid = Bsuid::parse(b).ok();
        }
        keys.push(key);
    }
    let at = result.at.or(Some(event.received_at));
    let message = result.error.as_ref().map(|e| e.message.clone());
    let record = if result.opted_out {
        let evidence =
            json!({"send_id": result.send_id, "code": META_STOPPED_MARKETING, "message": message});
        (
            "consent",
            Record::Consent(meta_opt_out(event, evidence, at)),
        )
    } else {
        let state = nonempty(result.state.as_deref())
            .ok_or(PlanError::Missing("send_result without state"))?;
        let errors = result
            .error
            .iter()
            .map(|e| StatusError {
                code: e.code.strip_prefix("meta_").and_then(|n| n.parse().ok()),
                title: Some(e.code.clone()),
                message: Some(e.message.clone()),
                details: None,
            })
            .collect();
        let activity = ActivityRecord {
            event_id: event.key.clone(),
            kind: "send_result".into(),
            direction: Some(Direction::Outbound),
            message_id: result.wamid.clone(),
            at,
            text: result.template.as_ref().map(|t| match &result.language {
                Some(l) => format!("template {t} ({l})"),
                None => format!("template {t}"),
            }),
            status: Some(state.to_string()),
            errors,
            send_id: Some(result.send_id.clone()),
            ..Default::default()
        };
        ("activity", Record::Activity(activity))
    };
    Ok(Plan {
        identity: IdentityOp::Resolve(keys),
        contact: Some(who.contact(None, None, event.received_at)),
        upsert_contact: false,
        records: vec![record],
        status: None,
        item: Item::SendResult(Box::new(result)),
    })
}

/// A consent recorded through the API: one consent record for the contact it names.
pub(super) fn consent(event: &Event, entry: ConsentEntry) -> Result<Plan, PlanError> {
    let key = IdentityKey::from_stored(&entry.contact)
        .ok_or(PlanError::Missing("consent without a contact key"))?;
    let who = match &key {
        IdentityKey::Phone(_) => Who {
            phone: Some(Phone::parse(&entry.to, None)?),
            bsuid: None,
        },
        IdentityKey::Bsuid(b) => Who {
            phone: None,
            bsuid: Some(Bsuid::parse(b)?),
        },
    };
    let source = match entry.source {
        crate::consent::ConsentSource::WebForm => ConsentSource::WebForm,
        crate::consent::ConsentSource::Checkout => ConsentSource::Checkout,
        crate::consent::ConsentSource::Store => ConsentSource::Store,
        crate::consent::ConsentSource::Agent => ConsentSource::Agent,
        _ => {
            return Err(PlanError::Missing(
                "consent event from a source the API does not take",
            ))
        }
    };
    let record = ConsentRecord {
        v: Default::default(),
        event_id: event.key.clone(),
        contact_id: String::new(),
        status: match entry.action {
            ConsentAction::OptIn => ConsentStatus::OptIn,
            ConsentAction::OptOut => ConsentStatus::OptOut,
        },
        category: match entry.category {
            ConsentCategory::Marketing => "marketing_messages",
            ConsentCategory::Utility => "utility_messages",
        }
        .into(),
        source,
        evidence: json!({"consent_id": entry.id, "evidence": entry.evidence}),
        at: Some(entry.at),
    };
    Ok(Plan {
        identity: IdentityOp::Resolve(vec![key]),
        contact: Some(who.contact(None, None, event.received_at)),
        upsert_contact: false,
        records: vec![("consent", Record::Consent(record))],
        status: None,
        item: Item::Consent(Box::new(entry)),
    })
}
