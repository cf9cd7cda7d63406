//! The CRM effects of one event: validated through the mapping first, then each applied through
//! the effects ledger (claim → CRM → confirm), with a few quick in-process retries.

use std::future::Future;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::breaker::Admit;
use crate::consumer::Outcome;
use crate::crm::{retry_delay, CrmError, Effect};
use crate::error::StoreError;
use crate::event::Event;
use crate::ledger::{effect_id, Claim};
use crate::mapping::ValidationError;
use crate::records::{ConsentRecord, Record};
use crate::redact;
use crate::webhook::model::StatusKind;

use super::CrmSync;

/// One record with its mapped CRM fields, under its effect name.
pub(super) struct Pending {
    name: &'static str,
    record: Record,
    fields: Map<String, Value>,
}

impl Pending {
    pub(super) fn new(name: &'static str, record: Record, fields: Map<String, Value>) -> Self {
        Pending {
            name,
            record,
            fields,
        }
    }
}

/// The event's contact with its mapped fields: what its other records associate to.
pub(super) type Contact = Option<(Record, Map<String, Value>)>;

/// In-process attempts per effect before the delivery goes back to the queue: a blip (one 5xx,
/// one short 429) is absorbed here instead of costing a receive.
const QUICK_ATTEMPTS: u32 = 3;
/// Longest CRM-given delay waited in process; longer ones go back to the queue.
const QUICK_WAIT_MAX: Duration = Duration::from_secs(1);

impl CrmSync {
    /// Maps the event's contact.
    pub(super) fn validate_contact(
        &self,
        contact: Option<Record>,
    ) -> Result<Contact, ValidationError> {
        contact
            .map(|c| self.mapping.apply(&c).map(|fields| (c, fields)))
            .transpose()
    }

