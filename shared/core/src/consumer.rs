//! Queue consumers: one handler shape for both engines. The local gateway polls a queue with
//! [`run_worker`]; the Lambdas get batches from the SQS event source and use [`settle`] to turn
//! outcomes into partial batch failures. Handlers never see which engine runs them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::breaker::CircuitBreaker;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::queue::{Delivery, Queue};
use crate::retry::{describe, RetryPolicy};

tokio::task_local! {
    /// When the invocation handling this delivery must have answered (Lambda's deadline, less
    /// the time to settle): read by handlers before each outside call.
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as its invocation deadline (see [`time_left`]).
pub async fn with_deadline<F: std::future::Future>(deadline: Option<Instant>, f: F) -> F::Output {
    match deadline {
        Some(d) => DEADLINE.scope(d, f).await,
        None => f.await,
    }
}

/// The time left before the invocation's deadline, when it has one (Lambda); `None` for the
/// local worker, which has no deadline.
pub fn time_left() -> Option<Duration> {
    DEADLINE
        .try_with(|d| d.saturating_duration_since(Instant::now()))
        .ok()
}

/// Whether a call that may take `budget` still fits before the deadline.
pub fn fits(budget: Option<Duration>) -> bool {
    match (time_left(), budget) {
        (Some(left), Some(budget)) => left >= budget,
        _ => true,
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Work done (or already done before): delete the message.
    Done,
    /// Transient failure (CRM 429/5xx, timeout, store unavailable): deliver again after
    /// `after`, within the queue's retry horizon; `reason` is the dead letter's reason if the
    /// horizon passes first.
    Retry { after: Duration, reason: String },
    /// Can never succeed (validation failed, terminal error): dead-letter with this reason.
    DeadLetter(String),
}

impl Outcome {
    pub fn retry(after: Duration, reason: impl Into<String>) -> Outcome {
        Outcome::Retry {
            after,
            reason: reason.into(),
        }
    }
}

#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, delivery: &Delivery) -> Outcome;
}

/// How a consumer settles outcomes on its queue.
#[derive(Debug, Clone)]
pub struct Settle {
    pub policy: RetryPolicy,
    pub clock: Clock,
    /// Delete the message on `Done` (the local worker); Lambda deletes what is not reported.
    pub delete_on_done: bool,
}

impl Settle {
    pub fn new(policy: RetryPolicy, delete_on_done: bool) -> Self {
        Settle {
            policy,
            clock: Clock::System,
            delete_on_done,
        }
    }

    /// The outcome the queue applies: a retry past the horizon becomes a dead letter that says
    /// so, and the last retry is shortened to fall on the horizon.
    pub fn decide(&self, delivery: &Delivery, outcome: Outcome) -> Outcome {
        let Outcome::Retry { after, reason } = outcome else {
            return outcome;
        };
        let Some(enqueued_at) = delivery.enqueued_at else {
            return Outcome::Retry { after, reason };
        };
        let age = Duration::from_millis((self.clock.now_ms() - enqueued_at).max(0) as u64);
        match self.policy.next(age, after) {
            Some(after) => Outcome::Retry { after, reason },
            None => Outcome::DeadLetter(format!(
                "retry horizon of {} passed ({} receives over {}); last error: {reason}",
                describe(self.policy.horizon),
                delivery.receive_count,
                describe(Duration::from_secs(age.as_secs())),
            )),
        }
    }
}

/// Applies an outcome to the queue (after [`Settle::decide`]). Returns whether the message must
/// be reported as a batch item failure (Lambda), i.e. whether it stays on the queue for another
/// attempt.
pub async fn settle(
    queue: &dyn Queue,
    delivery: &Delivery,
    outcome: Outcome,
    how: &Settle,
) -> Result<bool, StoreError> {
    match how.decide(delivery, outcome) {
        Outcome::Done => {
            if how.delete_on_done {
                queue.delete(&delivery.receipt).await?;
            }
            Ok(false)
        }
        Outcome::Retry { after, reason } => {
            tracing::debug!(message_id = %delivery.message_id, ?after, %reason, "retrying later");
            queue.retry_later(&delivery.receipt, after).await?;
            Ok(true)
        }
        Outcome::DeadLetter(reason) => {
            tracing::warn!(message_id = %delivery.message_id, %reason, "dead-lettered");
            queue.dead_letter(delivery, &reason).await?;
            Ok(false)
        }
    }
}

/// Foreground work the local worker yields to: requests waiting for their durable ack
/// (`wabridge serve` counts its HTTP requests in flight). While at least `busy_at` are in
/// flight, which only a burst does, the worker runs at most
/// [`WorkerOptions::busy_concurrency`] deliveries: the burst's events wait on the queue (what it
/// is for) instead of competing with the acks for the one SQLite writer and both cores, and the
/// backlog drains at full concurrency once the burst is over. A trickle never reaches `busy_at`.
#[derive(Debug, Clone)]
pub struct Pressure(Arc<PressureState>);

#[derive(Debug)]
struct PressureState {
    in_flight: AtomicUsize,
    /// When the count was last at or over `busy_at`, in ms since `origin` (0: never).
    last_busy_ms: AtomicU64,
    origin: Instant,
    busy_at: usize,
}

/// A burst stays "busy" this long after requests were last crowding in: between two group
/// commits the in-flight count drops to almost nothing for an instant, and the worker must
/// not take that for the end of the burst.
pub const BUSY_HOLD: Duration = Duration::from_millis(250);

impl Pressure {
    pub fn new(busy_at: usize) -> Self {
        Pressure(Arc::new(PressureState {
            in_flight: AtomicUsize::new(0),
            last_busy_ms: AtomicU64::new(0),
            origin: Instant::now(),
            busy_at: busy_at.max(1),
        }))
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 keeps meaning "never".
        self.0.origin.elapsed().as_millis() as u64 + 1
    }

    /// Notes the time when `count` requests in flight make a burst.
    fn mark(&self, count: usize) {
        if count >= self.0.busy_at {
            self.0.last_busy_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// Counts one foreground request until the guard is dropped.
    pub fn enter(&self) -> PressureGuard {
        self.mark(self.0.in_flight.fetch_add(1, Ordering::Relaxed) + 1);
        PressureGuard(self.clone())
    }

    /// The bound a background job (a merge, a checkpoint) waits for before it runs: `calm`, or
    /// `burst` while a burst is on, so that it competes with a burst only past that bound.
    pub fn bound<T>(pressure: Option<&Pressure>, calm: T, burst: T) -> T {
        match pressure {
            Some(p) if p.busy() => burst,
            _ => calm,
        }
    }

    /// Whether a burst is on: `busy_at` requests in flight now or within the last 250 ms.
    pub fn busy(&self) -> bool {
        if self.0.in_flight.load(Ordering::Relaxed) >= self.0.busy_at {
            return true;
        }
        let last = self.0.last_busy_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms().saturating_sub(last) < BUSY_HOLD.as_millis() as u64
    }
}

/// One foreground request in flight (see [`Pressure::enter`]).
#[derive(Debug)]
pub struct PressureGuard(Pressure);

impl Drop for PressureGuard {
    fn drop(&mut self) {
        // The moment a burst ends is when the hold starts.
        let before = self.0 .0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.mark(before);
    }
}

/// Polling options of the local worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub batch: usize,
    pub visibility: Duration,
    /// Sleep when the queue was empty.
    pub idle: Duration,
    /// Most deliveries in flight at once (see [`run_worker`]).
    pub concurrency: usize,
    /// Foreground load to yield to, if any.
    pub pressure: Option<Pressure>,
    /// Most deliveries in flight while `pressure` is busy.
    pub busy_concurrency: usize,
    /// While `pressure` is busy, at least this long between two receives (zero: no pacing).
    pub busy_pace: Duration,
    /// The queue's retry horizon and clock (outcomes are settled with `delete_on_done`).
    pub settle: Settle,
    /// The downstream service's breaker: while it is open, one delivery at a time is received,
    /// when a probe is due; when it closes, the deliveries waiting out a delay are woken.
    pub breaker: Option<Arc<CircuitBreaker>>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch: 10,
            visibility: Duration::from_secs(30),
            idle: Duration::from_millis(50),
            concurrency: 10,
            pressure: None,
            busy_concurrency: 4,
            busy_pace: Duration::ZERO,
            settle: Settle::new(RetryPolicy::EVENTS, true),
            breaker: None,
        }
    }
}

