//! Effects ledger: every CRM side effect happens once, even when SQS delivers a message twice, a
//! Lambda batch is retried, or the process dies between two CRM calls.
//!
//! Each side effect has a deterministic id, [`effect_id`] = event key + effect name (`contact`,
//! `activity`, `consent`, …). crm-sync runs every effect as **claim → do → confirm**:
//!
//! - `claim` atomically takes a lease on the id (conditional write). `Done` means an earlier
//!   delivery already did it: skip. `Busy` means another worker holds a live lease (a duplicate
//!   delivery running right now): retry after the lease. `Proceed` means do it; `in_doubt` says
//!   an earlier attempt claimed it and never confirmed nor released: it may have happened.
//! - `confirm` marks it done after the CRM acknowledged it.
//! - `release` marks a definite failure (a 429 or 4xx answer: nothing was applied): the next
//!   attempt is not in doubt.
//! - `abandon` ends the lease of an attempt that failed without knowing (5xx, timeout): the next
//!   attempt proceeds at once, in doubt.
//!
//! Crash windows and how each is closed:
//! 1. Crash after `claim`, before the CRM call: the lease expires, the redelivered message
//!    proceeds `in_doubt`, and the effect happens once.
//! 2. Crash (or timeout) after the CRM applied it, before `confirm`: the redelivery proceeds
//!    `in_doubt`. Adapters make in-doubt effects safe: `local` and contact upserts are keyed
//!    upserts (repeating them changes nothing); `webhook` re-posts with the same `webhook-id`
//!    (receivers deduplicate on it, as Standard Webhooks asks); `hubspot` searches for the
//!    communication by its effect-id property before creating it again.
//! 3. Crash after `confirm`, before the queue delete: the redelivery finds `Done` and skips.
//!
//! Outbound statuses only move forward: [`Ledger::advance_status`] keeps the highest
//! [`crate::webhook::model::StatusKind::rank`] per message, atomically, and crm-sync drops a status that
//! ranks below what was already recorded (a late `delivered` after `read` changes nothing).

use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;

/// Default lease of a claim: longer than a CRM call with its timeout.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// `<event key>#<effect>`.
pub fn effect_id(event_key: &str, effect: &str) -> String {
    format!("{event_key}#{effect}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Do the effect. `in_doubt`: an earlier attempt may have done it already.
    Proceed { in_doubt: bool },
    /// Done before: skip.
    Done,
    /// Another worker holds the lease for this long.
    Busy(Duration),
}

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn claim(&self, effect_id: &str, lease: Duration) -> Result<Claim, StoreError>;
    async fn confirm(&self, effect_id: &str) -> Result<(), StoreError>;
    /// The effect definitely did not happen: the next attempt proceeds without doubt.
    async fn release(&self, effect_id: &str) -> Result<(), StoreError>;
    /// The attempt ended without knowing whether the effect happened (5xx, timeout): the lease
    /// ends now, so the next attempt proceeds at once, in doubt.
    async fn abandon(&self, effect_id: &str) -> Result<(), StoreError>;
    /// Records `rank` for the message unless a higher rank was recorded; `true` when `rank` is
    /// now the recorded one (equal ranks pass, so a retried status keeps going).
    async fn advance_status(&self, message_id: &str, rank: u8) -> Result<bool, StoreError>;
}
