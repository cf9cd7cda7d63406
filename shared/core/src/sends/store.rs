//! The send record, its state machine, and the send store port.
//!
//! States (what happened, in order): `queued` (accepted, waiting for the sender) → `sent` (Meta
//! accepted the request) → `delivered` → `read`; `failed` (Meta or the sender gave up, with the
//! error) and `refused` (a policy guard stopped it before anything left) end a send too.
//!
//! Forward only: statuses arrive unordered and redelivered; a late `delivered` after `read`, or a
//! `sent` after `delivered`, changes nothing. Meta may skip steps (only `read` when delivered and
//! read at once; a status webhook may even beat the sender's own `sent` write).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
    Refused,
}

impl SendState {
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Queued => "queued",
            SendState::Sent => "sent",
            SendState::Delivered => "delivered",
            SendState::Read => "read",
            SendState::Failed => "failed",
            SendState::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<SendState> {
        Some(match s {
            "queued" => SendState::Queued,
            "sent" => SendState::Sent,
            "delivered" => SendState::Delivered,
            "read" => SendState::Read,
            "failed" => SendState::Failed,
            "refused" => SendState::Refused,
            _ => return None,
        })
    }

    /// No transition leaves these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SendState::Read | SendState::Failed | SendState::Refused
        )
    }

    /// The states a send may be in for a move to `self` to apply.
    pub fn predecessors(self) -> &'static [SendState] {
        use SendState::*;
        match self {
            Queued => &[],
            Sent => &[Queued],
            Delivered => &[Queued, Sent],
            Read => &[Queued, Sent, Delivered],
            // Meta reports `failed` after `sent` (undeliverable); `delivered` ones do not fail.
            Failed => &[Queued, Sent],
            Refused => &[Queued],
        }
    }

    pub fn can_move_to(self, to: SendState) -> bool {
        to.predecessors().contains(&self)
    }
}

/// Why a send failed or was refused: a stable code and a sentence a person understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendError {
    /// A policy code (`marketing_without_opt_in`, ...) or `meta_<code>` (`meta_131026`).
    pub code: String,
    pub message: String,
}

/// One send, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRecord {
    pub id: String,
    /// The `Idempotency-Key` header, when the caller sent one.
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of the canonical request: the same key with another body is a conflict.
    pub request_hash: String,
    /// The validated request (JSON of [`crate::sends::request::SendRequest`]).
    pub request: serde_json::Value,
    /// The contact key (consent, window) and the recipient for display (masked in logs).
    pub contact: String,
    pub state: SendState,
    pub error: Option<SendError>,
    /// Meta's message id once sent.
    pub wamid: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The result of [`SendStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The record was stored.
    New(SendRecord),
    /// A send with this idempotency key exists (whatever its body: the caller compares hashes).
    Existing(SendRecord),
}

#[async_trait]
pub trait SendStore: Send + Sync {
    /// Stores a new send, unless its idempotency key is taken: then returns the existing one.
    /// Atomic: of concurrent creates with one key, exactly one is `New`.
    async fn create(&self, record: &SendRecord) -> Result<Created, StoreError>;
    async fn get(&self, id: &str) -> Result<Option<SendRecord>, StoreError>;
    /// Moves the send to `to` if its current state allows it ([`SendState::predecessors`]),
    /// setting `error` and `wamid` when given. Returns the record after the call and whether it
    /// moved. `Ok(None)` when the send does not exist.
    async fn transition(
        &self,
        id: &str,
        to: SendState,
        error: Option<&SendError>,
        wamid: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<(SendRecord, bool)>, StoreError>;
    /// Takes the right to call Meta for a queued send until `until_ms` (so two deliveries of the
    /// same queue message never both send). `Ok(false)` when another holder's lease is running
    /// or the send is no longer queued.
    async fn claim(&self, id: &str, now_ms: i64, until_ms: i64) -> Result<bool, StoreError>;
    /// Gives the claim back (the attempt failed in a retryable way; the next may start at once).
    async fn release(&self, id: &str) -> Result<(), StoreError>;
    /// Takes the pair-rate window of (`number`, `recipient`) (Meta: about one message per 6 s
    /// from one business number to one user; `None`: the implicit single number) for send `id`
    /// until `now_ms + interval`, shared by every sender process (each process also paces
    /// pairs in memory, but Lambda runs several). Two numbers writing to one customer do not
    /// wait on each other. `Ok(None)`: taken, also when `id` already held it (a redelivery is
    /// not held back by its own earlier attempt); `Ok(Some(wait))`: another send holds it for
    /// `wait` more.
    async fn reserve_pair(
        &self,
        recipient: &str,
        number: Option<&str>,
        id: &str,
        now_ms: i64,
        interval: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, StoreError>;
    /// The send id of a Meta message id (statuses of free-form sends carry no callback data).
    async fn find_by_wamid(&self, wamid: &str) -> Result<Option<String>, StoreError>;
}

/// How long a pair window held until `until_ms` still runs at `now_ms` (at least 1 ms).
pub fn pair_wait(until_ms: i64, now_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(until_ms.saturating_sub(now_ms).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::SendState::*;
    use super::*;

    #[test]
    fn states_only_move_forward() {
        assert!(Queued.can_move_to(Sent));
        assert!(Sent.can_move_to(Delivered));
        assert!(Delivered.can_move_to(Read));
        assert!(Queued.can_move_to(Read));
        assert!(Sent.can_move_to(Failed));
        assert!(Queued.can_move_to(Refused));
        assert!(!Read.can_move_to(Delivered));
        assert!(!Delivered.can_move_to(Sent));
        assert!(!Failed.can_move_to(Sent));
        assert!(!Read.can_move_to(Failed));
        assert!(!Sent.can_move_to(Refused));
        for s in [Queued, Sent, Delivered, Read, Failed, Refused] {
            assert!(!s.can_move_to(s), "{s:?} to itself");
            assert_eq!(SendState::parse(s.as_str()), Some(s));
        }
    }
}
