//! crm-sync: the events-queue consumer that lands WhatsApp events in the CRM.
//!
//! For each delivery ([`CrmSync::handle`]): parse the [`Event`], type its item and build the
//! canonical records ([`plan::plan`]), resolve the identity (one contact per person), validate
//! every record through the mapping (a record breaking a rule dead-letters the delivery with
//! field and rule, before anything reaches the CRM), then run each side effect through the
//! effects ledger (claim → CRM → confirm; see [`crate::ledger`] and `effects`), and last the
//! sending side's [`SyncHooks`].
//!
//! The contact's write starts while attribution and the conversation's fold complete the other
//! records, which are validated again once complete: a rule that only the completed record
//! breaks (one on `conversation_id`, say) dead-letters the delivery after its contact was
//! written; the record itself never reaches the CRM.
//!
//! Outcomes: `Done`; `Retry` for 429 (the CRM's delay), 5xx / timeouts / 401 / 403 (backoff
//! within the retry horizon, see [`crate::retry`]), an open circuit ([`crate::breaker`]) and
//! store outages; `DeadLetter` for malformed events, validation failures and other 4xx
//! rejections.

mod conversation;
mod effects;
mod hooks;
pub mod plan;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::attribution::{AttributionConfig, AttributionOutput, AttributionStore, TouchKind};
use crate::breaker::CircuitBreaker;
use crate::changes::ChangeKind;
use crate::consumer::{Handler, Outcome};
use crate::crm::Crm;
use crate::error::StoreError;
use crate::event::Event;
use crate::identity::{new_contact_id, IdentityStore};
use crate::ledger::{Ledger, DEFAULT_LEASE};
use crate::mapping::{Mapping, ValidationError};
use crate::media::job::MediaJob;
use crate::media::record::MediaState;
use crate::queue::{Delivery, Queue};
use crate::records::{Direction, Record};
use crate::redact;
use crate::webhook::model::{Item, Message};

use effects::Pending;
pub use hooks::{HookContext, NoHooks, SyncHooks};
use plan::{set_contact, IdentityOp, Plan};

