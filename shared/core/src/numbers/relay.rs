//! The `relay` destination (`docs/destinations.md`): Meta's payload, re-signed with the
//! destination's own secret in Meta's `X-Hub-Signature-256: sha256=<hex>` format, so that a bot
//! written for Meta's webhooks (pywa, n8n's WhatsApp trigger, Typebot) works behind wabridge
//! unchanged.
//!
//! Ingest splits each POST into one event per item and destinations filter per event, so each
//! delivery is Meta's envelope around one change holding that one item:
//! `{"object":"whatsapp_business_account","entry":[{"id":WABA,"changes":[{"value":…,"field":…}]}]}`.
//! The item (and its `contacts[]` entry) are Meta's bytes as received; `metadata` is Meta's.
//! Changes whose value is the item (template, quality, account updates) are Meta's value whole.

use std::sync::Arc;

use async_trait::async_trait;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::breaker::{Admit, CircuitBreaker};
use crate::consumer::{Handler, Outcome};
use crate::crm::{retry_delay, CrmError};
use crate::event::{Event, EventKind};
use crate::queue::Delivery;
use crate::signature::{sign, AppSecret};

/// Meta's `object` of WhatsApp webhooks.
const OBJECT: &str = crate::webhook::split::WHATSAPP_OBJECT;

/// The body a relay destination receives for `event`: Meta's envelope around its one change.
pub fn relay_body(event: &Event) -> String {
    let envelope = Envelope {
        object: OBJECT,
        entry: [Entry {
            id: &event.waba_id,
            time: event.entry_time,
            changes: [Change {
                value: ChangeValue(event),
                field: &event.field,
            }],
        }],
    };
    // Strings, numbers and already-valid raw JSON: serialising cannot fail.
    serde_json::to_string(&envelope).expect("a relay envelope serialises")
}

#[derive(Serialize)]
struct Envelope<'a> {
    object: &'static str,
    entry: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<i64>,
    changes: [Change<'a>; 1],
}

#[derive(Serialize)]
struct Change<'a> {
    value: ChangeValue<'a>,
    field: &'a str,
}

struct ChangeValue<'a>(&'a Event);

impl Serialize for ChangeValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let Some(member) = item_member(event) else {
            // The item is Meta's change value itself.
            return event.item.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("messaging_product", "whatsapp")?;
        if event.phone_number_id.is_some() || event.display_phone_number.is_some() {
            map.serialize_entry(
                "metadata",
                &Metadata {
                    display_phone_number: event.display_phone_number.as_deref(),
                    phone_number_id: event.phone_number_id.as_deref(),
                },
            )?;
        }
        if let Some(contact) = &event.contact {
            map.serialize_entry("contacts", &[contact])?;
        }
        map.serialize_entry(member, &[&event.item])?;
        map.end()
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    display_phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
}

/// The member of the change value that held the event's item (`messages`, `statuses`, …);
/// `None` when the item is the whole value.
fn item_member(event: &Event) -> Option<&'static str> {
    let has = |name: &str| item_has(&event.item, name);
    Some(match event.kind {
        EventKind::Message => "messages",
        EventKind::Status => "statuses",
        EventKind::Echo => "message_echoes",
        EventKind::UserPreference => "user_preferences",
        // A call's `statuses[]` item has a `status`; a `calls[]` item an `event`.
        EventKind::Call if has("status") && !has("event") => "statuses",
        EventKind::Call => "calls",
        // Split keeps a value it does not know whole; items of the message path carry no
        // `metadata`.
        EventKind::Unknown if has("metadata") || has("messaging_product") => return None,
        EventKind::Unknown => match event.field.as_str() {
            "messages" | "smb_message_echoes" | "calls" if has("code") && !has("id") => "errors",
            "messages" => "messages",
            "smb_message_echoes" => "message_echoes",
            "calls" => "calls",
            "user_preferences" => "user_preferences",
            _ => return None,
        },
        _ => return None,
    })
}

fn item_has(item: &RawValue, name: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(item.get())
        .is_ok_and(|m| m.contains_key(name))
}

/// Posts one relay body with its signature to the destination's URL. Answers are classified as
/// a CRM's are ([`CrmError`]): 429 with its delay, 5xx/408/timeouts/refused connections
/// transient, 401/403 a refused signature (waits for the secret to be fixed), other 4xx terminal.
#[async_trait]
pub trait RelayPost: Send + Sync {
    async fn post(&self, body: String, signature: String) -> Result<(), CrmError>;
}

/// The consumer of one relay destination's queue.
pub struct RelayHandler {
    name: String,
    secret: AppSecret,
    post: Arc<dyn RelayPost>,
    breaker: Arc<CircuitBreaker>,
}

impl RelayHandler {
    /// `None` when `secret` is empty: never send unsigned deliveries.
    pub fn new(name: &str, secret: &str, post: Arc<dyn RelayPost>) -> Option<RelayHandler> {
        Some(RelayHandler {
            name: name.to_string(),
            secret: AppSecret::new(secret)?,
            post,
            breaker: Arc::new(CircuitBreaker::new("destination")),
        })
    }

    /// The destination's breaker, which its worker paces itself by.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

#[async_trait]
impl Handler for RelayHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let name = &self.name;
        let event = match Event::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(format!("destination {name}: not an event: {e}")),
        };
        let admit = self.breaker.admit();
        if let Admit::Wait(wait) = admit {
            let after = wait.max(crate::retry::backoff(delivery.receive_count, None));
            return Outcome::retry(
                after,
                format!("destination {name}: unavailable (circuit open)"),
            );
        }
        let probe = admit == Admit::Probe;
        let body = relay_body(&event);
        let signature = sign(&self.secret, body.as_bytes());
        let error = match self.post.post(body, signature).await {
            Ok(()) => {
                self.breaker.success(probe);
                return Outcome::Done;
            }
            Err(e) => e,
        };
        if error.is_unavailable() {
            self.breaker.failure(probe);
        } else {
            self.breaker.success(probe);
        }
        let why = match &error {
            CrmError::RateLimited(_) => "rate limited (429)".to_string(),
            CrmError::Transient(m) => format!("unavailable: {m}"),
            CrmError::Unauthorized(m) => format!("refused our signature: {m}"),
            CrmError::Rejected(m) => format!("refused the delivery: {m}"),
        };
        tracing::warn!(destination = %name, event = %crate::redact::key(&event.key), reason = %why, "relay failed");
        match error {
            CrmError::Rejected(_) => Outcome::DeadLetter(format!("destination {name}: {why}")),
            e => Outcome::retry(
                retry_delay(&e, delivery.receive_count),
                format!("destination {name}: {why}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
