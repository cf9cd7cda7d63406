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
//!   its `from` / `from_user_id` (`recipient_id` / `recipient_user_id` for statuses).
//! - `user_preferences` field: each `user_preferences[]` item (kind `user_preference`).
//! - `message_template_status_update`, `phone_number_quality_update`, `account_update`: the value
//!   itself (one event).
//! - any other field (groups, `account_alerts`, …): the value itself, kind `unknown`.
//! - a `messages` / `user_preferences` value with members we do not know (or with no items at all)
//!   also yields the whole value as one `unknown` event, so a new kind of item is never dropped.
//!
//! # Dedupe keys
//! Stable across Meta's retries of the same delivery (which resend the same bytes), distinct for
//! distinct events:
//! - message: `m:{message id}` (also for unknown message types);
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

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::event::{Event, EventKind, EVENT_VERSION};
use crate::webhook::model::{self, MessageType};

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

// ---------------------------------------------------------------------------------------------
// Borrowed views of the envelope

/// A string or a number (Meta is inconsistent), borrowed when the JSON string has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

fn text<'b>(t: &'b Option<Text<'_>>) -> Option<&'b str> {
    t.as_ref().map(Text::as_str).filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
struct EnvelopeB<'a> {
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    entry: Option<Vec<EntryB<'a>>>,
}

#[derive(Deserialize)]
struct EntryB<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(default, deserialize_with = "model::lenient::int")]
    time: Option<i64>,
    #[serde(borrow, default)]
    changes: Option<Vec<ChangeB<'a>>>,
}

#[derive(Deserialize)]
struct ChangeB<'a> {
    #[serde(borrow, default)]
    field: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct MetadataB<'a> {
    #[serde(borrow, default)]
    display_phone_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    phone_number_id: Option<Text<'a>>,
}

/// The members of a `messages` / `user_preferences` value; `extra` records any member we do
/// not know, so the value can be kept whole.
#[derive(Default)]
struct ValueB<'a> {
    metadata: Option<MetadataB<'a>>,
    contacts: Option<Vec<&'a RawValue>>,
    messages: Option<Vec<&'a RawValue>>,
    statuses: Option<Vec<&'a RawValue>>,
    errors: Option<Vec<&'a RawValue>>,
    user_preferences: Option<Vec<&'a RawValue>>,
    extra: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueB<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ValueB<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a change value object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = ValueB::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "metadata" => v.metadata = map.next_value()?,
                        "contacts" => v.contacts = map.next_value()?,
                        "messages" => v.messages = map.next_value()?,
                        "statuses" => v.statuses = map.next_value()?,
                        "errors" => v.errors = map.next_value()?,
                        "user_preferences" => v.user_preferences = map.next_value()?,
                        "messaging_product" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            v.extra = true;
                        }
                    }
                }
                Ok(v)
            }
        }
        d.deserialize_map(V)
    }
}

/// What the splitter needs of a message.
#[derive(Deserialize)]
struct MessageHead<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    message_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from: Option<Text<'a>>,
    #[serde(borrow, default)]
    from_user_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct StatusHead<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recipient_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    recipient_user_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct ContactHead<'a> {
    #[serde(borrow, default)]
    wa_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct PreferenceHead<'a> {
    #[serde(borrow, default)]
    wa_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    category: Option<Text<'a>>,
    #[serde(borrow, default)]
    value: Option<Text<'a>>,
    #[serde(borrow, default)]
    timestamp: Option<Text<'a>>,
}

/// Template, quality and account updates.
#[derive(Deserialize)]
struct FieldHead<'a> {
    #[serde(borrow, default)]
    event: Option<Text<'a>>,
    #[serde(borrow, default)]
    message_template_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    display_phone_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    phone_number: Option<Text<'a>>,
}

// ---------------------------------------------------------------------------------------------
// Splitting

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

struct Ctx<'e, 'a> {
    waba_id: &'a str,
    entry_time: Option<i64>,
    field: &'a str,
    received_at_ms: i64,
    phone_number_id: Option<String>,
    display_phone_number: Option<String>,
    out: &'e mut Vec<Event>,
}

