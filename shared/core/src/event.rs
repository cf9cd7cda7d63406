//! The unit of work on the events queue: one item of one change of one entry of a webhook POST.
//!
//! Ingest splits every delivery into events without interpreting them beyond what it needs for
//! the dedupe key, and keeps each item's raw JSON exactly as Meta sent it, so consumers (and
//! later versions of them) can read fields we do not model yet. The JSON form of `Event` is the
//! queue message body; `v` versions it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Current version of the queue message body.
pub const EVENT_VERSION: u8 = 1;

/// What an event is. Unknown fields and unknown message types become `Unknown` with their raw
/// JSON: kept and shown, never rejected or silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `messages` field, `messages[]` item of a type we model (including `system`).
    Message,
    /// `messages` field, `statuses[]` item: the fate of a message we sent.
    Status,
    /// `smb_message_echoes` field, `message_echoes[]` item: a message the business sent (or
    /// edited, or deleted) from the WhatsApp Business app on a coexistence number.
    Echo,
    /// `calls` field: a `calls[]` item (connect, terminate) or a `statuses[]` item of a call.
    Call,
    /// `message_template_status_update`.
    TemplateStatus,
    /// `phone_number_quality_update`.
    QualityUpdate,
    /// `user_preferences` (marketing stop/resume).
    UserPreference,
    /// `account_update`.
    AccountUpdate,
    /// Anything else: other fields, unknown message types, webhook-level `errors[]`, groups.
    Unknown,
    /// Not from Meta: wabridge's own report of a send that ended without a status webhook
    /// (refused by a guard, failed at Meta's API, gave up) or of Meta's 131050 opt-out, put on
    /// the events queue by the sender (see `sends::events`). `field` is `send_result`.
    SendResult,
    /// Not from Meta: a consent the business recorded through `POST /consents`, put on the
    /// events queue so that it reaches the CRM (see `sends::events`). `field` is `consent`;
    /// the item is the [`crate::consent::ConsentEntry`].
    Consent,
    /// Not from Meta: a person was erased ([`crate::erasure`]); crm-sync asks the CRM to erase
    /// them too. `field` is `erasure`; the item is the [`crate::erasure::ErasureItem`].
    Erasure,
    /// Not from Meta: the media pipeline's word on one file of a message (stored, failed,
    /// refused), put on the events queue by the media consumer so that it reaches the CRM
    /// through the effects ledger. `field` is `media_result`; the item is the
    /// [`crate::media::job::MediaResultItem`].
    MediaResult,
    /// Not from Meta: a conversation changed through the API (`PATCH /conversations/{id}`),
    /// put on the events queue so that it reaches the CRM through the effects ledger. `field`
    /// is `conversation`; the item is the [`crate::conversations::ConversationRecord`].
    Conversation,
    /// Not from Meta: a finding of the conversation sweep (an overdue first response, an idle
    /// conversation), put on the events queue so that crm-sync applies it and its records
    /// reach the CRM through the effects ledger. `field` is `sweep`; the item is the
    /// [`crate::conversations::sweep::SweepItem`].
    Sweep,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::Status => "status",
            EventKind::Echo => "echo",
            EventKind::Call => "call",
            EventKind::TemplateStatus => "template_status",
            EventKind::QualityUpdate => "quality_update",
            EventKind::UserPreference => "user_preference",
            EventKind::AccountUpdate => "account_update",
            EventKind::Unknown => "unknown",
            EventKind::SendResult => "send_result",
            EventKind::Consent => "consent",
            EventKind::Erasure => "erasure",
            EventKind::MediaResult => "media_result",
            EventKind::Conversation => "conversation",
            EventKind::Sweep => "sweep",
        }
    }
}

/// One event, as it travels on the queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Body version, [`EVENT_VERSION`].
    pub v: u8,
    /// Dedupe key, stable across Meta's retries of the same delivery (see `webhook::split`).
    pub key: String,
    pub kind: EventKind,
    /// `changes[].field` as Meta sent it.
    pub field: String,
    /// `entry[].id`: the WhatsApp Business Account id.
    pub waba_id: String,
    /// `entry[].time` when present (template, quality and account updates carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_time: Option<i64>,
    /// `value.metadata.phone_number_id`: which of the business's numbers this concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// For messages: the `value.contacts[]` item describing the sender (profile name, wa_id,
    /// user_id, username), raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Box<RawValue>>,
    /// The item itself (a message, a status, the change value...), raw as received.
    pub item: Box<RawValue>,
    /// When ingest accepted it, Unix milliseconds.
    pub received_at: i64,
}

impl Event {
    /// The queue message body.
    pub fn to_json(&self) -> String {
        // Sized once up front: growing from serde_json's default buffer reallocates three times
        // for a typical event, on every webhook.
        let raw = self.item.get().len() + self.contact.as_ref().map_or(0, |c| c.get().len());
        let mut out = Vec::with_capacity(raw + 256);
        // Serialising a struct of strings, numbers and already-valid raw JSON cannot fail.
        serde_json::to_writer(&mut out, self).expect("event serialises");
        // serde_json writes valid UTF-8.
        String::from_utf8(out).expect("event JSON is UTF-8")
    }

    /// The queue message carrying this event (its key as the message id).
    pub fn to_message(&self) -> crate::queue::OutgoingMessage {
        crate::queue::OutgoingMessage {
            id: self.key.clone(),
            body: self.to_json(),
            delay: None,
        }
    }

    pub fn from_json(body: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// An event wabridge puts on the events queue itself (not from Meta): no WABA, no contact.
    pub fn own(key: String, kind: EventKind, field: &str, item: &impl Serialize) -> Event {
        // wabridge's own items are structs of strings, numbers and bools: they serialise.
        let raw = serde_json::value::to_raw_value(item).expect("wabridge's own items serialise");
        Event {
            v: EVENT_VERSION,
            key,
            kind,
            field: field.into(),
            waba_id: String::new(),
            entry_time: None,
            phone_number_id: None,
            display_phone_number: None,
            contact: None,
            item: raw,
            received_at: crate::clock::now_ms(),
        }
    }
}

/// The item of a [`EventKind::SendResult`] event: how a send ended, as the sender reports it
/// (see `sends::events`). wabridge writes it and crm-sync reads it, so both use this one type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendResultItem {
    pub send_id: String,
    /// The send's final state (`refused`, `failed`, …); absent on an opt-out report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The stored contact key (`phone:…` / `bsuid:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// When the send reached that state, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    /// The E.164 number the send was addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The BSUID the send was addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The template's name, for a template send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template's language: the caller's, or the one wabridge chose by country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SendResultError>,
    /// Meta's 131050: the person stopped marketing messages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opted_out: bool,
}

/// The stable code (`meta_131026`, `marketing_opted_out`, …) and sentence of a send's end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendResultError {
    pub code: String,
    pub message: String,
}
