//! Splits a webhook POST body into [`Event`]s: one per entry × change × item, nothing dropped.
//!
//! # Speed
//! This runs on every delivery, after the signature check, so it borrows: the envelope is read
//! into structs of `Cow<str>` / `&RawValue` pointing into the body, and each item is copied once,
//! byte for byte, into its event. No `serde_json::Value` tree is built on the success path
//! (only to explain a malformed body, see [`SplitError`]).
//!
//! # What becomes an event
//! - `messages` field: each `messages[]` item (kind `message`, or `unknown` for a type we do not
//!   model), each `statuses[]` item (kind `status`), each change-level `errors[]` item (kind
//!   `unknown`). A message or status gets the `contacts[]` item whose `wa_id` / `user_id` matches
//!   its `from` / `from_user_id` (`recipient_id` / `recipient_user_id` for statuses); one that
//!   names no one gets the change's `contacts[]` item when there is exactly one.
//! - `user_preferences` field: each `user_preferences[]` item (kind `user_preference`).
//! - `smb_message_echoes` field: each `message_echoes[]` item (kind `echo`: a message the
//!   business sent, edited or deleted from the WhatsApp Business app), with the `contacts[]`
//!   item of the user it was sent to (`to`, or `from` when `to` is the business number).
//! - `calls` field: each `calls[]` item (connect, terminate) and each `statuses[]` item of a
//!   business-initiated call (kind `call`), with the user's `contacts[]` item; change-level
//!   `errors[]` as `unknown`.
//! - `message_template_status_update`, `phone_number_quality_update`, `account_update`: the value
//!   itself (one event).
//! - any other field (groups, `account_alerts`, …): the value itself, kind `unknown`.
//! - a `messages` / `user_preferences` / `smb_message_echoes` / `calls` value with members we do not know (or with no items at all)
//!   also yields the whole value as one `unknown` event, so a new kind of item is never dropped.
//!
//! # Dedupe keys
//! Stable across Meta's retries of the same delivery (which resend the same bytes), distinct for
//! distinct events:
//! - message: `m:{message id}` (also for unknown message types, edits, revokes and echoes);
//! - call: `c:{call id}:{event}` (`connect`, `terminate`) or `c:{call id}:status:{status}`;
//! - status: `s:{message id}:{status}` (each step of a message's life is its own event);
//! - template status: `t:{message_template_id}:{event}:{entry.time}`;
//! - quality update: `q:{waba id}:{display_phone_number}:{event}:{entry.time}`;
//! - account update: `a:{waba id}:{phone_number or "-"}:{event}:{entry.time}`;
//! - user preference: `p:{wa_id or user_id}:{category}:{value}:{timestamp}`;
//! - anything else, or when a part of the natural key is missing: `h:{field}:{hash}` where
//!   `hash` is the hex SHA-256 (first 128 bits) of the WABA id, `entry.time` and the item's raw
//!   bytes.
//!
//! A key longer than [`MAX_KEY_LEN`] bytes is replaced by `x:{SHA-256 of the key}`, so the key
//! fits every store (DynamoDB limits keys to 2 KB).

mod items;
#[cfg(test)]
mod tests;
mod views;

use thiserror::Error;

use crate::event::Event;
use items::Ctx;
use views::*;

/// The only `object` WhatsApp webhooks carry.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// Longest dedupe key kept as is.
pub const MAX_KEY_LEN: usize = 256;

/// Why a body is not a WhatsApp webhook envelope. Answered as a 400 with [`SplitError::code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SplitError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON object")]
    NotAnObject,
    #[error(
        "\"object\" is missing; a WhatsApp webhook has \"object\": \"whatsapp_business_account\""
    )]
    MissingObject,
    #[error("\"object\" is {0}, expected \"whatsapp_business_account\"")]
    WrongObject(String),
    #[error("\"entry\" array is missing")]
    MissingEntry,
    #[error("\"entry\" must be an array")]
    EntryNotArray,
    #[error("entry[{0}] must be an object")]
    EntryNotObject(usize),
    #[error("entry[{0}] has no \"id\" (string or number)")]
    EntryWithoutId(usize),
    #[error("entry[{0}] has no \"changes\" array")]
    EntryWithoutChanges(usize),
    #[error("entry[{0}].changes[{1}] must be an object")]
    ChangeNotObject(usize, usize),
    #[error("entry[{0}].changes[{1}] has no \"field\" string")]
    ChangeWithoutField(usize, usize),
    #[error("entry[{0}].changes[{1}] has no \"value\"")]
    ChangeWithoutValue(usize, usize),
    #[error("body does not have the shape of a WhatsApp webhook: {0}")]
    Malformed(String),
}

