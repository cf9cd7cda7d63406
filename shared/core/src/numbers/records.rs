//! The `records` destination (`docs/destinations.md`): the canonical records of each event,
//! posted as the webhook CRM posts them, by a crm-sync ([`CrmSync`]) of the destination's own.
//!
//! That crm-sync shares what makes records the same as the CRM's (the event's number's mapping,
//! the contact ids of the identity store) and keeps apart what would make the two interfere:
//!
//! - its effects ledger is [`ScopedLedger`]: every effect id is prefixed with the destination,
//!   so a redelivery posts nothing twice to the destination, and the CRM's confirmed effects
//!   never make the destination skip a record (nor the destination's the CRM);
//! - it reads identities and never writes them ([`ReadIdentities`]): the CRM's crm-sync owns
//!   them, and a contact the destination created first would look known to the CRM's
//!   crm-sync, which would then not write it. An event of a person the CRM's crm-sync has not
//!   resolved yet (it runs beside, usually within milliseconds) waits for it over the first
//!   [`WAIT_RECEIVES`] receives, then goes out with a contact id of its own;
//! - it folds no conversations, attributes nothing, runs no sending hooks, fetches no media and
//!   emits no business alerts: the CRM's crm-sync does each once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::route::Route;
use super::{Numbers, UnknownNumbers};
use crate::alerts::{AlertSink, Signal};
use crate::breaker::CircuitBreaker;
use crate::consumer::{Handler, Outcome};
use crate::crm::Crm;
use crate::error::StoreError;
use crate::event::Event;
use crate::identity::{IdentityKey, IdentityStore, Resolved};
use crate::ledger::{Claim, Ledger};
use crate::mapping::{Mapping, MappingFileError};
use crate::queue::Delivery;
use crate::sync::CrmSync;

/// Receives over which an event of a person no key of whom is known waits for the CRM's
/// crm-sync to resolve them (a retry each, with the usual backoff: seconds in all).
pub const WAIT_RECEIVES: u32 = 3;

/// The crm-syncs of a records destination, by number label, and the one of events of no known
/// number.
struct Syncs {
    by_label: HashMap<String, Arc<CrmSync>>,
    fallback: Arc<CrmSync>,
}

/// The consumer of one records destination's queue: each event through the crm-sync of its
/// number (its mapping, its business number on the activities), or the fallback's for an event
/// of no known number. Dead letters and retries name the destination.
pub struct RecordsHandler {
    name: String,
    numbers: Option<Arc<Numbers>>,
    /// Over the first [`WAIT_RECEIVES`]: an unknown person waits for the CRM's crm-sync.
    waiting: Syncs,
    /// Afterwards: an unknown person gets a contact id of its own.
    settled: Syncs,
    breaker: Arc<CircuitBreaker>,
}

impl RecordsHandler {
    /// `sync(label, identities)` builds the crm-sync of the number with this label over these
    /// identities, `sync(None, …)` the one of events no number of `numbers` claims (or of every
    /// event, without a registry). `identities` is the shared store: the handler hands `sync`
    /// read-only views of it ([`ReadIdentities`]). Each gets the destination's breaker and no
    /// alerts.
    pub fn new(
        name: &str,
        numbers: Option<Arc<Numbers>>,
        identities: Arc<dyn IdentityStore>,
        mut sync: impl FnMut(Option<&str>, Arc<dyn IdentityStore>) -> CrmSync,
    ) -> RecordsHandler {
        let breaker = Arc::new(CircuitBreaker::new("destination"));
        let mut syncs = |wait: bool| {
            let view: Arc<dyn IdentityStore> = Arc::new(ReadIdentities {
                inner: identities.clone(),
                wait,
            });
            let mut finish = |label: Option<&str>| {
                Arc::new(
                    sync(label, view.clone())
                        .with_breaker(breaker.clone())
                        .with_alerts(Arc::new(NoAlerts)),
                )
            };
            Syncs {
                by_label: numbers
                    .iter()
                    .flat_map(|n| n.all())
                    .map(|n| (n.label.clone(), finish(Some(&n.label))))
                    .collect(),
                fallback: finish(None),
            }
        };
        let (waiting, settled) = (syncs(true), syncs(false));
        RecordsHandler {
            name: name.to_string(),
            numbers,
            waiting,
            settled,
            breaker,
        }
    }

