//! Canonical CRM records: what crm-sync makes of WhatsApp events, before any CRM-specific
//! mapping. Versioned (`v`, [`RECORDS_VERSION`]) and documented as JSON Schema in
//! `docs/records-schema.json`; the `local` CRM stores them as is (`wabridge records --json`), the
//! `webhook` CRM posts them as is, and mappings read their fields by name.
//!
//! Every record serialises with `"kind"`: `contact`, `activity`, `consent`, `template_status`,
//! `quality`, `unknown`, `attribution`, `lead`, `erasure`, `media`, `message_change` (an edit or
//! deletion, [`crate::changes`]), `call` ([`crate::calls`]), `account`
//! ([`crate::account`]), `conversation` ([`crate::conversations`]) and `sla_breach`
//! ([`crate::conversations::sla`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the record shapes below. Additive changes (new optional fields) keep it; renames,
/// removals or meaning changes bump it.
pub const RECORDS_VERSION: u32 = 1;

/// The `v` of a record: [`RECORDS_VERSION`] by default (so `..Default::default()` is current).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u32);

impl Default for Version {
    fn default() -> Self {
        Version(RECORDS_VERSION)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Contact(ContactRecord),
    Activity(ActivityRecord),
    Consent(ConsentRecord),
    TemplateStatus(TemplateStatusRecord),
    Quality(QualityRecord),
    Unknown(UnknownRecord),
    /// A contact's first or last touch (see [`crate::attribution`]).
    Attribution(crate::attribution::AttributionRecord),
    /// A lead carrying the attribution of the conversation that created it.
    Lead(crate::attribution::LeadRecord),
    /// A person erased: the CRM erases them too ([`crate::erasure`]).
    Erasure(crate::erasure::ErasureItem),
    /// A message's media file stored, failed or refused ([`crate::media`]).
    Media(crate::media::record::MediaRecord),
    /// An edit or deletion of a message ([`crate::changes`]).
    MessageChange(crate::changes::MessageChangeRecord),
    /// A WhatsApp call ([`crate::calls`]).
    Call(crate::calls::CallRecord),
    /// An `account_update` ([`crate::account`]).
    Account(crate::account::AccountRecord),
    /// A conversation's state after a change ([`crate::conversations`]).
    Conversation(crate::conversations::ConversationRecord),
    /// A first response past its SLA ([`crate::conversations::sla`]).
    SlaBreach(crate::conversations::sla::SlaBreachRecord),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Contact(_) => "contact",
            Record::Activity(_) => "activity",
            Record::Consent(_) => "consent",
            Record::TemplateStatus(_) => "template_status",
            Record::Quality(_) => "quality",
            Record::Unknown(_) => "unknown",
            Record::Attribution(_) => "attribution",
            Record::Lead(_) => "lead",
            Record::Erasure(_) => "erasure",
            Record::Media(_) => "media",
            Record::MessageChange(_) => "message_change",
            Record::Call(_) => "call",
            Record::Account(_) => "account",
            Record::Conversation(_) => "conversation",
            Record::SlaBreach(_) => "sla_breach",
        }
    }

    /// The identity of the record in a CRM store: writing a record with the same key again
    /// replaces it (a contact is upserted; an outbound message's activity is updated as its
    /// status moves forward).
    pub fn record_key(&self) -> String {
        match self {
            Record::Contact(c) => format!("contact:{}", c.id),
            Record::Activity(a) => format!(
                "activity:{}",
                a.message_id.as_deref().unwrap_or(&a.event_id)
            ),
            Record::Consent(c) => format!("consent:{}", c.event_id),
            Record::TemplateStatus(t) => format!("template_status:{}", t.event_id),
            Record::Quality(q) => format!("quality:{}", q.event_id),
            Record::Unknown(u) => format!("unknown:{}", u.event_id),
            Record::Attribution(a) => a.record_key(),
            Record::Lead(l) => l.record_key(),
            Record::Erasure(e) => format!("erasure:{}", e.erasure_id),
            Record::Media(m) => m.record_key(),
            Record::MessageChange(c) => c.record_key(),
            Record::Call(c) => format!("call:{}", c.call_id),
            Record::Account(a) => format!("account:{}", a.event_id),
            Record::Conversation(c) => c.record_key(),
            Record::SlaBreach(b) => b.record_key(),
        }
    }

    /// The contact this record belongs to, if any.
    pub fn contact_id(&self) -> Option<&str> {
        match self {
            Record::Contact(c) => Some(&c.id),
            Record::Activity(a) => Some(&a.contact_id),
            Record::Consent(c) => Some(&c.contact_id),
            Record::Attribution(a) => Some(&a.contact_id),
            Record::Lead(l) => Some(&l.contact_id),
            Record::Unknown(u) => u.contact_id.as_deref(),
            Record::Erasure(e) => e.contact_id.as_deref(),
            Record::Media(m) => Some(&m.contact_id),
            Record::MessageChange(c) => Some(&c.contact_id),
            Record::Call(c) => Some(&c.contact_id),
            Record::Conversation(c) => Some(&c.contact_id),
            Record::SlaBreach(b) => Some(&b.contact_id),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("records serialise")
    }
}

