//! The periodic sweep of open conversations (issue 20, item 5): it finds first responses past
//! their SLA and conversations idle past `WABRIDGE_CONVERSATION_IDLE_HOURS`, and measures the
//! backlog (open conversations awaiting a response).
//!
//! The sweep writes nothing itself: for each finding it puts one event on the events queue,
//! keyed by what it found (`sla:<id>`, `idle:<id>`). crm-sync applies it to the store with a
//! conditional write ([`Conversations::breach`], [`Conversations::close_idle`]) and sends the
//! records as effects of that event through the effects ledger. So a finding queued twice (a
//! sweep again before crm-sync got to it, two sweepers at once, SQS redelivery) has one key and
//! its records reach the CRM once; a fold racing it is ordered by the store's revisions.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sla::SlaPolicy;
use super::{CloseReason, ConversationState, Conversations, Write, ATTEMPTS};
use crate::alerts::detect::of_sweep;
use crate::alerts::{AlertSink, LogAlerts};
use crate::config::{ConfigError, Settings, WABRIDGE_SWEEP_INTERVAL};
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::queue::Queue;

/// Default of [`WABRIDGE_SWEEP_INTERVAL`]: a minute, well inside the shortest SLA.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// [`WABRIDGE_SWEEP_INTERVAL`] through `lookup` (`1min`, `30s`, from 1 second to 1 hour).
pub fn sweep_interval(lookup: impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    Settings::new(lookup).duration(
        WABRIDGE_SWEEP_INTERVAL,
        DEFAULT_SWEEP_INTERVAL,
        "a duration from 1s to 1h (30s, 1min)",
        |d| (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(d),
    )
}

/// What one sweep found: a plain struct for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SweepReport {
    /// First responses found past their SLA (an `sla:<id>` event queued for each).
    pub breaches: usize,
    /// Idle conversations found (an `idle:<id>` event queued for each).
    pub closed: usize,
    /// Open conversations awaiting a response.
    pub backlog: usize,
    /// How long the longest-waiting of them has waited (ms).
    pub oldest_wait_ms: Option<i64>,
}

/// The backlog of a number or of all numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Backlog {
    pub count: usize,
    pub oldest_wait_ms: Option<i64>,
}

/// The item of an [`EventKind::Sweep`] event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SweepItem {
    /// The first response was due at `due_at` and had not come when the sweep ran (`at`).
    SlaBreach {
        conversation_id: String,
        due_at: i64,
        at: i64,
    },
    /// No message since `last + idle time`, at `at`.
    IdleClose { conversation_id: String, at: i64 },
}

impl SweepItem {
    pub fn conversation_id(&self) -> &str {
        match self {
            SweepItem::SlaBreach {
                conversation_id, ..
            }
            | SweepItem::IdleClose {
                conversation_id, ..
            } => conversation_id,
        }
    }

    /// The event carrying it: one key per finding, so repeated sweeps share the ledger's
    /// effects.
    pub fn event(&self, number: &str) -> Event {
        let key = match self {
            SweepItem::SlaBreach { .. } => format!("sla:{}", self.conversation_id()),
            SweepItem::IdleClose { .. } => format!("idle:{}", self.conversation_id()),
        };
        Event {
            phone_number_id: Some(number.to_string()),
            ..Event::own(key, EventKind::Sweep, "sweep", self)
        }
    }
}

/// Since when an open conversation has waited for the business, if it waits: its first
/// inbound while unanswered, else its latest inbound after the latest outbound (the earliest
/// unanswered message of a later turn is not kept; its latest is a lower bound).
pub fn waiting_since(state: &ConversationState) -> Option<i64> {
    let r = &state.record;
    let inbound = r.last_inbound_at?;
    match (r.first_response_at, r.last_outbound_at) {
        (None, _) => r.first_inbound_at,
        (Some(_), Some(out)) if out >= inbound => None,
        _ => Some(inbound),
    }
}

/// The backlog among `open` conversations at `now` (of `number` when given).
pub fn backlog(open: &[ConversationState], number: Option<&str>, now: i64) -> Backlog {
    let mut b = Backlog::default();
    for s in open {
        let r = &s.record;
        if !r.is_open() || number.is_some_and(|n| n != r.number) {
            continue;
        }
        if let Some(since) = waiting_since(s) {
            b.count += 1;
            b.oldest_wait_ms = b.oldest_wait_ms.max(Some((now - since).max(0)));
        }
    }
    b
}

/// The sweep: the store's open conversations, the SLA policy, the events queue.
#[derive(Clone)]
pub struct Sweeper {
    conversations: Conversations,
    policy: Arc<SlaPolicy>,
    events: Arc<dyn Queue>,
    alerts: Arc<dyn AlertSink>,
}

impl Sweeper {
    pub fn new(conversations: Conversations, policy: SlaPolicy, events: Arc<dyn Queue>) -> Self {
        Sweeper {
            conversations,
            policy: Arc::new(policy),
            events,
            alerts: Arc::new(LogAlerts),
        }
    }

    /// Where each sweep's backlog goes as a business signal (EMF on AWS, the local alert
    /// state). Breaches are signalled by crm-sync when it writes them: a finding queued by
    /// this sweep may still be answered, and is found again by the next sweep until written.
    pub fn with_alerts(mut self, alerts: Arc<dyn AlertSink>) -> Self {
        self.alerts = alerts;
        self
    }

