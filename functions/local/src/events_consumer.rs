//! Interim consumer of the events queue (until the CRM sync replaces it): every accepted event
//! becomes a record in the local store, keyed by its event key, so `wabridge records --json`
//! shows what ingest accepted, including `"kind":"unknown"` events we do not map yet.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use wabridge_core::adapters::sqlite::SqliteRecords;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::event::Event;
use wabridge_core::queue::Delivery;

pub struct EventRecords {
    pub records: SqliteRecords,
}

/// The record an event becomes.
pub fn record_of(event: &Event) -> Value {
    let item: Value = serde_json::from_str(event.item.get()).unwrap_or(Value::Null);
    json!({
        "kind": event.kind.as_str(),
        "event_key": event.key,
        "field": event.field,
        "waba_id": event.waba_id,
        "item": item,
    })
}

#[async_trait]
impl Handler for EventRecords {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match Event::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(format!("queue body is not an event: {e}")),
        };
        // Upsert by (kind, key): a redelivered event rewrites the same record, never a second one.
        match self
            .records
            .upsert(event.kind.as_str(), &event.key, record_of(&event))
            .await
        {
            Ok(_) => Outcome::Done,
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "record write failed; will retry");
                Outcome::RetryAfter(Duration::from_secs(1))
            }
            Err(e) => Outcome::DeadLetter(e.to_string()),
        }
    }
}