impl Ctx<'_, '_> {
    fn split_change(&mut self, value: &RawValue) {
        match self.field {
            "messages" | "user_preferences" => self.split_items(value),
            "message_template_status_update" => {
                let key = head(value).and_then(|h| {
                    Some(format!(
                        "t:{}:{}:{}",
                        text(&h.message_template_id)?,
                        text(&h.event)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::TemplateStatus, key, None, value);
            }
            "phone_number_quality_update" => {
                let key = head(value).and_then(|h| {
                    Some(format!(
                        "q:{}:{}:{}:{}",
                        self.waba_id,
                        text(&h.display_phone_number)?,
                        text(&h.event)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::QualityUpdate, key, None, value);
            }
            "account_update" => {
                let key = head(value).and_then(|h| {
                    Some(format!(
                        "a:{}:{}:{}:{}",
                        self.waba_id,
                        text(&h.phone_number).unwrap_or("-"),
                        text(&h.event)?,
                        self.entry_time?
                    ))
                });
                self.push(EventKind::AccountUpdate, key, None, value);
            }
            _ => self.push(EventKind::Unknown, None, None, value),
        }
    }

    /// `messages` and `user_preferences` values: one event per item.
    fn split_items(&mut self, value: &RawValue) {
        let Ok(v) = serde_json::from_str::<ValueB<'_>>(value.get()) else {
            // Not the shape we know: keep it whole.
            self.push(EventKind::Unknown, None, None, value);
            return;
        };
        if let Some(m) = &v.metadata {
            self.phone_number_id = text(&m.phone_number_id).map(str::to_owned);
            self.display_phone_number = text(&m.display_phone_number).map(str::to_owned);
        }
        let contacts: Vec<(ContactHead<'_>, &RawValue)> = v
            .contacts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|raw| serde_json::from_str(raw.get()).ok().map(|h| (h, *raw)))
            .collect();
        let is_messages = self.field == "messages";
        let mut produced = 0usize;
        let mut foreign = v.extra;

        if is_messages {
            for raw in v.messages.as_deref().unwrap_or_default() {
                produced += 1;
                self.push_message(raw, &contacts);
            }
            for raw in v.statuses.as_deref().unwrap_or_default() {
                produced += 1;
                self.push_status(raw, &contacts);
            }
            for raw in v.errors.as_deref().unwrap_or_default() {
                produced += 1;
                self.push(EventKind::Unknown, None, None, raw);
            }
            foreign |= v.user_preferences.is_some();
        } else {
            for raw in v.user_preferences.as_deref().unwrap_or_default() {
                produced += 1;
                self.push_preference(raw, &contacts);
            }
            foreign |= v.messages.is_some() || v.statuses.is_some() || v.errors.is_some();
        }
        if foreign || produced == 0 {
            self.push(EventKind::Unknown, None, None, value);
        }
    }

    fn push_message(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<MessageHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let message_type = match h.message_type.as_deref() {
            Some(t) => MessageType::from_name(t),
            // No `type` (the spec's location example): infer it from the content member.
            None => serde_json::from_str::<model::Message>(raw.get())
                .map(|m| m.kind())
                .unwrap_or(MessageType::Unknown),
        };
        let kind = if message_type == MessageType::Unknown {
            EventKind::Unknown
        } else {
            EventKind::Message
        };
        let key = text(&h.id).map(|id| format!("m:{id}"));
        let contact = find_contact(contacts, text(&h.from), text(&h.from_user_id));
        self.push(kind, key, contact, raw);
    }

    fn push_status(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<StatusHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let key = match (text(&h.id), h.status.as_deref().filter(|s| !s.is_empty())) {
            (Some(id), Some(status)) => Some(format!("s:{id}:{status}")),
            _ => None,
        };
        let contact = find_contact(contacts, text(&h.recipient_id), text(&h.recipient_user_id));
        self.push(EventKind::Status, key, contact, raw);
    }

    fn push_preference(&mut self, raw: &RawValue, contacts: &[(ContactHead<'_>, &RawValue)]) {
        let Ok(h) = serde_json::from_str::<PreferenceHead<'_>>(raw.get()) else {
            self.push(EventKind::Unknown, None, None, raw);
            return;
        };
        let who = text(&h.wa_id).or(text(&h.user_id));
        let key = (|| {
            Some(format!(
                "p:{}:{}:{}:{}",
                who?,
                text(&h.category)?,
                text(&h.value)?,
                text(&h.timestamp)?
            ))
        })();
        let contact = find_contact(contacts, text(&h.wa_id), text(&h.user_id));
        self.push(EventKind::UserPreference, key, contact, raw);
    }

    fn push(
        &mut self,
        kind: EventKind,
        natural_key: Option<String>,
        contact: Option<&RawValue>,
        raw: &RawValue,
    ) {
        let key = match natural_key {
            Some(k) if k.len() <= MAX_KEY_LEN => k,
            Some(k) => format!("x:{}", hex::encode(Sha256::digest(k.as_bytes()))),
            None => self.hash_key(raw),
        };
        self.out.push(Event {
            v: EVENT_VERSION,
            key,
            kind,
            field: self.field.to_owned(),
            waba_id: self.waba_id.to_owned(),
            entry_time: self.entry_time,
            phone_number_id: self.phone_number_id.clone(),
            display_phone_number: self.display_phone_number.clone(),
            contact: contact.map(RawValue::to_owned),
            item: raw.to_owned(),
            received_at: self.received_at_ms,
        });
    }

    fn hash_key(&self, raw: &RawValue) -> String {
        let mut h = Sha256::new();
        h.update(self.waba_id.as_bytes());
        h.update([0]);
        h.update(self.entry_time.unwrap_or(0).to_be_bytes());
        h.update(raw.get().as_bytes());
        let digest = h.finalize();
        let field: String = self.field.chars().take(64).collect();
        format!("h:{field}:{}", hex::encode(&digest[..16]))
    }
}

fn head(value: &RawValue) -> Option<FieldHead<'_>> {
    serde_json::from_str(value.get()).ok()
}

/// The `contacts[]` item describing this wa_id / BSUID.
fn find_contact<'r>(
    contacts: &[(ContactHead<'_>, &'r RawValue)],
    wa_id: Option<&str>,
    user_id: Option<&str>,
) -> Option<&'r RawValue> {
    contacts
        .iter()
        .find(|(c, _)| {
            (wa_id.is_some() && text(&c.wa_id) == wa_id)
                || (user_id.is_some() && text(&c.user_id) == user_id)
        })
        .map(|(_, raw)| *raw)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Vec<Event> {
        split(body.as_bytes(), 1_700_000_000_000).expect("splits")
    }

    const TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"5215550001111","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"5215512345678"},{"profile":{"name":"Beto"},"wa_id":"5491123456789"}],"messages":[{"from":"5491123456789","id":"wamid.B","timestamp":"1750000001","type":"text","text":{"body":"Hola \u00a1che!"}},{"from":"5215512345678","id":"wamid.A","timestamp":"1750000000","type":"text","text":{"body":"Hola"}}]},"field":"messages"}]}]}"#;

    #[test]
    fn messages_get_their_own_contact_and_raw_bytes() {
        let events = one(TEXT);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].key, "m:wamid.B");
        assert_eq!(events[0].kind, EventKind::Message);
        assert!(events[0].contact.as_ref().unwrap().get().contains("Beto"));
        assert!(events[1].contact.as_ref().unwrap().get().contains("Ana"));
        // Raw as received: the \u escape is untouched.
        assert!(events[0].item.get().contains(r"\u00a1che"));
        assert_eq!(events[0].waba_id, "102290129340398");
        assert_eq!(
            events[0].phone_number_id.as_deref(),
            Some("106540352242922")
        );
        assert_eq!(events[0].received_at, 1_700_000_000_000);
    }

    #[test]
    fn statuses_key_on_id_and_status() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"statuses":[{"id":"wamid.X","status":"delivered","timestamp":"2","recipient_id":"5511987654321"},{"id":"wamid.X","status":"read","timestamp":"3","recipient_id":"5511987654321"}]}}]}]}"#;
        let events = one(body);
        let keys: Vec<_> = events.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["s:wamid.X:delivered", "s:wamid.X:read"]);
        assert!(events.iter().all(|e| e.kind == EventKind::Status));
    }

    #[test]
    fn unknown_members_and_types_are_kept() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"from":"1","id":"wamid.H","type":"hologram","hologram":{"x":1}}],"message_echoes":[{"id":"e"}]}},{"field":"brand_new_field","value":{"a":[1,2]}}]}]}"#;
        let events = one(body);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].kind, EventKind::Unknown);
        assert_eq!(events[0].key, "m:wamid.H");
        assert_eq!(events[1].kind, EventKind::Unknown);
        assert!(events[1].item.get().contains("message_echoes"));
        assert_eq!(events[2].kind, EventKind::Unknown);
        assert_eq!(events[2].item.get(), r#"{"a":[1,2]}"#);
        assert!(events[2].key.starts_with("h:brand_new_field:"));
    }

    #[test]
    fn field_level_keys() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"77","time":1751000000,"changes":[
            {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":594425479261596,"message_template_name":"promo","message_template_language":"es_MX","reason":"NONE"}},
            {"field":"phone_number_quality_update","value":{"display_phone_number":"5215550001111","event":"FLAGGED","current_limit":"TIER_1K"}},
            {"field":"account_update","value":{"phone_number":"5215550001111","event":"VERIFIED_ACCOUNT"}},
            {"field":"user_preferences","value":{"contacts":[{"wa_id":"5491123456789"}],"user_preferences":[{"wa_id":"5491123456789","category":"marketing_messages","value":"stop","timestamp":1751000001}]}}]}]}"#;
        let events = one(body);
        let got: Vec<_> = events.iter().map(|e| (e.kind, e.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    EventKind::TemplateStatus,
                    "t:594425479261596:APPROVED:1751000000"
                ),
                (
                    EventKind::QualityUpdate,
                    "q:77:5215550001111:FLAGGED:1751000000"
                ),
                (
                    EventKind::AccountUpdate,
                    "a:77:5215550001111:VERIFIED_ACCOUNT:1751000000"
                ),
                (
                    EventKind::UserPreference,
                    "p:5491123456789:marketing_messages:stop:1751000001"
                ),
            ]
        );
        assert!(events[3].contact.is_some());
        assert_eq!(events[0].entry_time, Some(1751000000));
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let a = one(TEXT);
        let b = one(TEXT);
        let ka: Vec<_> = a.iter().map(|e| e.key.clone()).collect();
        let kb: Vec<_> = b.iter().map(|e| e.key.clone()).collect();
        assert_eq!(ka, kb);
        let body1 = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"x","value":{"n":1}}]}]}"#;
        let body2 = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"x","value":{"n":2}}]}]}"#;
        assert_eq!(one(body1)[0].key, one(body1)[0].key);
        assert_ne!(one(body1)[0].key, one(body2)[0].key);
    }

    #[test]
    fn long_ids_are_hashed_into_short_keys() {
        let id = "w".repeat(1000);
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messages":[{{"id":"{id}","type":"text","text":{{"body":"x"}}}}]}}}}]}}]}}"#
        );
        let events = one(&body);
        assert!(events[0].key.starts_with("x:") && events[0].key.len() <= MAX_KEY_LEN);
    }

    #[test]
    fn envelope_errors_name_the_problem() {
        let cases: &[(&str, SplitError)] = &[
            ("{", SplitError::NotJson(String::new())),
            ("[1]", SplitError::NotAnObject),
            (r#"{"entry":[]}"#, SplitError::MissingObject),
            (
                r#"{"object":"page","entry":[]}"#,
                SplitError::WrongObject("\"page\"".into()),
            ),
            (
                r#"{"object":"whatsapp_business_account"}"#,
                SplitError::MissingEntry,
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":{}}"#,
                SplitError::EntryNotArray,
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[3]}"#,
                SplitError::EntryNotObject(0),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"changes":[]}]}"#,
                SplitError::EntryWithoutId(0),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"id":"1"}]}"#,
                SplitError::EntryWithoutChanges(0),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"a","value":{}},{"value":{}}]}]}"#,
                SplitError::ChangeWithoutField(0, 1),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages"}]}]}"#,
                SplitError::ChangeWithoutValue(0, 0),
            ),
            (
                r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":7,"value":{}}]}]}"#,
                SplitError::ChangeWithoutField(0, 0),
            ),
        ];
        for (body, expected) in cases {
            let got = split(body.as_bytes(), 0).expect_err(body);
            match (expected, &got) {
                (SplitError::NotJson(_), SplitError::NotJson(_)) => {}
                _ => assert_eq!(&got, expected, "{body}"),
            }
        }
    }

    #[test]
    fn empty_entry_list_is_valid_and_empty() {
        assert!(one(r#"{"object":"whatsapp_business_account","entry":[]}"#).is_empty());
    }
}