/// A contact upsert: one per person, whatever identities they reached us with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContactRecord {
    #[serde(default)]
    pub v: Version,
    /// Our contact id (stable; the identity store maps every phone / BSUID to it).
    pub id: String,
    /// Canonical E.164 number (`+525512345678`), absent for username-only users.
    pub phone_e164: Option<String>,
    /// Whether the phone metadata knows `phone_e164`: `false` for a `wa_id` in a range it does
    /// not know yet (Meta vouches for the account; the metadata lags). Absent with no phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_verified: Option<bool>,
    /// Meta's `wa_id` exactly as received.
    pub wa_id: Option<String>,
    /// Business-scoped user id (`CC.…`).
    pub bsuid: Option<String>,
    /// WhatsApp username (`profile.username`).
    pub username: Option<String>,
    /// Profile name as the user set it.
    pub name: Option<String>,
    /// Click-to-WhatsApp attribution of the first message after an ad click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
    /// The user's latest answer to a call permission request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_permission: Option<crate::calls::CallPermission>,
    /// When we last saw this contact (Unix ms).
    pub updated_at: i64,
}

/// Ad attribution (`messages[].referral`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Referral {
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub source_url: Option<String>,
    pub headline: Option<String>,
    pub ctwa_clid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A media attachment: Meta's id and description, and where the media pipeline is with it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaRef {
    pub id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// `pending` when the activity lands and the pipeline runs; the `media` record that
    /// follows says `stored`, `failed` or `refused` (a CRM that keeps records, like the local
    /// one, folds it in here). Absent when the gateway does not fetch media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::media::record::MediaState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<crate::media::record::StoredMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::media::record::MediaFailure>,
}

