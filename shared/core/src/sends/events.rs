//! [`QueueEvents`]: the sender tells the CRM how a send ended by putting a synthesized
//! [`EventKind::SendResult`] event on the EVENTS queue, which crm-sync turns into CRM records
//! through the effects ledger like every webhook event (see `sync::plan`):
//!
//! - a send that ended without a status webhook (refused by a guard, failed at Meta's API, gave
//!   up after retries) → one outbound `activity` record (`type` `send_result`, `status` the final
//!   state, `errors[0]` the stable code and sentence, `send_id`); key `send:{id}:{state}`;
//! - Meta's 131050 (the user stopped marketing messages) → a `consent` record (opt-out, source
//!   `meta_error`, evidence the send id); key `send:{id}:opted_out`.
//!
//! The keys are stable, so emitting twice (a sender retry after a failed enqueue, a redelivered
//! send) still lands each record once: the ledger's effect ids derive from the event key.
//!
//! Sends that reached Meta end through status webhooks, whose activities already carry the
//! send id; they are not reported again here.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::consent::ConsentEntry;
use crate::error::StoreError;
use crate::event::{Event, EventKind, SendResultError, SendResultItem};
use crate::queue::Queue;
use crate::sends::service::SendEvents;
use crate::sends::store::SendRecord;

/// `Event.field` of send results.
pub const FIELD: &str = "send_result";

/// [`SendEvents`] over the EVENTS queue.
pub struct QueueEvents {
    queue: Arc<dyn Queue>,
}

impl QueueEvents {
    pub fn new(events_queue: Arc<dyn Queue>) -> QueueEvents {
        QueueEvents {
            queue: events_queue,
        }
    }
}

/// The send_result event of `key` carrying `item`.
pub fn event(key: String, item: &SendResultItem) -> Event {
    Event::own(key, EventKind::SendResult, FIELD, item)
}

/// The send_result event of a finished send: under the number it was sent `from` (a registry's
/// phone_number_id), so crm-sync lands it in that number's CRM.
pub fn finished_event(record: &SendRecord) -> Event {
    let key = format!("send:{}:{}", record.id, record.state.as_str());
    Event {
        phone_number_id: request_str(record, "from"),
        ..event(key, &finished_item(record))
    }
}

