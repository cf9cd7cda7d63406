//! The canonical `conversation` record and the state kept with it.

use serde::{Deserialize, Serialize};

use crate::records::Version;

/// Who wrote the conversation's first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Customer,
    Business,
}

/// Where a conversation came from, as far as wabridge can tell from its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The first message carried a click-to-WhatsApp `referral`.
    CtwaAd,
    /// The first message carried a known tracked-link reference code.
    TrackedLink,
    /// The business opened it with a message sent through the Cloud API (outside the window
    /// that can only be a template).
    Template,
    /// Anything else: a customer writing on their own, an echo from the Business app.
    Organic,
}

/// Why a conversation closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// No message for `WABRIDGE_CONVERSATION_IDLE_HOURS`.
    Idle,
    /// Closed through the API or the CLI.
    Explicit,
}

impl Party {
    /// The name the record's JSON uses (`customer`, `business`), for CRM fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Customer => "customer",
            Party::Business => "business",
        }
    }
}

impl Origin {
    /// The name the record's JSON uses (`ctwa_ad`, `tracked_link`, `template`, `organic`).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::CtwaAd => "ctwa_ad",
            Origin::TrackedLink => "tracked_link",
            Origin::Template => "template",
            Origin::Organic => "organic",
        }
    }
}

impl CloseReason {
    /// The name the record's JSON uses (`idle`, `explicit`).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::Explicit => "explicit",
        }
    }
}

/// A thread between one contact and one business number. Every change reaches the CRM as the
/// whole record (keyed `conversation:<id>`); `revision` grows with each change, so a store
/// keeps the highest it has seen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversationRecord {
    #[serde(default)]
    pub v: Version,
    /// wabridge's own id (`cnv_…`): Meta's conversation ids are absent under per-message
    /// pricing.
    pub id: String,
    pub contact_id: String,
    /// The business number's `phone_number_id`.
    pub number: String,
    /// The number as displayed (`display_phone_number`), when Meta sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_number: Option<String>,
    /// The first message's time (Unix ms).
    pub opened_at: i64,
    pub opened_by: Option<Party>,
    pub origin: Option<Origin>,
    pub first_inbound_at: Option<i64>,
    /// The first business message at or after `first_inbound_at`.
    pub first_response_at: Option<i64>,
    pub first_response_ms: Option<i64>,
    pub last_inbound_at: Option<i64>,
    pub last_outbound_at: Option<i64>,
    pub inbound_count: u32,
    pub outbound_count: u32,
    /// Assigned by the earliest outbound message that names an agent (`whatsapp_business_app`
    /// for echoes).
    pub agent: Option<String>,
    /// From the mapping's `[tags]` catalogue: added by its rules on inbound messages and
    /// through the API (which may also replace the set). Sorted, unique.
    #[serde(default)]
    pub tags: Vec<String>,
    pub closed_at: Option<i64>,
    pub close_reason: Option<CloseReason>,
    /// Meta's `statuses[].conversation.id` values seen on the conversation's messages.
    #[serde(default)]
    pub meta_conversation_ids: Vec<String>,
    /// `statuses[].pricing.category` and `.type` values seen.
    #[serde(default)]
    pub pricing_categories: Vec<String>,
    #[serde(default)]
    pub pricing_types: Vec<String>,
    /// Set through `PATCH /conversations/{id}`, from the mapping's outcome catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_at: Option<i64>,
    /// When the sweep found the first response overdue (`WABRIDGE_FIRST_RESPONSE_SLA_MINUTES`,
    /// [`super::sla`]); set once, with the one `sla_breach` record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_breached_at: Option<i64>,
    /// A conversion (`POST /conversions`) made the outcome `converted`: its value and ISO 4217
    /// currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_currency: Option<String>,
    /// Grows by one with every change.
    pub revision: u64,
}

impl ConversationRecord {
    pub fn record_key(&self) -> String {
        format!("conversation:{}", self.id)
    }

    /// The time of the latest message (the idle close counts from it).
    pub fn last_message_at(&self) -> i64 {
        [self.last_inbound_at, self.last_outbound_at]
            .into_iter()
            .flatten()
            .fold(self.opened_at, i64::max)
    }

    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// What a store keeps of a conversation: the record and what the fold needs beyond it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversationState {
    pub record: ConversationRecord,
    /// Times of business messages earlier than `first_inbound_at` (or all of them while there
    /// is no inbound): a late, earlier inbound makes one of them the first response. The latest
    /// [`EARLY_OUTBOUND_KEPT`] are kept.
    #[serde(default)]
    pub early_outbound: Vec<i64>,
    /// When the assigning message was sent: an earlier one with an agent takes over.
    #[serde(default)]
    pub agent_at: Option<i64>,
    /// The key of the event that made the latest change: its redelivery sends the record
    /// again (its first delivery may have died before the CRM got it); other events that
    /// change nothing send nothing.
    #[serde(default)]
    pub last_event: Option<String>,
    /// The `event_id`s of the conversions applied (the latest [`CONVERSIONS_KEPT`]): the same
    /// conversion posted again changes nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversions: Vec<String>,
}

/// How many conversion ids a conversation remembers.
pub const CONVERSIONS_KEPT: usize = 16;

/// How many business messages before the first inbound are remembered.
pub const EARLY_OUTBOUND_KEPT: usize = 64;

/// A message counted in a conversation: found again when the message (or one of its
/// statuses) comes back, so it counts once and its conversation is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageMark {
    pub message_id: String,
    pub conversation_id: String,
    /// The earliest time seen for the message (its `sent` status may come after `delivered`).
    pub at: i64,
}