    /// Whether every record passes the mapping as it is now.
    pub(super) fn passes(&self, records: &[(&'static str, Record)]) -> bool {
        records.iter().all(|(_, r)| self.mapping.apply(r).is_ok())
    }

    /// Maps every record; attribution and lead records (`extra`) pass through as they are (no
    /// mapping section for them).
    pub(super) fn validate(
        &self,
        records: Vec<(&'static str, Record)>,
        extra: Vec<(&'static str, Record)>,
    ) -> Result<Vec<Pending>, ValidationError> {
        let mut list = Vec::with_capacity(records.len() + extra.len());
        for (name, record) in records {
            let fields = self.mapping.apply(&record)?;
            list.push(Pending::new(name, record, fields));
        }
        list.extend(
            extra
                .into_iter()
                .map(|(name, record)| Pending::new(name, record, Map::new())),
        );
        Ok(list)
    }

    /// Applies the effects through the ledger, in as few CRM round trips as their order allows.
    ///
    /// `write` is the contact's write; with `early` it starts at once, beside `rest` (the
    /// other records, being completed and validated), else once `rest` validated. The records
    /// of `rest` follow the contact (they associate to it; a CRM that writes conversations
    /// first gets them in a stage of their own before the others), each stage's effects at
    /// once. Those that need nothing of the contact ([`crate::crm::Crm::waits_for_contact`])
    /// go out beside it as soon as they are built. So an event costs two round trips or fewer
    /// however many effects it has.
    ///
    /// Returns `Some(outcome)` when the delivery ends here (a dead letter when a record was
    /// refused by the mapping or by the CRM, else a retry; the effects that were applied are
    /// confirmed and count as done on the next delivery), and the event's consent records.
    pub(super) async fn apply(
        &self,
        event: &Event,
        status: Option<&(String, StatusKind)>,
        contact: &Contact,
        (write, early): (Option<Pending>, bool),
        rest: impl Future<Output = Result<Result<Vec<Pending>, ValidationError>, StoreError>>,
        receive_count: u32,
    ) -> Result<(Option<Outcome>, Vec<ConsentRecord>), StoreError> {
        let one = |p| self.apply_one(event, status, p, contact, receive_count);
        let stopped = |results: &[Result<Option<Outcome>, StoreError>]| {
            results.iter().any(|r| !matches!(r, Ok(None)))
        };
        let (built, ready) = tokio::sync::oneshot::channel::<Vec<Pending>>();
        let chain = async {
            let mut results = Vec::new();
            let mut write = write;
            if let (true, Some(p)) = (early, write.take()) {
                results.push(one(p).await);
            }
            // Nothing arrives when `rest` failed: the delivery ends with its reason.
            let Ok(list) = ready.await else {
                return results;
            };
            if let Some(p) = write {
                results.push(one(p).await);
            }
            let (convs, others): (Vec<_>, Vec<_>) = list.into_iter().partition(|p| {
                self.crm.conversations_first() && matches!(p.record, Record::Conversation(_))
            });
            for stage in [convs, others] {
                if stopped(&results) {
                    // What comes next needs this stage's records in the CRM.
                    break;
                }
                results.extend(futures::future::join_all(stage.into_iter().map(one)).await);
            }
            results
        };
        let beside = async {
            let list = match rest.await? {
                Ok(list) => list,
                Err(e) => return Ok(Err(e)),
            };
            let consents = list
                .iter()
                .filter_map(|p| match &p.record {
                    Record::Consent(c) => Some(c.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>();
            let (now, after): (Vec<_>, Vec<_>) = list
                .into_iter()
                .partition(|p| !self.crm.waits_for_contact(&p.record));
            // The chain is waiting for these (it is gone only when the future is dropped).
            let _ = built.send(after);
            let results = futures::future::join_all(now.into_iter().map(one)).await;
            Ok::<_, StoreError>(Ok((consents, results)))
        };
        let (mut results, beside) = futures::join!(chain, beside);
        let consents = match beside? {
            Ok((consents, more)) => {
                results.extend(more);
                consents
            }
            Err(e) => {
                let reason = format!("event {}: {e}", redact::key(&event.key));
                // A store error of an effect that did run is still a store error.
                for r in results {
                    r?;
                }
                return Ok((Some(Outcome::DeadLetter(reason)), Vec::new()));
            }
        };
        let mut retry = None;
        for result in results {
            match result? {
                Some(dead @ Outcome::DeadLetter(_)) => return Ok((Some(dead), consents)),
                Some(other) => {
                    retry.get_or_insert(other);
                }
                None => {}
            }
        }
        Ok((retry, consents))
    }

    /// One effect: claim → CRM → confirm. `Some(outcome)` when it was not applied.
    async fn apply_one(
        &self,
        event: &Event,
        status: Option<&(String, StatusKind)>,
        pending: Pending,
        contact: &Option<(Record, Map<String, Value>)>,
        receive_count: u32,
    ) -> Result<Option<Outcome>, StoreError> {
        let Pending {
            name,
            record,
            fields,
        } = pending;
        let id = effect_id(&event.key, name);
        let in_doubt = match self.ledger.claim(&id, self.lease).await? {
            Claim::Done => return Ok(None),
            Claim::Busy(left) => {
                return Ok(Some(Outcome::retry(
                    left.max(Duration::from_millis(100)),
                    format!("effect {name} is being applied by another delivery"),
                )))
            }
            Claim::Proceed { in_doubt } => in_doubt,
        };
        if let (Some((message_id, kind)), "status") = (status, name) {
            if !self.ledger.advance_status(message_id, kind.rank()).await? {
                // A later status was recorded already: this one changes nothing.
                self.ledger.confirm(&id).await?;
                return Ok(None);
            }
        }
        if self.superseded(&record).await? {
            // A newer revision of this conversation exists, and its own event writes it.
            self.ledger.confirm(&id).await?;
            return Ok(None);
        }
        if !crate::consumer::fits(self.crm.call_budget()) {
            // The invocation ends before this call could: leave it to the next delivery.
            self.unclaim(&id, in_doubt).await?;
            return Ok(Some(Outcome::retry(
                crate::retry::backoff(receive_count, None),
                "no time left in this invocation for a CRM call",
            )));
        }
        let admit = self.breaker.admit();
        if let Admit::Wait(wait) = admit {
            // The CRM is down: no call. Wait for the next probe, and at least the backoff
            // of this receive (on SQS every wait costs a receive; see `retry`).
            self.unclaim(&id, in_doubt).await?;
            let after = wait.max(crate::retry::backoff(receive_count, None));
            return Ok(Some(Outcome::retry(
                after,
                format!("{} unavailable (circuit open)", self.crm.kind()),
            )));
        }
        let mut effect = Effect {
            id: id.clone(),
            record,
            fields,
            contact: contact.clone(),
            in_doubt,
        };
        let probe = admit == Admit::Probe;
        if let Err(e) = self.apply_with_quick_retries(&mut effect, probe).await {
            // Released only when no attempt may have applied it (see ledger.rs).
            if e.definitely_not_applied() && !effect.in_doubt {
                self.ledger.release(&id).await?;
            } else if !matches!(e, CrmError::Rejected(_)) {
                self.ledger.abandon(&id).await?;
            }
            if let CrmError::Unauthorized(reason) = &e {
                // Not the event's fault: the CRM's configuration is broken (a revoked token, a
                // missing scope). The alarm `CrmUnauthorized` counts these lines.
                tracing::error!(metric = "crm_unauthorized", crm = self.crm.kind(), effect = name, reason = %reason, "the CRM refused wabridge's credentials: events wait within the retry horizon; fix the token or its scopes (wabridge crm check)");
            } else {
                tracing::warn!(event = %redact::key(&event.key), effect = name, error = %e, "CRM call failed");
            }
            return Ok(Some(match e {
                CrmError::Rejected(reason) => Outcome::DeadLetter(format!(
                    "event {}: {} {name}: {reason}",
                    redact::key(&event.key),
                    self.crm.kind()
                )),
                other => Outcome::retry(
                    retry_delay(&other, receive_count),
                    format!("{} {name}: {other}", self.crm.kind()),
                ),
            }));
        }
        self.ledger.confirm(&id).await?;
        Ok(None)
    }

    /// Whether `record` is a conversation revision that the store has superseded, for a CRM
    /// that writes conversations first ([`crate::crm::Crm::conversations_first`]). Each
    /// revision's event carries it to the CRM, so skipping an older one loses nothing.
    async fn superseded(&self, record: &Record) -> Result<bool, StoreError> {
        let (Record::Conversation(c), Some(conversations), true) =
            (record, &self.conversations, self.crm.conversations_first())
        else {
            return Ok(false);
        };
        let held = conversations.store().get(&c.id).await?;
        let newer = held.is_some_and(|h| h.record.revision > c.revision);
        if newer {
            tracing::info!(conversation = %c.id, revision = c.revision, "a superseded conversation revision is not written");
        }
        Ok(newer)
    }

    /// Gives a claim back without a call: released, or abandoned when an earlier attempt may
    /// have applied it (the next one stays in doubt).
    async fn unclaim(&self, id: &str, in_doubt: bool) -> Result<(), StoreError> {
        if in_doubt {
            self.ledger.abandon(id).await
        } else {
            self.ledger.release(id).await
        }
    }

    /// Calls the CRM, with quick retries unless this call is the breaker's probe (one call) or
    /// the circuit opened meanwhile. Every answer is reported to the breaker.
    async fn apply_with_quick_retries(
        &self,
        effect: &mut Effect,
        probe: bool,
    ) -> Result<(), CrmError> {
        let mut attempt = 1;
        loop {
            let result = self.crm.apply(effect).await;
            match &result {
                Err(e) if e.is_unavailable() => self.breaker.failure(probe),
                _ => self.breaker.success(probe),
            }
            let wait = match &result {
                Ok(()) | Err(CrmError::Rejected(_)) | Err(CrmError::Unauthorized(_)) => {
                    return result
                }
                _ if probe || attempt >= QUICK_ATTEMPTS || self.breaker.gate().is_some() => {
                    return result
                }
                Err(CrmError::RateLimited(Some(hint))) if *hint <= QUICK_WAIT_MAX => *hint,
                Err(CrmError::RateLimited(Some(_))) => return result,
                Err(CrmError::RateLimited(None)) => {
                    Duration::from_millis(rand::random_range(50..=250))
                }
                Err(CrmError::Transient(_)) => {
                    // A 5xx or a timeout may have been applied: the next try is in doubt.
                    effect.in_doubt = true;
                    Duration::from_millis(rand::random_range(0..=100u64 << attempt))
                }
            };
            if !crate::consumer::fits(self.crm.call_budget().map(|b| b + wait)) {
                return result;
            }
            tokio::time::sleep(wait).await;
            if self.breaker.gate().is_some() {
                // It opened while we waited: this delivery waits with the others.
                return result;
            }
            attempt += 1;
        }
    }
}