    /// The one way `wabridge serve` and the relay Lambda build a records destination: each
    /// number's crm-sync posts to `crm` (the webhook CRM at the destination's URL, signed with
    /// its secret) with the number's mapping of `mappings` and its business number, over
    /// `identities` (read only) and `ledger` scoped to the destination ([`ScopedLedger`]).
    pub fn over(
        name: &str,
        numbers: Option<Arc<Numbers>>,
        identities: Arc<dyn IdentityStore>,
        ledger: Arc<dyn Ledger>,
        crm: Arc<dyn Crm>,
        mappings: Mappings,
    ) -> RecordsHandler {
        let ledger: Arc<dyn Ledger> = Arc::new(ScopedLedger::new(ledger, name));
        let registry = numbers.clone();
        RecordsHandler::new(name, numbers, identities, move |label, identities| {
            let mapping = label
                .and_then(|l| mappings.by_label.get(l))
                .unwrap_or(&mappings.fallback);
            let sync = CrmSync::new(identities, ledger.clone(), crm.clone(), mapping.clone());
            match label.and_then(|l| registry.as_ref()?.find(l)) {
                Some(n) => sync.with_number(n.business_number()),
                None => sync,
            }
        })
    }

    /// The destination's breaker, which its worker paces itself by.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

#[async_trait]
impl Handler for RecordsHandler {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let name = &self.name;
        let event = match Event::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(format!("destination {name}: not an event: {e}")),
        };
        let syncs = match delivery.receive_count <= WAIT_RECEIVES {
            true => &self.waiting,
            false => &self.settled,
        };
        let sync = match self.numbers.as_deref().map(|n| n.route(&event)) {
            Some(Route::Number(n)) => &syncs.by_label[&n.label],
            _ => &syncs.fallback,
        };
        match sync.handle_event(&event, delivery.receive_count).await {
            Outcome::Done => Outcome::Done,
            Outcome::Retry { after, reason } => Outcome::Retry {
                after,
                reason: format!("destination {name}: {reason}"),
            },
            Outcome::DeadLetter(reason) => {
                Outcome::DeadLetter(format!("destination {name}: {reason}"))
            }
        }
    }
}

/// The mappings of a records destination: each number's (its CRM target's file, else the
/// example of its CRM kind), and the one of events of no known number: the mapping of
/// `unknown_numbers`' number, else the first number's; without a registry, `no_registry`'s.
pub struct Mappings {
    by_label: HashMap<String, Arc<Mapping>>,
    fallback: Arc<Mapping>,
}

impl Mappings {
    pub fn of(
        numbers: Option<&Numbers>,
        no_registry: impl FnOnce() -> Result<Mapping, MappingFileError>,
    ) -> Result<Mappings, MappingFileError> {
        let of = |n: &super::Number| match &n.crm.mapping {
            Some(path) => Mapping::load(path),
            None => Mapping::example(&n.crm.kind),
        };
        let Some(registry) = numbers else {
            return Ok(Mappings {
                by_label: HashMap::new(),
                fallback: Arc::new(no_registry()?),
            });
        };
        let mut by_label = HashMap::new();
        for n in registry.all() {
            by_label.insert(n.label.clone(), Arc::new(of(n)?));
        }
        let fallback = match &registry.unknown {
            UnknownNumbers::RouteTo(label) => registry.find(label),
            UnknownNumbers::DeadLetter => registry.all().first(),
        };
        let fallback = match fallback {
            Some(n) => by_label[&n.label].clone(),
            None => Arc::new(Mapping::example("webhook")?),
        };
        Ok(Mappings { by_label, fallback })
    }
}

