//! crm-sync: the events-queue consumer that lands WhatsApp events in the CRM.
//!
//! For each delivery ([`CrmSync::handle`]): parse the [`Event`], resolve the identity (one
//! contact per person), build canonical records ([`build::plan`]), validate every one through
//! the mapping (a record breaking a rule dead-letters the delivery with field and rule, before
//! anything reaches the CRM), then run each side effect through the effects ledger
//! (claim → CRM → confirm; see [`crate::ledger`]). Outcomes: `Done`; `RetryAfter` for 429 (the
//! CRM's delay), 5xx / timeouts (exponential backoff, full jitter) and store outages;
//! `DeadLetter` for malformed events, validation failures and 4xx rejections.

pub mod build;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::consumer::{Handler, Outcome};
use crate::crm::{retry_delay, Crm, CrmError, Effect};
use crate::error::StoreError;
use crate::event::Event;
use crate::identity::{new_contact_id, IdentityKey, IdentityStore};
use crate::ledger::{effect_id, Claim, Ledger, DEFAULT_LEASE};
use crate::mapping::Mapping;
use crate::queue::Delivery;
use crate::records::{ConsentRecord, Record};

use build::{set_contact, IdentityOp};

/// What a hook knows about the event it is called for.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    pub event: &'a Event,
    /// The CRM contact of the event, when it names a person.
    pub contact_id: Option<&'a str>,
    /// Every identity key the event names for the person (phone and BSUID; after a number
    /// change, the new one), so the sending side can record under each.
    pub keys: &'a [IdentityKey],
}