pub struct CrmSync {
    identities: Arc<dyn IdentityStore>,
    ledger: Arc<dyn Ledger>,
    crm: Arc<dyn Crm>,
    mapping: Arc<Mapping>,
    hooks: Arc<dyn SyncHooks>,
    lease: Duration,
    attribution: Option<(Arc<dyn AttributionStore>, Arc<AttributionConfig>)>,
    breaker: Arc<CircuitBreaker>,
    /// The media queue: when set, inbound media is fetched (see [`crate::media::job`]).
    media: Option<Arc<dyn Queue>>,
    /// Conversations: when set, every message is folded into its thread's conversation.
    conversations: Option<crate::conversations::Conversations>,
    /// The business number whose events this instance lands (a registry's; see
    /// [`crate::numbers`]): activities carry it, so the CRM shows which line was written to.
    number: Option<crate::numbers::BusinessNumber>,
    /// Where business alerts go (default: the log line only).
    alerts: Arc<dyn crate::alerts::AlertSink>,
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
            breaker: Arc::new(CircuitBreaker::new("crm")),
            media: None,
            conversations: None,
            number: None,
            alerts: Arc::new(crate::alerts::LogAlerts),
        }
    }

    /// Business alerts ([`crate::alerts`]) of the events go to `sink`, once per event.
    pub fn with_alerts(mut self, sink: Arc<dyn crate::alerts::AlertSink>) -> Self {
        self.alerts = sink;
        self
    }

    /// Conversations ([`crate::conversations`]): each message is folded into its thread's
    /// conversation, whose changed records are more effects of the event.
    pub fn with_conversations(
        mut self,
        conversations: crate::conversations::Conversations,
    ) -> Self {
        self.conversations = Some(conversations);
        self
    }

    /// Stamp the activities of every event with this business number.
    pub fn with_number(mut self, number: crate::numbers::BusinessNumber) -> Self {
        self.number = Some(number);
        self
    }

    /// Fetch inbound media: activities carry their media as `pending`, and once an activity is
    /// in the CRM, one job per file goes on `queue` for the media consumer.
    pub fn with_media(mut self, queue: Arc<dyn Queue>) -> Self {
        self.media = Some(queue);
        self
    }

    /// The CRM's circuit breaker (one per process; the worker reads it too).
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = breaker;
        self
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// Attribution of inbound messages (first / last touch, leads): each record it produces is
    /// one more effect of the event (`attribution_first`, `attribution_last`, `lead`).
    pub fn with_attribution(
        mut self,
        store: Arc<dyn AttributionStore>,
        config: AttributionConfig,
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
        let dead = |reason: &dyn std::fmt::Display| {
            Outcome::DeadLetter(format!("event {}: {reason}", redact::key(&event.key)))
        };
        let mut plan = match plan::plan(event, &self.mapping.consent) {
            Ok(p) => p,
            Err(e) => return Ok(dead(&e)),
        };
        // Identity first: every record of this event belongs to one contact.
        let (contact_id, created) = self.resolve(&plan.identity).await?;
        if let (true, Some(id)) = (created, &contact_id) {
            // A new contact may be an erased person's event that was queued before the
            // erasure (SQS cannot delete it): it must not bring them back.
            let keys = plan.identity.keys();
            for key in &keys {
                if let Some(at) = self.identities.erased_at(key).await? {
                    if event.received_at <= at {
                        self.identities.forget(&keys, id).await?;
                        tracing::info!(
                            event = %redact::key(&event.key),
                            metric = "erased_event_skipped",
                            "an event about an erased person, from before the erasure: skipped"
                        );
                        return Ok(Outcome::Done);
                    }
                }
            }
        }
        // Read before the records are sent; emitted once they are in the CRM.
        let mut signals = crate::alerts::detect::of_event(event, &plan.item, &plan.records);
        let mut records = std::mem::take(&mut plan.records);
        for (_, r) in records.iter_mut() {
            let media = match r {
                Record::Activity(a) => {
                    a.business_number = self.number.clone().map(Box::new);
                    &mut a.media
                }
                Record::MessageChange(c) => {
                    if c.change == Some(ChangeKind::Deleted) {
                        // The mapping decides what the CRM does with a deleted message.
                        c.content = Some(self.mapping.revoke.content);
                    }
                    &mut c.media
                }
                _ => continue,
            };
            if self.media.is_some() {
                media
                    .iter_mut()
                    .for_each(|m| m.state = Some(MediaState::Pending));
            }
        }
        let phone = plan.contact.as_ref().and_then(|c| c.phone_e164.clone());
        let mut contact = plan.contact.take().map(Record::Contact);
        if let Some(id) = &contact_id {
            contact.iter_mut().for_each(|c| set_contact(c, id));
            records.iter_mut().for_each(|(_, r)| set_contact(r, id));
        }
        // Validate before any effect: a bad record never reaches the CRM. The contact first:
        // its write may start before the other records are complete.
        let write_contact = plan.upsert_contact || created;
        let unverified = unverified_phone(contact.as_ref()).filter(|_| write_contact);
        let contact = match self.validate_contact(contact) {
            Ok(c) => c,
            Err(e) => return Ok(dead(&e)),
        };
        let has_contact = contact.is_some();
        let write = contact
            .as_ref()
            .filter(|_| write_contact)
            .map(|(record, fields)| Pending::new("contact", record.clone(), fields.clone()));
        // The contact's write goes out while attribution and the conversation's fold read and
        // write this event's stores, when the records already pass the mapping as they are
        // (they are validated again once complete).
        let early = write.is_some() && self.passes(&records);
        let rest = self.complete(
            event,
            &plan,
            contact.as_ref().map(|(c, _)| c),
            contact_id.as_deref(),
            records,
            &mut signals,
        );
        let (outcome, consents) = self
            .apply(
                event,
                plan.status.as_ref(),
                &contact,
                (write, early),
                rest,
                receive_count,
            )
            .await?;
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        if let Some(phone) = unverified {
            // Counted per contact write: a rising count says the crate's phone metadata lags
            // (docs/architecture.md#identity-and-phone-metadata says how to update it).
            tracing::info!(
                event = %event.key,
                phone = %crate::redact::mask(&phone),
                metric = "phone_unverified",
                "a wa_id the phone metadata does not know: kept with phone_verified=false"
            );
        }
        if let Some(outcome) = self.signal(event, &signals).await? {
            return Ok(outcome);
        }
        let keys = plan.identity.keys();
        self.enqueue_media(event, &plan, &keys, phone.as_deref())
            .await?;
        // Hooks for the sending side, once the CRM has everything.
        let ctx = HookContext {
            event,
            contact_id: contact_id.as_deref(),
            keys: &keys,
        };
        for consent in &consents {
            self.hooks.on_consent(&ctx, consent).await?;
        }
        self.item_hooks(&ctx, &plan, has_contact).await?;
        Ok(Outcome::Done)
    }

    /// The event's records other than its contact, complete and validated: attribution and
    /// the conversation's fold (store reads and writes) change its activity and add records
    /// (`Err`: a record the mapping refuses).
    async fn complete(
        &self,
        event: &Event,
        plan: &Plan,
        contact: Option<&Record>,
        contact_id: Option<&str>,
        mut records: Vec<(&'static str, Record)>,
        signals: &mut Vec<crate::alerts::Signal>,
    ) -> Result<Result<Vec<Pending>, ValidationError>, StoreError> {
        let (mut extra, campaign) = match (&plan.item, contact_id) {
            // An edit or revoke is not a new message: no touch, no lead.
            (Item::Message(m), Some(id)) if m.original_message_id().is_none() => {
                self.attribute(event, m, id, &mut records).await?
            }
            _ => (Vec::new(), None),
        };
        if let Some(id) = contact_id {
            // After attribution: a tracked link's code is the conversation's origin, and its
            // campaign may tag it.
            let (changed, conversation) = self
                .converse(event, plan, contact, id, campaign, &mut records)
                .await?;
            for (_, r) in extra.iter_mut() {
                if let Record::Lead(lead) = r {
                    lead.conversation_id = conversation.clone();
                }
            }
            extra.extend(changed);
        }
        if let Item::Sweep(item) = &plan.item {
            let swept = self.swept(item).await?;
            // Signalled here, where the breach is written (once per conversation: the
            // event's key), not by the sweep that found it.
            if swept.iter().any(|(name, _)| *name == "sla_breach") {
                signals.push(crate::alerts::Signal::SlaBreach { count: 1 });
            }
            extra.extend(swept);
        }
        Ok(self.validate(records, extra))
    }

    /// The media jobs of an inbound message, once its activity is in the CRM (a redelivery
    /// enqueues them again: the jobs' keys make the results land once).
    async fn enqueue_media(
        &self,
        event: &Event,
        plan: &Plan,
        keys: &[crate::identity::IdentityKey],
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        let (Some(queue), Item::Message(m) | Item::Echo(m), Some(key)) =
            (&self.media, &plan.item, keys.first())
        else {
            return Ok(());
        };
        // An edit's new file belongs to the original's activity: the job is built from the
        // edit's inner content under the original's message id.
        let Some(source) = m.media_source() else {
            return Ok(());
        };
        let jobs: Vec<_> = MediaJob::of_message(event, &source, &key.as_string(), phone)
            .iter()
            .map(MediaJob::to_message)
            .collect();
        if jobs.is_empty() {
            return Ok(());
        }
        queue.send_batch(&jobs).await
    }

    /// Applies the identity operation: the contact id and whether it was created.
    async fn resolve(&self, op: &IdentityOp) -> Result<(Option<String>, bool), StoreError> {
        let new_id = new_contact_id();
        Ok(match op {
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
        })
    }

    /// Attribution of an inbound message: the code leaves the activity's text, and every record
    /// it produces is one more effect of this event (exactly once through the ledger). Also
    /// returns the campaign of the tracked link whose code the message carried.
    async fn attribute(
        &self,
        event: &Event,
        message: &Message,
        contact_id: &str,
        records: &mut [(&'static str, Record)],
    ) -> Result<(Vec<(&'static str, Record)>, Option<String>), StoreError> {
        let Some((store, config)) = &self.attribution else {
            return Ok((Vec::new(), None));
        };
        let Some(att) =
            crate::attribution::on_event(store.as_ref(), config, event, message, contact_id)
                .await?
        else {
            return Ok((Vec::new(), None));
        };
        // A known code makes the message's own touch the link's (an ad click wins over it).
        let campaign = (att.code_status == Some(crate::attribution::CodeStatus::Known)
            && message.referral.is_none())
        .then(|| att.credit.utm_campaign.clone())
        .flatten();
        if att.ref_code.is_some() {
            for (_, r) in records.iter_mut() {
                if let Record::Activity(a) = r {
                    if a.direction == Some(Direction::Inbound) {
                        a.text = att.customer_text.clone();
                        a.ref_code = att.ref_code.clone();
                        a.ref_code_status = att.code_status;
                    }
                }
            }
        }
        let records = att
            .records
            .into_iter()
            .map(|out| match out {
                AttributionOutput::Attribution(a) => (
                    match a.touch {
                        TouchKind::First => "attribution_first",
                        TouchKind::Last => "attribution_last",
                    },
                    Record::Attribution(a),
                ),
                AttributionOutput::Lead(l) => ("lead", Record::Lead(l)),
            })
            .collect();
        Ok((records, campaign))
    }

    /// The hooks of the item's kind: the 24-hour window, delivery tracking, template registry.
    async fn item_hooks(
        &self,
        ctx: &HookContext<'_>,
        plan: &Plan,
        has_contact: bool,
    ) -> Result<(), StoreError> {
        match &plan.item {
            // Only the user's own new messages open or extend the window: not an edit or a
            // revoke of an earlier one, and never an echo (`Item::Echo`, the business's own
            // message from the Business app), which falls through to nothing below.
            Item::Message(m)
                if has_contact && ctx.contact_id.is_some() && m.original_message_id().is_none() =>
            {
                let at = m
                    .timestamp
                    .map_or(ctx.event.received_at, |t| t.saturating_mul(1000));
                self.hooks.on_inbound(ctx, at).await
            }
            Item::Status(s) => self.hooks.on_status(ctx, s).await,
            Item::TemplateStatus(t) => self.hooks.on_template_status(ctx, t).await,
            _ => Ok(()),
        }
    }
}

/// The phone of a contact record the phone metadata does not know.
fn unverified_phone(contact: Option<&Record>) -> Option<String> {
    match contact {
        Some(Record::Contact(c)) if c.phone_verified == Some(false) => c.phone_e164.clone(),
        _ => None,
    }
}

#[async_trait]
impl Handler for CrmSync {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let event = match Event::from_json(&delivery.body) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(format!("not an event: {e}")),
        };
        self.handle_event(&event, delivery.receive_count).await
    }
}

impl CrmSync {
    /// Handles one parsed event ([`crate::numbers::dispatch`] parses it to route it).
    pub async fn handle_event(&self, event: &Event, receive_count: u32) -> Outcome {
        match self.process(event, receive_count).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_retryable() => {
                tracing::warn!(event = %redact::key(&event.key), error = %e, "store unavailable, retrying");
                Outcome::retry(
                    crate::retry::backoff(receive_count, None),
                    format!("store unavailable: {e}"),
                )
            }
            Err(e) => Outcome::DeadLetter(format!("event {}: {e}", redact::key(&event.key))),
        }
    }
}
