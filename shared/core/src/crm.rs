//! CRMs behind one trait. crm-sync hands every validated record to a [`Crm`] as an [`Effect`];
//! the adapters live in the `wabridge-crm` crate: local (the SQLite records store of `wabridge serve`), webhook (signed JSON
//! POSTs, Standard Webhooks) and HubSpot (CRM v3 contacts + communications).
//!
//! Errors are classified so the queue retries the right way: [`CrmError::RateLimited`] honours
//! the CRM's delay; [`CrmError::Transient`] (5xx, timeouts, connection errors) retries with
//! exponential backoff and full jitter; [`CrmError::Rejected`] (4xx) dead-letters with reason.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::records::Record;

/// One side effect: write this record (with its mapped CRM fields) to the CRM.
#[derive(Debug, Clone)]
pub struct Effect {
    /// Deterministic effect id ([`crate::ledger::effect_id`]): the idempotency key.
    pub id: String,
    pub record: Record,
    /// CRM fields from the mapping.
    pub fields: Map<String, Value>,
    /// For activities and consents: the contact they belong to, with its mapped fields, so
    /// CRMs that associate by their own ids can find or create it.
    pub contact: Option<(Record, Map<String, Value>)>,
    /// Whether an earlier attempt may have applied it (see [`crate::ledger`]).
    pub in_doubt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CrmError {
    /// 429: retry after the CRM's delay (Retry-After, rate-limit headers) when it gave one.
    #[error("rate limited by the CRM (retry after {0:?})")]
    RateLimited(Option<Duration>),
    /// 5xx, timeout, connection error: retry with backoff.
    #[error("CRM unavailable: {0}")]
    Transient(String),
    /// 4xx other than 429: the CRM refused the record; retrying cannot help.
    #[error("CRM rejected the record: {0}")]
    Rejected(String),
}

impl CrmError {
    /// Whether the CRM definitely did not apply the effect (the next attempt is not in doubt).
    pub fn definitely_not_applied(&self) -> bool {
        matches!(self, CrmError::RateLimited(_) | CrmError::Rejected(_))
    }
}

#[async_trait]
pub trait Crm: Send + Sync {
    /// `local`, `webhook`, `hubspot`.
    fn kind(&self) -> &'static str;
    /// Applies one effect. Must be safe to repeat when `effect.in_doubt`.
    async fn apply(&self, effect: &Effect) -> Result<(), CrmError>;
}

/// Retry schedule: exponential backoff from 1 s doubling per receive, capped at 15 min, with
/// full jitter (a uniformly random delay between 0 and the cap, floored at 200 ms) so throttled
/// workers do not retry in lockstep. A CRM-given delay wins, capped at 12 h (SQS's limit).
pub fn retry_delay(error: &CrmError, receive_count: u32) -> Duration {
    const MAX_HINT: Duration = Duration::from_secs(12 * 3600);
    if let CrmError::RateLimited(Some(hint)) = error {
        return (*hint).min(MAX_HINT).max(Duration::from_millis(100));
    }
    let exp = receive_count.saturating_sub(1).min(20);
    let cap_ms = 1000u64.saturating_mul(1 << exp).min(15 * 60 * 1000);
    Duration::from_millis(rand::random_range(0..=cap_ms).max(200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_honour_hints_and_back_off_with_jitter() {
        let hint = Duration::from_secs(7);
        assert_eq!(retry_delay(&CrmError::RateLimited(Some(hint)), 1), hint);
        let t = CrmError::Transient("x".into());
        for _ in 0..50 {
            let d1 = retry_delay(&t, 1);
            assert!(d1 >= Duration::from_millis(200) && d1 <= Duration::from_secs(1));
            let d5 = retry_delay(&t, 5);
            assert!(d5 <= Duration::from_secs(16));
            assert!(retry_delay(&t, 40) <= Duration::from_secs(15 * 60));
        }
        // Full jitter: not all the same.
        let set: std::collections::HashSet<_> = (0..20).map(|_| retry_delay(&t, 8)).collect();
        assert!(set.len() > 1);
    }
}