/// Hooks for the sending side (consent history, 24-hour window, delivery tracking, template
/// registry), called after the CRM effects of an event succeeded. Implementations must be
/// idempotent (a redelivery calls them again); an error retries the delivery. Default: nothing.
///
/// crm-sync calls the `on_*` methods; their defaults forward to the simpler
/// [`SyncHooks::consent_changed`] / [`SyncHooks::inbound_message`] (contact id only).
#[async_trait]
pub trait SyncHooks: Send + Sync {
    /// A consent change (keyword or `user_preferences`).
    async fn consent_changed(
        &self,
        _contact_id: &str,
        _consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// An inbound message from the contact at `at_ms` (when ingest received it).
    async fn inbound_message(&self, _contact_id: &str, _at_ms: i64) -> Result<(), StoreError> {
        Ok(())
    }
    /// A consent change (keyword, `user_preferences`, or Meta's 131050 reported by the sender).
    async fn on_consent(
        &self,
        ctx: &HookContext<'_>,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        match ctx.contact_id {
            Some(id) => self.consent_changed(id, consent).await,
            None => Ok(()),
        }
    }
    /// An inbound message; `message_at_ms` is the message's own `timestamp` (ingest's receive
    /// time when it has none). Opens the 24-hour window.
    async fn on_inbound(
        &self,
        ctx: &HookContext<'_>,
        _message_at_ms: i64,
    ) -> Result<(), StoreError> {
        match ctx.contact_id {
            Some(id) => self.inbound_message(id, ctx.event.received_at).await,
            None => Ok(()),
        }
    }
    /// A `statuses[]` item (delivery tracking of our sends).
    async fn on_status(&self, _ctx: &HookContext<'_>, _status: &Value) -> Result<(), StoreError> {
        Ok(())
    }
    /// A `message_template_status_update` value (the template registry).
    async fn on_template_status(
        &self,
        _ctx: &HookContext<'_>,
        _update: &Value,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

pub struct NoHooks;
impl SyncHooks for NoHooks {}

pub struct CrmSync {
    identities: Arc<dyn IdentityStore>,
    ledger: Arc<dyn Ledger>,
    crm: Arc<dyn Crm>,
    mapping: Arc<Mapping>,
    hooks: Arc<dyn SyncHooks>,
    lease: Duration,
    attribution: Option<(
        Arc<dyn crate::attribution::AttributionStore>,
        Arc<crate::attribution::AttributionConfig>,
    )>,
}

impl CrmSync {
    pub fn new(
        identities: Arc<dyn IdentityStore>,
        ledger: Arc<dyn Ledger>,
        crm: Arc<dyn Crm>,
        mapping: Arc<Mapping>,
    ) -> Self {
        CrmSync {
            identities,
            ledger,
            crm,
            mapping,
            hooks: Arc::new(NoHooks),
            lease: DEFAULT_LEASE,
            attribution: None,
        }
    }

    /// Attribution of inbound messages (first / last touch, leads): each record it produces is
    /// one more effect of the event (`attribution_first`, `attribution_last`, `lead`).
    pub fn with_attribution(
        mut self,
        store: Arc<dyn crate::attribution::AttributionStore>,
        config: crate::attribution::AttributionConfig,
    ) -> Self {
        self.attribution = Some((store, Arc::new(config)));
        self
    }

    pub fn with_hooks(mut self, hooks: Arc<dyn SyncHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Lease of effect claims (default [`DEFAULT_LEASE`]); keep it above the CRM timeout.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn crm(&self) -> &Arc<dyn Crm> {
        &self.crm
    }

    async fn process(&self, event: &Event, receive_count: u32) -> Result<Outcome, StoreError> {
        let plan = match build::plan(event, &self.mapping.consent) {
            Ok(p) => p,
            Err(reason) => {
                return Ok(Outcome::DeadLetter(format!(
                    "event {}: {reason}",
                    event.key
                )))
            }
        };
        // Identity first: every record of this event belongs to one contact.
        let new_id = new_contact_id();
        let (contact_id, created) = match &plan.identity {
            IdentityOp::None => (None, false),
            IdentityOp::Resolve(keys) => {
                let r = self.identities.resolve(keys, &new_id).await?;
                (Some(r.contact_id), r.created)
            }
            IdentityOp::Move { from, to, also } => {
                let id = self.identities.move_key(from, to, &new_id).await?;
                if !also.is_empty() {
                    self.identities.resolve(also, &id).await?;
                }
                (Some(id), false)
            }
        };
        let mut records = plan.records;
        let mut contact = plan.contact.map(Record::Contact);
        if let Some(id) = &contact_id {
            if let Some(c) = contact.as_mut() {
                set_contact(c, id);
            }
            for (_, r) in records.iter_mut() {
                set_contact(r, id);
            }
        }
        // Attribution of inbound messages: the code leaves the activity text, and every record
        // it produces is one more effect of this event (exactly once through the ledger).
        let mut extra: Vec<(&'static str, Record)> = Vec::new();
        if let (Some((store, config)), Some(id)) = (&self.attribution, &contact_id) {
            if let Some(att) =
                crate::attribution::on_event(store.as_ref(), config, event, id).await?
            {
                for (_, r) in records.iter_mut() {
                    if let Record::Activity(a) = r {
                        if a.direction == Some(crate::records::Direction::Inbound)
                            && att.ref_code.is_some()
                        {
                            a.text = att.customer_text.clone();
                            a.ref_code = att.ref_code.clone();
                            a.ref_code_status = att.code_status;
                        }
                    }
                }
                for out in att.records {
                    extra.push(match out {
                        crate::attribution::AttributionOutput::Attribution(a) => (
                            match a.touch {
                                crate::attribution::TouchKind::First => "attribution_first",
                                crate::attribution::TouchKind::Last => "attribution_last",
                            },
                            Record::Attribution(a),
                        ),
                        crate::attribution::AttributionOutput::Lead(l) => ("lead", Record::Lead(l)),
                    });
                }
            }
        }
        // Validate everything before any effect: a bad record never reaches the CRM.
        let contact = match contact {
            Some(c) => match self.mapping.apply(&c) {
                Ok(fields) => Some((c, fields)),
                Err(e) => return Ok(Outcome::DeadLetter(format!("event {}: {e}", event.key))),
            },
            None => None,
        };
        let mut effects = Vec::new();
        if let Some((c, fields)) = &contact {
            if plan.upsert_contact || created {
                effects.push(("contact", c.clone(), fields.clone()));
            }
        }
        for (name, record) in records {
            match self.mapping.apply(&record) {
                Ok(fields) => effects.push((name, record, fields)),
                Err(e) => return Ok(Outcome::DeadLetter(format!("event {}: {e}", event.key))),
            }
        }
        // Attribution and lead records pass through as they are (no mapping section for them).
        for (name, record) in extra {
            effects.push((name, record, serde_json::Map::new()));
        }
        let consents: Vec<ConsentRecord> = effects
            .iter()
            .filter_map(|(_, r, _)| match r {
                Record::Consent(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        for (name, record, fields) in effects {
            let id = effect_id(&event.key, name);
            let in_doubt = match self.ledger.claim(&id, self.lease).await? {
                Claim::Done => continue,
                Claim::Busy(left) => {
                    return Ok(Outcome::RetryAfter(left.max(Duration::from_millis(100))))
                }
                Claim::Proceed { in_doubt } => in_doubt,
            };
            if name == "status" {
                if let Some((message_id, rank)) = &plan.status {
                    if !self.ledger.advance_status(message_id, *rank).await? {
                        // A later status was recorded already: this one changes nothing.
                        self.ledger.confirm(&id).await?;
                        continue;
                    }
                }
            }
            let mut effect = Effect {
                id: id.clone(),
                record,
                fields,
                contact: contact.clone(),
                in_doubt,
            };
            match self.apply_with_quick_retries(&mut effect).await {
                Ok(()) => self.ledger.confirm(&id).await?,
                Err(e) => {
                    // Released only when no attempt may have applied it (see ledger.rs).
                    if e.definitely_not_applied() && !effect.in_doubt {
                        self.ledger.release(&id).await?;
                    } else if !matches!(e, CrmError::Rejected(_)) {
                        self.ledger.abandon(&id).await?;
                    }
                    tracing::warn!(event = %event.key, effect = name, error = %e, "CRM call failed");
                    return Ok(match e {
                        CrmError::Rejected(reason) => Outcome::DeadLetter(format!(
                            "event {}: {} {name}: {reason}",
                            event.key,
                            self.crm.kind()
                        )),
                        other => Outcome::RetryAfter(retry_delay(&other, receive_count)),
                    });
                }
            }
        }
        // Hooks for the sending side, once the CRM has everything.
        let keys: Vec<IdentityKey> = match &plan.identity {
            IdentityOp::None => vec![],
            IdentityOp::Resolve(keys) => keys.clone(),
            IdentityOp::Move { to, also, .. } => std::iter::once(to.clone())
                .chain(also.iter().cloned())
                .collect(),
        };
        let ctx = HookContext {
            event,
            contact_id: contact_id.as_deref(),
            keys: &keys,
        };
        for consent in &consents {
            self.hooks.on_consent(&ctx, consent).await?;
        }
        use crate::event::EventKind;
        match event.kind {
            EventKind::Message if contact.is_some() && contact_id.is_some() => {
                let item: Value = serde_json::from_str(event.item.get()).unwrap_or(Value::Null);
                let at = item
                    .get("timestamp")
                    .and_then(|t| {
                        t.as_str()
                            .and_then(|s| s.parse::<i64>().ok())
                            .or(t.as_i64())
                    })
                    .map_or(event.received_at, |t| t * 1000);
                self.hooks.on_inbound(&ctx, at).await?;
            }
            EventKind::Status | EventKind::TemplateStatus => {
                let item: Value = serde_json::from_str(event.item.get()).unwrap_or(Value::Null);
                if event.kind == EventKind::Status {
                    self.hooks.on_status(&ctx, &item).await?;
                } else {
                    self.hooks.on_template_status(&ctx, &item).await?;
                }
            }
            _ => {}
        }
        Ok(Outcome::Done)
    }
}

/// In-process attempts per effect before the delivery goes back to the queue: a blip (one 5xx,
/// one short 429) is absorbed here instead of costing a receive (and, after the queue's max
/// receives, a dead letter).
const QUICK_ATTEMPTS: u32 = 3;
/// Longest CRM-given delay waited in process; longer ones go back to the queue.
const QUICK_WAIT_MAX: Duration = Duration::from_secs(1);

impl CrmSync {
    async fn apply_with_quick_retries(&self, effect: &mut Effect) -> Result<(), CrmError> {
        let mut attempt = 1;
        loop {
            let result = self.crm.apply(effect).await;
            let wait = match &result {
                Ok(()) | Err(CrmError::Rejected(_)) => return result,
                _ if attempt >= QUICK_ATTEMPTS => return result,
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
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl Handler for CrmSync {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match Event::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(format!("not an event: {e}")),
        };
        match self.process(&event, delivery.receive_count).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_retryable() => {
                tracing::warn!(event = %event.key, error = %e, "store unavailable, retrying");
                Outcome::RetryAfter(retry_delay(
                    &CrmError::Transient(e.to_string()),
                    delivery.receive_count,
                ))
            }
            Err(e) => Outcome::DeadLetter(format!("event {}: {e}", event.key)),
        }
    }
}