impl SplitError {
    /// Stable machine code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            SplitError::NotJson(_) => "invalid_json",
            SplitError::NotAnObject
            | SplitError::MissingObject
            | SplitError::WrongObject(_)
            | SplitError::Malformed(_) => "not_whatsapp_envelope",
            SplitError::MissingEntry | SplitError::EntryNotArray => "missing_entry",
            SplitError::EntryNotObject(_)
            | SplitError::EntryWithoutId(_)
            | SplitError::EntryWithoutChanges(_) => "invalid_entry",
            SplitError::ChangeNotObject(..)
            | SplitError::ChangeWithoutField(..)
            | SplitError::ChangeWithoutValue(..) => "invalid_change",
        }
    }
}

/// Splits a webhook body into events. `received_at_ms` is stamped on every event.
pub fn split(body: &[u8], received_at_ms: i64) -> Result<Vec<Event>, SplitError> {
    // Derived struct deserializers also take arrays; the envelope must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let not_object = serde::de::Error::custom("body is not a JSON object");
        return Err(diagnose(body, not_object));
    }
    let envelope: EnvelopeB<'_> = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => return Err(diagnose(body, e)),
    };
    match envelope.object.as_deref() {
        Some(WHATSAPP_OBJECT) => {}
        Some(other) => {
            return Err(SplitError::WrongObject(
                serde_json::to_string(other).unwrap_or_default(),
            ))
        }
        None => return Err(SplitError::MissingObject),
    }
    let entries = envelope.entry.ok_or(SplitError::MissingEntry)?;

    let mut events = Vec::new();
    for (ei, entry) in entries.iter().enumerate() {
        let waba_id = text(&entry.id).ok_or(SplitError::EntryWithoutId(ei))?;
        let changes = entry
            .changes
            .as_ref()
            .ok_or(SplitError::EntryWithoutChanges(ei))?;
        for (ci, change) in changes.iter().enumerate() {
            let field = change
                .field
                .as_deref()
                .ok_or(SplitError::ChangeWithoutField(ei, ci))?;
            let value = change.value.ok_or(SplitError::ChangeWithoutValue(ei, ci))?;
            let mut ctx = Ctx {
                waba_id,
                entry_time: entry.time,
                field,
                received_at_ms,
                phone_number_id: None,
                display_phone_number: None,
                out: &mut events,
            };
            ctx.split_change(value);
        }
    }
    Ok(events)
}

/// Works out, on the slow path, why a body did not read as an envelope.
fn diagnose(body: &[u8], fast_error: serde_json::Error) -> SplitError {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return SplitError::NotJson(e.to_string()),
    };
    let Some(obj) = v.as_object() else {
        return SplitError::NotAnObject;
    };
    match obj.get("object") {
        None | Some(serde_json::Value::Null) => return SplitError::MissingObject,
        Some(serde_json::Value::String(s)) if s == WHATSAPP_OBJECT => {}
        Some(other) => return SplitError::WrongObject(other.to_string()),
    }
    let entries = match obj.get("entry") {
        None | Some(serde_json::Value::Null) => return SplitError::MissingEntry,
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => return SplitError::EntryNotArray,
    };
    for (ei, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            return SplitError::EntryNotObject(ei);
        };
        if !matches!(
            entry.get("id"),
            Some(serde_json::Value::String(_) | serde_json::Value::Number(_))
        ) {
            return SplitError::EntryWithoutId(ei);
        }
        let Some(changes) = entry.get("changes").and_then(|c| c.as_array()) else {
            return SplitError::EntryWithoutChanges(ei);
        };
        for (ci, change) in changes.iter().enumerate() {
            let Some(change) = change.as_object() else {
                return SplitError::ChangeNotObject(ei, ci);
            };
            if !matches!(change.get("field"), Some(serde_json::Value::String(_))) {
                return SplitError::ChangeWithoutField(ei, ci);
            }
        }
    }
    SplitError::Malformed(fast_error.to_string())
}
