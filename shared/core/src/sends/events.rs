//! [`QueueEvents`]: the sender tells the CRM how a send ended by putting a synthesized
//! [`EventKind::SendResult`] event on the EVENTS queue, which crm-sync turns into CRM records
//! through the effects ledger like every webhook event (see `sync::build`):
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
use serde_json::{json, Value};

use crate::consent::ContactRef;
use crate::error::StoreError;
use crate::event::{Event, EventKind, EVENT_VERSION};
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

    async fn put(&self, key: String, item: Value) -> Result<(), StoreError> {
        let event = event(key, item);
        self.queue.send_batch(&[event.to_message()]).await
    }
}

/// The send_result event of `key` carrying `item`.
pub fn event(key: String, item: Value) -> Event {
    let raw = serde_json::value::to_raw_value(&item).expect("JSON values serialise");
    Event {
        v: EVENT_VERSION,
        key,
        kind: EventKind::SendResult,
        field: FIELD.into(),
        waba_id: String::new(),
        entry_time: None,
        phone_number_id: None,
        display_phone_number: None,
        contact: None,
        item: raw,
        received_at: crate::clock::now_ms(),
    }
}

/// Who a send was addressed to: `to` (E.164), `recipient` (BSUID) and the contact key.
fn addressee(record: &SendRecord) -> (Option<String>, Option<String>) {
    let get = |k: &str| {
        record
            .request
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (get("to"), get("recipient"))
}

/// The item of a finished send (see the module docs).
pub fn finished_item(record: &SendRecord) -> Value {
    let (to, recipient) = addressee(record);
    let mut item = json!({
        "send_id": record.id,
        "state": record.state.as_str(),
        "contact": record.contact,
        "at": record.updated_at,
    });
    if let Some(to) = to {
        item["to"] = json!(to);
    }
    if let Some(r) = recipient {
        item["recipient"] = json!(r);
    }
    if let Some(name) = record.request.get("name").and_then(Value::as_str) {
        item["template"] = json!(name);
    }
    if let Some(w) = &record.wamid {
        item["wamid"] = json!(w);
    }
    if let Some(e) = &record.error {
        item["error"] = json!({"code": e.code, "message": e.message});
    }
    item
}

#[async_trait]
impl SendEvents for QueueEvents {
    async fn finished(&self, record: &SendRecord) -> Result<(), StoreError> {
        self.put(
            format!("send:{}:{}", record.id, record.state.as_str()),
            finished_item(record),
        )
        .await
    }

    async fn opted_out(&self, contact: &ContactRef, send_id: &str) -> Result<(), StoreError> {
        let mut item = json!({
            "send_id": send_id,
            "opted_out": true,
            "contact": contact.key,
            "at": crate::clock::now_ms(),
            "error": {"code": "meta_131050", "message": "the user stopped marketing messages"},
        });
        match contact.identity_key() {
            Some(crate::identity::IdentityKey::Bsuid(b)) => item["recipient"] = json!(b),
            Some(crate::identity::IdentityKey::Phone(_)) if contact.display.starts_with('+') => {
                item["to"] = json!(contact.display)
            }
            _ => {}
        }
        self.put(format!("send:{send_id}:opted_out"), item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::ConsentKeywords;
    use crate::records::{ConsentSource, Direction, Record};
    use crate::sends::store::{SendError, SendState};
    use crate::sync::build::{plan, IdentityOp};

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
            let e = event(
                format!("send:{}:{}", r.id, state.as_str()),
                finished_item(&r),
            );
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
        }
    }

    #[test]
    fn an_opt_out_report_becomes_a_consent_record() {
        let e = event(
            "send:snd_9:opted_out".into(),
            json!({"send_id": "snd_9", "opted_out": true, "recipient": "MX.abc", "at": 5}),
        );
        let p = plan(&e, &ConsentKeywords::default()).unwrap();
        let Record::Consent(c) = &p.records[0].1 else {
            panic!("{:?}", p.records)
        };
        assert_eq!(c.source, ConsentSource::MetaError);
        assert_eq!(c.evidence["send_id"], "snd_9");
        assert_eq!(c.at, Some(5));
        // A report naming nobody can never be processed: dead letter.
        let e = event(
            "send:x:failed".into(),
            json!({"send_id": "x", "state": "failed"}),
        );
        assert!(plan(&e, &ConsentKeywords::default()).is_err());
    }
}