/// An error of a failed outbound message (`statuses[].errors[]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StatusError {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// A message on the contact's timeline: an inbound message, or the state of one we sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ActivityRecord {
    #[serde(default)]
    pub v: Version,
    /// Key of the event that produced (or, for outbound statuses, last moved) this record.
    pub event_id: String,
    pub contact_id: String,
    /// Inbound and echoes: the message type (`text`, `image`, `interactive`, …). Outbound:
    /// `status`.
    #[serde(rename = "type")]
    pub kind: String,
    pub direction: Option<Direction>,
    /// The WhatsApp message id (`wamid.…`).
    pub message_id: Option<String>,
    /// When it happened according to Meta (Unix ms).
    pub at: Option<i64>,
    /// Text body, caption, button text, reply title or reaction emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaRef>,
    /// Reply context (`context.id`, `context.from`, `forwarded`, …), as Meta sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// Button / list / flow payload or id, when the message carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Outbound only: `sent`, `delivered`, `read`, `played` or `failed` (only moves forward);
    /// `refused` on a `send_result` activity (a policy guard stopped the send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Outbound `failed`: why. Inbound `unsupported`: Meta's reason (131051 for a type it
    /// cannot deliver yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<StatusError>,
    /// Outbound: pricing category (`marketing`, `utility`, …) when Meta reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_category: Option<String>,
    /// Outbound: what the sender attached (`biz_opaque_callback_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    /// Outbound: the wabridge send id (`snd_…`) of a status of one of our sends, or of a
    /// `send_result` activity (a send that ended without a status webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_id: Option<String>,
    /// Inbound: the tracked-link reference code found in the text (removed from `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_code: Option<String>,
    /// How `ref_code` resolved: `known`, `unknown` or `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_code_status: Option<crate::attribution::CodeStatus>,
    /// The WhatsApp group of the message: an inbound group message, or a status of a message
    /// sent to a group (which names no person: `contact_id` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Who wrote an outbound message: `whatsapp_business_app` for echoes of messages the
    /// business sent from the WhatsApp Business app; on a status of a send, the `agent` the
    /// send named (when conversations are on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Inbound `unsupported`: the type Meta could not deliver (`unsupported.type`, e.g. `edit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported_type: Option<String>,
    /// Set by a store that folds `message_change` records in (the local CRM): when the latest
    /// edit happened (Unix ms) and its wamid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_id: Option<String>,
    /// Set by a store that folds `message_change` records in: when the sender deleted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    /// The conversation the message belongs to ([`crate::conversations`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The business line (phone_number_id and label) the message was sent to or from, when the
    /// gateway runs a numbers registry ([`crate::numbers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<Box<crate::numbers::BusinessNumber>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    OptIn,
    OptOut,
}

/// Where a consent change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// `user_preferences` webhook (the user tapped stop / resume on marketing messages).
    UserPreferences,
    /// The user wrote a configured keyword (STOP, BAJA, ALTO, PARAR, SAIR, …).
    Keyword,
    /// Meta refused a send with 131050: the user stopped marketing messages.
    MetaError,
    /// Recorded through `POST /consents` by the business (a web form, a checkout, a store,
    /// an agent).
    WebForm,
    Checkout,
    Store,
    Agent,
}

/// Opt-in / opt-out, with evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    #[serde(default)]
    pub v: Version,
    pub event_id: String,
    pub contact_id: String,
    pub status: ConsentStatus,
    /// `marketing_messages` (user_preferences, the API's `marketing`), `utility_messages` (the
    /// API's `utility`) or `all` (keyword).
    pub category: String,
    pub source: ConsentSource,
    /// What proves it: `{"value":"stop"}` or `{"keyword":"BAJA","message_id":"wamid…","text":"…"}`.
    pub evidence: Value,
    pub at: Option<i64>,
}

/// `message_template_status_update`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TemplateStatusRecord {
    #[serde(default)]
    pub v: Version,
    pub event_id: String,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub language: Option<String>,
    /// `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`, …
    pub event: Option<String>,
    pub reason: Option<String>,
    pub at: Option<i64>,
    /// Set for the template's other updates: `quality`, `category` or `components`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// `quality`: the new score (GREEN, YELLOW, RED, UNKNOWN) and the one before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_quality: Option<String>,
    /// `category`: the category now (or, with `category_from`, the one Meta announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    /// `category` notices: when the announced category takes effect (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_from: Option<i64>,
    /// `components`: the edited template as Meta sent it (`body`, `header`, `footer`,
    /// `buttons`, each when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Value>,
}

/// `phone_number_quality_update`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QualityRecord {
    #[serde(default)]
    pub v: Version,
    pub event_id: String,
    pub display_phone_number: Option<String>,
    /// `FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`, …
    pub event: Option<String>,
    pub current_limit: Option<String>,
    pub at: Option<i64>,
}

/// Anything we do not map yet, kept raw so a business can see what Meta sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownRecord {
    #[serde(default)]
    pub v: Version,
    pub event_id: String,
    /// `changes[].field`.
    pub field: String,
    pub raw: Value,
    /// The person it names, when it names one (a `user_preferences` value we do not know yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
}

#[cfg(test)]
mod tests;
