//! CRMs behind one trait. crm-sync hands every validated record to a [`Crm`] as an [`Effect`];
//! the adapters live in the `wabridge-crm` crate: local (the SQLite records store of `wabridge serve`), webhook (signed JSON
//! POSTs, Standard Webhooks) and HubSpot (CRM v3 contacts + communications).
//!
//! Errors are classified so the queue retries the right way: [`CrmError::RateLimited`] honours
//! the CRM's delay; [`CrmError::Transient`] (5xx, 408, timeouts, connection errors) and
//! [`CrmError::Unauthorized`] (401/403: our credentials broke, the event is fine) wait within the
//! retry horizon with exponential backoff and jitter ([`crate::retry`]); [`CrmError::Rejected`]
//! (any other 4xx) dead-letters with its reason.

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
    /// 401/403: the CRM refused our credentials (revoked, expired, a missing scope). The
    /// event is not at fault: it waits, within the retry horizon, for someone to fix them.
    #[error("CRM refused the credentials: {0}")]
    Unauthorized(String),
    /// 4xx other than 401/403/408/429: the CRM refused the record; retrying cannot help.
    #[error("CRM rejected the record: {0}")]
    Rejected(String),
}

impl CrmError {
    /// Whether the CRM definitely did not apply the effect (the next attempt is not in doubt).
    pub fn definitely_not_applied(&self) -> bool {
        matches!(
            self,
            CrmError::RateLimited(_) | CrmError::Rejected(_) | CrmError::Unauthorized(_)
        )
    }

    /// Whether it says the CRM is unavailable to us (the circuit breaker counts these); a
    /// rejected record means the CRM answered.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, CrmError::Rejected(_))
    }
}

#[async_trait]
pub trait Crm: Send + Sync {
    /// `local`, `webhook`, `hubspot`.
    fn kind(&self) -> &'static str;
    /// Applies one effect. Must be safe to repeat when `effect.in_doubt`.
    async fn apply(&self, effect: &Effect) -> Result<(), CrmError>;
    /// The longest one [`Crm::apply`] may take (its HTTP timeouts), so that an attempt that
    /// would outlive the invocation is not started; `None` when it has no bound worth saying.
    fn call_budget(&self) -> Option<std::time::Duration> {
        None
    }
    /// Whether an event's `conversation` records are written before its other effects, and a
    /// revision the conversation store has since superseded is not written at all. For CRMs
    /// whose activities link to the conversation's own record (a Pipedrive deal, a Salesforce
    /// case), which must exist first, and whose record cannot refuse an older revision itself.
    /// HubSpot's tickets and the webhook's receivers order revisions themselves.
    fn conversations_first(&self) -> bool {
        false
    }
    /// Whether writing `record` waits for the event's contact to be written (the default: most
    /// records associate to the contact's CRM record). `false` starts it beside the contact's
    /// write, as soon as the record is built, and the CRM orders what depends on it itself
    /// (HubSpot: a ticket is created, then tied to its contact once the contact's id is known).
    fn waits_for_contact(&self, _record: &Record) -> bool {
        true
    }
}

/// The delay before the next attempt after `error` on receive `receive_count`: the retry
/// schedule of [`crate::retry::backoff`], never shorter than the CRM's own delay.
pub fn retry_delay(error: &CrmError, receive_count: u32) -> Duration {
    let hint = match error {
        CrmError::RateLimited(hint) => *hint,
        _ => None,
    };
    crate::retry::backoff(receive_count, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_honour_hints_and_back_off() {
        let hint = Duration::from_secs(7);
        assert!(retry_delay(&CrmError::RateLimited(Some(hint)), 1) >= hint);
        for e in [
            CrmError::Transient("x".into()),
            CrmError::Unauthorized("401".into()),
        ] {
            assert!(retry_delay(&e, 1) <= Duration::from_secs(1));
            assert!(retry_delay(&e, 40) <= crate::retry::MAX_BACKOFF);
            assert!(e.is_unavailable() && !CrmError::Rejected("x".into()).is_unavailable());
        }
    }
}