/// An effects ledger whose ids (and message-status ranks) live under `scope`: a destination's
/// effects are claimed apart from the CRM's and every other destination's.
pub struct ScopedLedger {
    inner: Arc<dyn Ledger>,
    scope: String,
}

impl ScopedLedger {
    /// The ledger of destination `name` over the shared `inner`.
    pub fn new(inner: Arc<dyn Ledger>, name: &str) -> ScopedLedger {
        ScopedLedger {
            inner,
            scope: format!("{}{name}|", super::destinations::QUEUE_PREFIX),
        }
    }

    fn id(&self, id: &str) -> String {
        format!("{}{id}", self.scope)
    }
}

#[async_trait]
impl Ledger for ScopedLedger {
    async fn claim(&self, effect_id: &str, lease: Duration) -> Result<Claim, StoreError> {
        self.inner.claim(&self.id(effect_id), lease).await
    }
    async fn confirm(&self, effect_id: &str) -> Result<(), StoreError> {
        self.inner.confirm(&self.id(effect_id)).await
    }
    async fn release(&self, effect_id: &str) -> Result<(), StoreError> {
        self.inner.release(&self.id(effect_id)).await
    }
    async fn abandon(&self, effect_id: &str) -> Result<(), StoreError> {
        self.inner.abandon(&self.id(effect_id)).await
    }
    async fn advance_status(&self, message_id: &str, rank: u8) -> Result<bool, StoreError> {
        self.inner.advance_status(&self.id(message_id), rank).await
    }
}

/// The identity store as a destination sees it: the contact ids the CRM's crm-sync resolved,
/// never a write. A person no key of whom is known yet is, while `wait`, a retryable store
/// error (the CRM's crm-sync resolves them meanwhile); else a fresh contact id on this event's
/// records only. Every contact counts as new, so each event carries its contact record (once,
/// through the ledger) and is checked against erasures.
pub struct ReadIdentities {
    pub inner: Arc<dyn IdentityStore>,
    pub wait: bool,
}

impl ReadIdentities {
    async fn known(&self, keys: &[&IdentityKey], new_id: &str) -> Result<String, StoreError> {
        for key in keys {
            if let Some(id) = self.inner.lookup(key).await? {
                return Ok(id);
            }
        }
        match self.wait {
            true => Err(StoreError::Unavailable(
                "the contact is not resolved by the CRM's crm-sync yet".into(),
            )),
            false => Ok(new_id.into()),
        }
    }
}

#[async_trait]
impl IdentityStore for ReadIdentities {
    async fn lookup(&self, key: &IdentityKey) -> Result<Option<String>, StoreError> {
        self.inner.lookup(key).await
    }
    async fn resolve(&self, keys: &[IdentityKey], new_id: &str) -> Result<Resolved, StoreError> {
        let keys: Vec<&IdentityKey> = keys.iter().collect();
        let contact_id = self.known(&keys, new_id).await?;
        Ok(Resolved {
            contact_id,
            created: true,
        })
    }
    async fn move_key(
        &self,
        from: &IdentityKey,
        to: &IdentityKey,
        new_id: &str,
    ) -> Result<String, StoreError> {
        self.known(&[to, from], new_id).await
    }
    async fn erased_at(&self, key: &IdentityKey) -> Result<Option<i64>, StoreError> {
        self.inner.erased_at(key).await
    }
    /// Nothing to unlink: the destination linked nothing.
    async fn forget(&self, _keys: &[IdentityKey], _contact_id: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Business alerts are the CRM's crm-sync's to emit: a destination's would count them twice.
struct NoAlerts;

#[async_trait]
impl AlertSink for NoAlerts {
    async fn record(&self, _signal: &Signal, _at_ms: i64) -> Result<(), StoreError> {
        Ok(())
    }
}

// Tested over the SQLite stores: `wabridge_sqlite::deliveries` (records_destination tests).