    /// One sweep at `now`: queues an event per finding, returns what it found.
    pub async fn sweep(&self, now: i64) -> Result<SweepReport, StoreError> {
        let open = self.conversations.store().open().await?;
        let idle_ms = self.conversations.idle_ms;
        let mut events = Vec::new();
        let mut report = SweepReport::default();
        for s in &open {
            let r = &s.record;
            // The SLA first: a conversation both overdue and idle still gets its breach.
            if let Some(due_at) = self.policy.overdue(r, now) {
                report.breaches += 1;
                let item = SweepItem::SlaBreach {
                    conversation_id: r.id.clone(),
                    due_at,
                    at: now,
                };
                events.push(item.event(&r.number).to_message());
            }
            // An unanswered customer is not closed before the SLA has had its say (a Saturday
            // message is due on Monday, after the idle time): the close then comes with the
            // breach, still at last message + idle time.
            let pending = r.sla_breached_at.is_none()
                && r.first_response_at.is_none()
                && self.policy.due_at(r).is_some_and(|due| due > now);
            if !pending && now > r.last_message_at().saturating_add(idle_ms) {
                report.closed += 1;
                let item = SweepItem::IdleClose {
                    conversation_id: r.id.clone(),
                    at: now,
                };
                events.push(item.event(&r.number).to_message());
            }
        }
        let b = backlog(&open, None, now);
        (report.backlog, report.oldest_wait_ms) = (b.count, b.oldest_wait_ms);
        for chunk in events.chunks(10) {
            self.events.send_batch(chunk).await?;
        }
        let (backlog, oldest) = (report.backlog as u64, report.oldest_wait_ms.unwrap_or(0));
        for signal in of_sweep(0, backlog, oldest) {
            self.alerts.record(&signal, now).await?;
        }
        tracing::info!(
            breaches = report.breaches,
            closed = report.closed,
            backlog = report.backlog,
            oldest_wait_ms = report.oldest_wait_ms,
            metric = "conversation_sweep",
            "conversations swept"
        );
        Ok(report)
    }

    /// Sweeps every `interval` until `stop` turns true (`wabridge serve`); a failed sweep is
    /// logged and the next one tries again.
    pub fn spawn(
        self,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if let Err(e) = self.sweep(crate::clock::now_ms()).await {
                    tracing::warn!(error = %e, "conversation sweep failed; trying again later");
                }
            }
        })
    }
}

impl Conversations {
    /// The backlog of `number` (or of all numbers) at `now`.
    pub async fn backlog(&self, number: Option<&str>, now: i64) -> Result<Backlog, StoreError> {
        let open = self.store.open().await?;
        Ok(backlog(&open, number, now))
    }

    /// Marks the first response of conversation `id` breached (`at`), if it still is overdue:
    /// no response by `due_at`. Returns the conversation, and whether it is breached (now or
    /// before). Written on the revision read, so concurrent sweeps and folds order themselves.
    pub async fn breach(
        &self,
        id: &str,
        due_at: i64,
        at: i64,
    ) -> Result<Option<(ConversationState, bool)>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(state) = self.store.get(id).await? else {
                return Ok(None);
            };
            let r = &state.record;
            if r.sla_breached_at.is_some() {
                return Ok(Some((state, true)));
            }
            if r.first_response_at.is_some_and(|f| f <= due_at) {
                // A response (or an earlier time for one) arrived before the due time.
                return Ok(Some((state, false)));
            }
            let mut next = state.clone();
            next.record.sla_breached_at = Some(at);
            next.record.revision += 1;
            if self.save_one(&state, &next).await? {
                return Ok(Some((next, true)));
            }
        }
        Err(busy(id))
    }

    /// Closes conversation `id` for idleness (at its last message + the idle time) if it is
    /// still open and idle at `at`. Returns the conversation and whether this call closed it
    /// (a lazy close by the thread's next message, or an earlier sweep, leaves it `false`).
    pub async fn close_idle(
        &self,
        id: &str,
        at: i64,
        event_key: &str,
    ) -> Result<Option<(ConversationState, bool)>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(state) = self.store.get(id).await? else {
                return Ok(None);
            };
            let r = &state.record;
            if !r.is_open() {
                // Closed by this event before (a redelivery) counts as this event's close.
                let ours = state.last_event.as_deref() == Some(event_key);
                return Ok(Some((state, ours)));
            }
            let closes_at = r.last_message_at().saturating_add(self.idle_ms);
            if at <= closes_at {
                return Ok(Some((state, false)));
            }
            let mut next = state.clone();
            next.record.closed_at = Some(closes_at);
            next.record.close_reason = Some(CloseReason::Idle);
            next.record.revision += 1;
            next.last_event = Some(event_key.to_string());
            if self.save_one(&state, &next).await? {
                return Ok(Some((next, true)));
            }
        }
        Err(busy(id))
    }

    /// Writes `next` over `state` if nobody changed it since.
    pub(super) async fn save_one(
        &self,
        state: &ConversationState,
        next: &ConversationState,
    ) -> Result<bool, StoreError> {
        let write = Write {
            thread: super::thread_key(&state.record.contact_id, &state.record.number),
            conversations: vec![(Some(state.record.revision), next.clone())],
            head: None,
            mark: None,
        };
        self.store.save(&write).await
    }
}

fn busy(id: &str) -> StoreError {
    StoreError::unavailable(format!(
        "conversation {id}: {ATTEMPTS} concurrent writes in a row"
    ))
}