/// A string member of the stored request (`to`, `recipient`, `name`).
fn request_str(record: &SendRecord, key: &str) -> Option<String> {
    record
        .request
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The item of a finished send (see the module docs).
pub fn finished_item(record: &SendRecord) -> SendResultItem {
    SendResultItem {
        send_id: record.id.clone(),
        state: Some(record.state.as_str().to_string()),
        contact: Some(record.contact.clone()),
        at: Some(record.updated_at),
        to: request_str(record, "to"),
        recipient: request_str(record, "recipient"),
        template: request_str(record, "name"),
        language: request_str(record, "language"),
        wamid: record.wamid.clone(),
        error: record.error.as_ref().map(|e| SendResultError {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        opted_out: false,
    }
}

#[async_trait]
impl SendEvents for QueueEvents {
    async fn finished(&self, record: &SendRecord) -> Result<(), StoreError> {
        let event = finished_event(record);
        self.queue.send_batch(&[event.to_message()]).await
    }

    async fn opted_out(&self, record: &SendRecord) -> Result<(), StoreError> {
        let event = opted_out_event(record);
        self.queue.send_batch(&[event.to_message()]).await
    }

    async fn consent_recorded(&self, entry: &ConsentEntry) -> Result<(), StoreError> {
        let event = consent_event(entry);
        self.queue.send_batch(&[event.to_message()]).await
    }
}

/// The report of a send refused with 131050: under the number it went from, as its other
/// results.
pub fn opted_out_event(record: &SendRecord) -> Event {
    let contact = super::status::contact_of_record(record);
    let mut item = SendResultItem {
        send_id: record.id.clone(),
        opted_out: true,
        contact: Some(contact.key.clone()),
        at: Some(crate::clock::now_ms()),
        error: Some(SendResultError {
            code: "meta_131050".into(),
            message: "the user stopped marketing messages".into(),
        }),
        ..Default::default()
    };
    match contact.identity_key() {
        Some(crate::identity::IdentityKey::Bsuid(b)) => item.recipient = Some(b),
        Some(crate::identity::IdentityKey::Phone(_)) if contact.display.starts_with('+') => {
            item.to = Some(contact.display.clone())
        }
        _ => {}
    }
    Event {
        phone_number_id: request_str(record, "from"),
        ..event(format!("send:{}:opted_out", record.id), &item)
    }
}

/// A consent recorded through `POST /consents`: under the number it was given on (`number`), so
/// crm-sync lands it in that number's CRM.
pub fn consent_event(entry: &ConsentEntry) -> Event {
    Event {
        phone_number_id: entry.number.clone(),
        ..Event::own(
            format!("consent:{}", entry.id),
            EventKind::Consent,
            "consent",
            entry,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::ConsentKeywords;
    use crate::records::{ConsentSource, Direction, Record};
    use crate::sends::store::{SendError, SendState};
    use crate::sync::plan::{plan, IdentityOp};
    use serde_json::json;

    fn record(state: SendState, code: &str) -> SendRecord {
        SendRecord {
            id: "snd_1".into(),
            idempotency_key: None,
            request_hash: "h".into(),
            request: json!({"to": "+525512345678", "contact": "phone:525512345678",
                            "type": "template", "name": "promo", "language": "es_MX"}),
            contact: "phone:525512345678".into(),
            state,
            error: Some(SendError {
                code: code.into(),
                message: "why".into(),
            }),
            wamid: None,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn a_finished_send_becomes_one_outbound_activity() {
        for (state, code, numeric) in [
            (SendState::Refused, "marketing_opted_out", None),
            (SendState::Failed, "meta_131026", Some(131026)),
        ] {
            let r = record(state, code);
            let e = finished_event(&r);
            assert_eq!(e.key, format!("send:snd_1:{}", state.as_str()));
            assert_eq!(e.phone_number_id, None, "the one number's send names none");
            let back = Event::from_json(&e.to_json()).unwrap();
            assert_eq!(back.kind, EventKind::SendResult);
            let p = plan(&back, &ConsentKeywords::default()).unwrap();
            assert!(
                matches!(&p.identity, IdentityOp::Resolve(k) if k.len() == 1),
                "{:?}",
                p.identity
            );
            assert_eq!(p.records.len(), 1);
            let Record::Activity(a) = &p.records[0].1 else {
                panic!("{:?}", p.records)
            };
            assert_eq!(p.records[0].0, "activity");
            assert_eq!(a.kind, "send_result");
            assert_eq!(a.direction, Some(Direction::Outbound));
            assert_eq!(a.status.as_deref(), Some(state.as_str()));
            assert_eq!(a.send_id.as_deref(), Some("snd_1"));
            assert_eq!(a.errors[0].code, numeric);
            assert_eq!(a.errors[0].title.as_deref(), Some(code));
            assert_eq!(a.errors[0].message.as_deref(), Some("why"));
            assert_eq!(a.at, Some(2));
            // The template and the language it went in (chosen by country or given).
            assert_eq!(a.text.as_deref(), Some("template promo (es_MX)"));
        }
    }

    #[test]
    fn a_send_from_a_registered_number_reports_under_that_number() {
        let mut r = record(SendState::Failed, "meta_131026");
        r.request["from"] = json!("206540352242922");
        let e = Event::from_json(&finished_event(&r).to_json()).unwrap();
        assert_eq!(e.phone_number_id.as_deref(), Some("206540352242922"));
    }

    #[test]
    fn opt_outs_and_consents_report_under_their_number() {
        let mut r = record(SendState::Failed, "meta_131050");
        assert_eq!(opted_out_event(&r).phone_number_id, None, "the one number");
        r.request["from"] = json!("206540352242922");
        let e = Event::from_json(&opted_out_event(&r).to_json()).unwrap();
        assert_eq!(e.phone_number_id.as_deref(), Some("206540352242922"));
        let entry = crate::consent::ConsentEntry {
            id: "con_1".into(),
            contact: "phone:525512345678".into(),
            to: "+525512345678".into(),
            category: crate::consent::ConsentCategory::Marketing,
            action: crate::consent::ConsentAction::OptIn,
            source: crate::consent::ConsentSource::Agent,
            evidence: None,
            at: 1,
            recorded_at: 1,
            number: Some("106540352242922".into()),
        };
        let e = Event::from_json(&consent_event(&entry).to_json()).unwrap();
        assert_eq!(e.phone_number_id.as_deref(), Some("106540352242922"));
    }

    #[test]
    fn an_opt_out_report_becomes_a_consent_record() {
        let item = SendResultItem {
            send_id: "snd_9".into(),
            opted_out: true,
            recipient: Some("MX.abc".into()),
            at: Some(5),
            ..Default::default()
        };
        let e = event("send:snd_9:opted_out".into(), &item);
        let p = plan(&e, &ConsentKeywords::default()).unwrap();
        let Record::Consent(c) = &p.records[0].1 else {
            panic!("{:?}", p.records)
        };
        assert_eq!(c.source, ConsentSource::MetaError);
        assert_eq!(c.evidence["send_id"], "snd_9");
        assert_eq!(c.at, Some(5));
        // A report naming nobody can never be processed: dead letter.
        let item = SendResultItem {
            send_id: "x".into(),
            state: Some("failed".into()),
            ..Default::default()
        };
        let e = event("send:x:failed".into(), &item);
        assert!(plan(&e, &ConsentKeywords::default()).is_err());
    }
}