/// Receives and handles messages until `stop` resolves, keeping up to `concurrency` deliveries
/// in flight: a slot freed by one delivery is refilled from the queue at once (after half the
/// slots are free, to keep receives batched) instead of waiting for a whole batch to finish, so
/// one slow CRM call never idles the other slots. Messages are received only when a slot can
/// start them, so none waits in memory while its visibility timeout runs. Each delivery runs on
/// its own task (both cores). Store errors are logged and retried after the idle delay: the
/// messages stay on the queue, nothing is lost. On stop, deliveries in flight finish first.
/// While [`WorkerOptions::pressure`] is busy, fewer deliveries run (see [`Pressure`]), and
/// with [`WorkerOptions::busy_pace`] receives are spaced out too.
pub async fn run_worker(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    options: WorkerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let full = options.concurrency.max(1);
    let settle_how = Arc::new(options.settle.clone());
    let mut running = tokio::task::JoinSet::new();
    let mut closings = options.breaker.as_ref().map_or(0, |b| b.closings());
    let mut last_receive: Option<tokio::time::Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let gate = match &options.breaker {
            Some(b) => {
                // Closed since we last looked: what waited for the service may go now.
                let now = b.closings();
                if now != closings {
                    closings = now;
                    match queue.wake().await {
                        Ok(n) if n > 0 => tracing::info!(woken = n, "released waiting deliveries"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "could not release waiting deliveries")
                        }
                    }
                }
                b.gate()
            }
            None => None,
        };
        let busy = options.pressure.as_ref().is_some_and(Pressure::busy);
        // A paced burst: the next receive waits out the pace since the last one.
        let paced = match last_receive {
            Some(at) if busy && !options.busy_pace.is_zero() => {
                Some(options.busy_pace.saturating_sub(at.elapsed())).filter(|w| !w.is_zero())
            }
            _ => None,
        };
        let limit = match (&gate, &options.pressure) {
            // Open circuit: one delivery at a time, the probe.
            (Some(_), _) => 1,
            (None, Some(_)) if busy => options.busy_concurrency.clamp(1, full),
            _ => full,
        };
        let refill_at = (limit / 2).max(1);
        let free = limit.saturating_sub(running.len());
        let mut wait_idle = None;
        let probe_due = gate.is_none_or(|wait| wait.is_zero());
        if !probe_due && running.is_empty() {
            wait_idle = gate.map(|wait| options.settle.clock.real(wait));
        } else if let Some(wait) = paced {
            wait_idle = Some(wait);
        } else if probe_due && (running.is_empty() || (free > 0 && free >= refill_at)) {
            last_receive = Some(tokio::time::Instant::now());
            match queue
                .receive(free.min(options.batch.max(1)), options.visibility)
                .await
            {
                Ok(deliveries) if !deliveries.is_empty() => {
                    for delivery in deliveries {
                        let (queue, handler, how) =
                            (queue.clone(), handler.clone(), settle_how.clone());
                        running.spawn(async move {
                            let outcome = handler.handle(&delivery).await;
                            if let Err(e) = settle(queue.as_ref(), &delivery, outcome, &how).await
                            {
                                // The message becomes visible again when its timeout expires.
                                tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                            }
                        });
                    }
                    continue;
                }
                Ok(_) => wait_idle = Some(options.idle),
                Err(e) => {
                    tracing::error!(error = %e, "queue receive failed");
                    wait_idle = Some(options.idle);
                }
            }
        }
        // Wait for a slot (or, with the queue empty, the idle delay), or stop.
        let idle = async {
            if let Some(wait) = wait_idle {
                // Never longer than the idle delay while the circuit is open: a probe of
                // another delivery may close it any moment.
                tokio::time::sleep(wait.min(options.idle.max(Duration::from_millis(50)))).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "delivery task failed");
                }
            }
            _ = idle => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break; // The stop sender is gone: nobody can stop us later.
                }
            }
        }
    }
    while let Some(done) = running.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "delivery task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(enqueued_at: Option<i64>) -> Delivery {
        Delivery {
            message_id: "m".into(),
            receipt: "r".into(),
            body: String::new(),
            receive_count: 40,
            enqueued_at,
        }
    }

    #[test]
    fn a_retry_past_the_horizon_is_a_dead_letter_that_says_so() {
        let clock = Clock::manual(10 * 86_400_000);
        let how = Settle {
            policy: RetryPolicy::EVENTS,
            clock: clock.clone(),
            delete_on_done: true,
        };
        let retry = || Outcome::retry(Duration::from_secs(600), "webhook contact: HTTP 503");
        let now = clock.now_ms();
        // Young: unchanged.
        assert_eq!(how.decide(&delivery(Some(now - 1000)), retry()), retry());
        // Five minutes before the horizon: the last attempt falls on it.
        let almost = now - (7 * 86_400_000 - 300_000);
        assert_eq!(
            how.decide(&delivery(Some(almost)), retry()),
            Outcome::retry(Duration::from_secs(300), "webhook contact: HTTP 503")
        );
        // Past it: a dead letter naming the horizon, the receives and the last error.
        match how.decide(&delivery(Some(now - 7 * 86_400_000)), retry()) {
            Outcome::DeadLetter(reason) => assert_eq!(
                reason,
                "retry horizon of 7d passed (40 receives over 7d); last error: webhook contact: HTTP 503"
            ),
            other => panic!("{other:?}"),
        }
        // Done and dead letters pass through; without an age the horizon cannot pass.
        let old = delivery(Some(0));
        assert_eq!(how.decide(&old, Outcome::Done), Outcome::Done);
        assert_eq!(how.decide(&delivery(None), retry()), retry());
    }
}
