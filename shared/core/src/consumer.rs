//! Queue consumers: one handler shape for both engines. The local gateway polls a queue with
//! [`run_worker`]; the Lambdas get batches from the SQS event source and use [`settle`] to turn
//! outcomes into partial batch failures. Handlers never see which engine runs them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::queue::{Delivery, Queue};

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Work done (or already done before): delete the message.
    Done,
    /// Transient failure (CRM 429/5xx, timeout, store unavailable): deliver again after this delay.
    RetryAfter(Duration),
    /// Can never succeed (validation failed, terminal error): dead-letter with this reason.
    DeadLetter(String),
}

#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, delivery: &Delivery) -> Outcome;
}

/// Applies an outcome to the queue. Returns whether the message must be reported as a batch item
/// failure (Lambda), i.e. whether it stays on the queue for another attempt.
pub async fn settle(
    queue: &dyn Queue,
    delivery: &Delivery,
    outcome: &Outcome,
    delete_on_done: bool,
) -> Result<bool, StoreError> {
    match outcome {
        Outcome::Done => {
            if delete_on_done {
                queue.delete(&delivery.receipt).await?;
            }
            Ok(false)
        }
        Outcome::RetryAfter(delay) => {
            queue.retry_later(&delivery.receipt, *delay).await?;
            Ok(true)
        }
        Outcome::DeadLetter(reason) => {
            tracing::warn!(message_id = %delivery.message_id, %reason, "dead-lettered");
            queue.dead_letter(delivery, reason).await?;
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
/// While [`WorkerOptions::pressure`] is busy, fewer deliveries run (see [`Pressure`]).
pub async fn run_worker(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    options: WorkerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let full = options.concurrency.max(1);
    let mut running = tokio::task::JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let limit = match &options.pressure {
            Some(p) if p.busy() => options.busy_concurrency.clamp(1, full),
            _ => full,
        };
        let refill_at = (limit / 2).max(1);
        let free = limit.saturating_sub(running.len());
        let mut wait_idle = false;
        if running.is_empty() || (free > 0 && free >= refill_at) {
            match queue
                .receive(free.min(options.batch.max(1)), options.visibility)
                .await
            {
                Ok(deliveries) if !deliveries.is_empty() => {
                    for delivery in deliveries {
                        let (queue, handler) = (queue.clone(), handler.clone());
                        running.spawn(async move {
                            let outcome = handler.handle(&delivery).await;
                            if let Err(e) = settle(queue.as_ref(), &delivery, &outcome, true).await
                            {
                                // The message becomes visible again when its timeout expires.
                                tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                            }
                        });
                    }
                    continue;
                }
                Ok(_) => wait_idle = true,
                Err(e) => {
                    tracing::error!(error = %e, "queue receive failed");
                    wait_idle = true;
                }
            }
        }
        // Wait for a slot (or, with the queue empty, the idle delay), or stop.
        let idle = async {
            if wait_idle {
                tokio::time::sleep(options.idle).await
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
