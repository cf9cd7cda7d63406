//! The CRM effects of one event: validated through the mapping first, then each applied through
//! the effects ledger (claim → CRM → confirm), with a few quick in-process retries.

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

/// Every effect of an event, validated.
pub(super) struct Effects {
    /// The event's contact with its fields (what activities and consents associate to).
    pub(super) contact: Option<(Record, Map<String, Value>)>,
    list: Vec<Pending>,
}

impl Effects {
    /// The consent records among the effects (for the hooks).
    pub(super) fn consents(&self) -> Vec<ConsentRecord> {
        self.list
            .iter()
            .filter_map(|p| match &p.record {
                Record::Consent(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
}

/// In-process attempts per effect before the delivery goes back to the queue: a blip (one 5xx,
/// one short 429) is absorbed here instead of costing a receive.
const QUICK_ATTEMPTS: u32 = 3;
/// Longest CRM-given delay waited in process; longer ones go back to the queue.
const QUICK_WAIT_MAX: Duration = Duration::from_secs(1);

impl CrmSync {
    /// Maps every record (the contact first, written when `write_contact`); attribution and
    /// lead records (`extra`) pass through as they are (no mapping section for them).
    pub(super) fn validate(
        &self,
        contact: Option<Record>,
        write_contact: bool,
        records: Vec<(&'static str, Record)>,
        extra: Vec<(&'static str, Record)>,
    ) -> Result<Effects, ValidationError> {
        let contact = match contact {
            Some(c) => {
                let fields = self.mapping.apply(&c)?;
                Some((c, fields))
            }
            None => None,
        };
        let mut list = Vec::with_capacity(records.len() + extra.len() + 1);
        if let (Some((c, fields)), true) = (&contact, write_contact) {
            list.push(Pending {
                name: "contact",
                record: c.clone(),
                fields: fields.clone(),
            });
        }
        for (name, record) in records {
            let fields = self.mapping.apply(&record)?;
            list.push(Pending {
                name,
                record,
                fields,
            });
        }
        list.extend(extra.into_iter().map(|(name, record)| Pending {
            name,
            record,
            fields: Map::new(),
        }));
        Ok(Effects { contact, list })
    }

    /// Applies the effects through the ledger: the contact first (the others associate to
    /// it), then the others at once, so an event costs two CRM round trips however many
    /// effects it has (its activity, its conversation, a consent...). `Some(outcome)` ends the
    /// delivery (a dead letter when any effect was rejected, else a retry); the effects that
    /// were applied are confirmed and count as done on the next delivery. `None` = all applied.
    pub(super) async fn apply(
        &self,
        event: &Event,
        status: Option<&(String, StatusKind)>,
        effects: Effects,
        receive_count: u32,
    ) -> Result<Option<Outcome>, StoreError> {
        let contact = &effects.contact;
        let mut list = effects.list.into_iter().peekable();
        if let Some(first) = list.next_if(|p| p.name == "contact") {
            if let Some(outcome) = self
                .apply_one(event, status, first, contact, receive_count)
                .await?
            {
                return Ok(Some(outcome));
            }
        }
        let (first, rest): (Vec<_>, Vec<_>) = list.partition(|p| {
            self.crm.conversations_first() && matches!(p.record, Record::Conversation(_))
        });
        let mut results = Vec::with_capacity(first.len() + rest.len());
        for stage in [first, rest] {
            results.extend(
                futures::future::join_all(
                    stage
                        .into_iter()
                        .map(|p| self.apply_one(event, status, p, contact, receive_count)),
                )
                .await,
            );
            if results.iter().any(|r| !matches!(r, Ok(None))) {
                // The activities wait for their conversation's record.
                break;
            }
        }
        let mut retry = None;
        for result in results {
            match result? {
                Some(dead @ Outcome::DeadLetter(_)) => return Ok(Some(dead)),
                Some(other) => {
                    retry.get_or_insert(other);
                }
                None => {}
            }
        }
        Ok(retry)
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
