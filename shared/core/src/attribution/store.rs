//! The attribution store port: tracked links, per-contact touch state, the log of processed
//! inbound messages (what the report counts), and the conversions ledger.
//!
//! Adapters: SQLite (`adapters::sqlite::attribution`) and DynamoDB
//! (`adapters::dynamo::attribution`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::code;
use super::link::{LinkSpec, TrackedLink, CODE_ATTEMPTS};
use super::utm::Touch;
use crate::error::StoreError;

/// What attribution remembers about one contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactState {
    pub contact_id: String,
    /// Optimistic concurrency: 0 for a contact never stored, +1 on every commit.
    pub version: u64,
    pub first: Option<Touch>,
    pub last: Option<Touch>,
    /// Latest inbound message seen (Unix ms), to tell when a new conversation starts.
    pub last_inbound_at: Option<i64>,
    /// When the latest lead was created (Unix ms).
    pub last_lead_at: Option<i64>,
}

/// How a reference code in a message resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    Known,
    Unknown,
    Expired,
}

/// The campaign a conversation, lead or conversion is credited to (the report's row key).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Credit {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
}

impl Credit {
    pub fn of(touch: Option<&Touch>) -> Credit {
        match touch {
            Some(t) => Credit {
                utm_source: t.utm.utm_source.clone(),
                utm_medium: t.utm.utm_medium.clone(),
                utm_campaign: t.utm.utm_campaign.clone(),
            },
            None => Credit::default(),
        }
    }
}

/// One processed inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The event key of the message: processing the same event twice changes nothing.
    pub event_id: String,
    pub contact_id: String,
    pub at: i64,
    /// Whether this message started a conversation.
    pub conversation_start: bool,
    /// Who the conversation is credited to (empty when unattributed).
    pub credit: Credit,
    /// Whether a lead was created.
    pub lead: bool,
    pub ref_code: Option<String>,
    pub code_status: Option<CodeStatus>,
    /// The records produced, returned again as they were on a repeated delivery.
    pub records: Vec<serde_json::Value>,
}

/// Result of [`AttributionStore::commit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Commit {
    Done,
    /// The contact's state moved since it was read: read again and recompute.
    VersionConflict,
    /// The event was processed before; here is what it produced.
    AlreadyProcessed(LogEntry),
}

/// A conversion as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionRow {
    /// The caller's event id: Meta's dedupe key and our idempotency key.
    pub event_id: String,
    pub contact_id: String,
    pub event_name: String,
    pub value: f64,
    pub currency: String,
    pub event_time: i64,
    pub ctwa_clid: Option<String>,
    pub credit: Credit,
    /// `pending`, `sent`, `failed` (terminal refusal by Meta), `not_attributable` (no click id).
    pub status: String,
    pub detail: Option<String>,
    pub attempts: u32,
}

/// Result of [`AttributionStore::claim_conversion`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First time this event id is seen: it is now `pending`.
    New,
    /// Seen before: the stored row.
    Existing(Box<ConversionRow>),
}

#[async_trait]
pub trait AttributionStore: Send + Sync {
    /// Stores a link unless its code is taken; `false` when taken.
    async fn insert_link(&self, link: &TrackedLink) -> Result<bool, StoreError>;
    async fn link(&self, code: &str) -> Result<Option<TrackedLink>, StoreError>;
    /// The contact's state, `None` when never stored.
    async fn contact(&self, contact_id: &str) -> Result<Option<ContactState>, StoreError>;
    /// The log entry of an event already processed.
    async fn processed(&self, event_id: &str) -> Result<Option<LogEntry>, StoreError>;
    /// Atomically: unless `entry.event_id` is logged already, and if the stored version is
    /// `state.version - 1` (absent when `state.version == 1`), store `state` and log `entry`.
    async fn commit(&self, state: &ContactState, entry: &LogEntry) -> Result<Commit, StoreError>;
    /// Records a conversion as `pending` unless its event id is known.
    async fn claim_conversion(&self, row: &ConversionRow) -> Result<Claim, StoreError>;
    /// Sets the status (and detail, attempts) of a claimed conversion.
    async fn finish_conversion(
        &self,
        event_id: &str,
        status: &str,
        detail: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError>;

    /// Draws codes until one is free, and stores the link `spec` describes under it.
    async fn create_link(&self, spec: &LinkSpec, now: i64) -> Result<TrackedLink, StoreError> {
        for _ in 0..CODE_ATTEMPTS {
            let link = spec.link(&code::generate(), now);
            if self.insert_link(&link).await? {
                return Ok(link);
            }
            tracing::warn!(code = %link.code, "reference code collision, drawing another");
        }
        Err(StoreError::Conflict(format!(
            "no free reference code after {CODE_ATTEMPTS} attempts"
        )))
    }
}
