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
const BUSY_HOLD: Duration = Duration::from_millis(250);

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

/// The delivery of an SQS record from a Lambda event (`ApproximateReceiveCount` from its
/// attributes); `None` when the record lacks an id or a receipt handle.
pub fn delivery_of(message: &aws_lambda_events::event::sqs::SqsMessage) -> Option<Delivery> {
    Some(Delivery {
        message_id: message.message_id.clone()?,
        receipt: message.receipt_handle.clone()?,
        body: message.body.clone().unwrap_or_default(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
    })
}

/// Handles an SQS batch delivered by Lambda, `concurrency` records at a time, and returns the
/// records that must stay on the queue (partial batch failures). Lambda deletes the rest, so
/// `Done` is not deleted here.
pub async fn sqs_batch(
    queue: &dyn Queue,
    handler: &dyn Handler,
    event: aws_lambda_events::event::sqs::SqsEvent,
    concurrency: usize,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    use futures::stream::{self, StreamExt};
    let failures: Vec<String> = stream::iter(event.records)
        .map(|message| async move {
            let Some(delivery) = delivery_of(&message) else {
                // Without an id or receipt nothing can be settled; Lambda's retry will tell.
                return message.message_id.clone();
            };
            let outcome = handler.handle(&delivery).await;
            match settle(queue, &delivery, &outcome, false).await {
                Ok(true) => Some(delivery.message_id),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                    // A dead letter not moved, or a retry delay not set: keep the message.
                    (outcome != Outcome::Done).then_some(delivery.message_id)
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|f| async move { f })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::{Db, SqliteQueue};
    use crate::queue::OutgoingMessage;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `slow` blocks until every other message has been handled.
    struct OneSlow {
        others: usize,
        done: AtomicUsize,
        all_done: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl Handler for OneSlow {
        async fn handle(&self, delivery: &Delivery) -> Outcome {
            if delivery.body == "slow" {
                loop {
                    // Created before the check: `notify_waiters` reaches it from then on.
                    let notified = self.all_done.notified();
                    if self.done.load(Ordering::SeqCst) >= self.others {
                        break;
                    }
                    notified.await;
                }
            } else if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.others {
                self.all_done.notify_waiters();
            }
            Outcome::Done
        }
    }

    /// A slot freed by a quick delivery is refilled while a slow one is still running: with
    /// batch-at-a-time handling the slow message would hold back every later receive (here it
    /// would wait forever, and the test time out).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_delivery_does_not_hold_back_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("w.db")).unwrap();
        let queue: Arc<dyn Queue> = Arc::new(SqliteQueue::new(db, "events"));
        let mut messages = vec![OutgoingMessage {
            id: "slow".into(),
            body: "slow".into(),
            delay: None,
        }];
        for i in 0..60 {
            messages.push(OutgoingMessage {
                id: format!("m{i}"),
                body: format!("fast {i}"),
                delay: None,
            });
        }
        queue.send_batch(&messages).await.unwrap();
        let handler = Arc::new(OneSlow {
            others: 60,
            done: AtomicUsize::new(0),
            all_done: tokio::sync::Notify::new(),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(run_worker(
            queue.clone(),
            handler.clone(),
            WorkerOptions {
                batch: 4,
                concurrency: 4,
                idle: Duration::from_millis(5),
                ..WorkerOptions::default()
            },
            stop_rx,
        ));
        let drained = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if handler.done.load(Ordering::SeqCst) == 60
                    && queue
                        .receive(1, Duration::from_secs(30))
                        .await
                        .unwrap()
                        .is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(drained.is_ok(), "the slow delivery held back the others");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("the worker stops once its deliveries finish")
            .unwrap();
    }

    /// Counts deliveries running at once; each takes a few milliseconds.
    #[derive(Default)]
    struct Gauge {
        running: AtomicUsize,
        max: AtomicUsize,
        done: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Handler for Gauge {
        async fn handle(&self, _delivery: &Delivery) -> Outcome {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
            Outcome::Done
        }
    }

    async fn wait_done(gauge: &Gauge, n: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while gauge.done.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the worker kept handling messages");
    }

    /// While foreground requests crowd in (a webhook burst), the worker runs only
    /// `busy_concurrency` deliveries; once they are gone it is back to full concurrency.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_worker_yields_to_a_burst_then_drains_at_full_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("p.db")).unwrap();
        let queue: Arc<dyn Queue> = Arc::new(SqliteQueue::new(db, "events"));
        let messages: Vec<OutgoingMessage> = (0..1000)
            .map(|i| OutgoingMessage {
                id: format!("m{i}"),
                body: format!("event {i}"),
                delay: None,
            })
            .collect();
        queue.send_batch(&messages).await.unwrap();
        let pressure = Pressure::new(3);
        let burst: Vec<PressureGuard> = (0..3).map(|_| pressure.enter()).collect();
        assert!(pressure.busy());
        let gauge = Arc::new(Gauge::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(run_worker(
            queue.clone(),
            gauge.clone(),
            WorkerOptions {
                batch: 16,
                concurrency: 16,
                idle: Duration::from_millis(5),
                pressure: Some(pressure.clone()),
                busy_concurrency: 2,
                ..WorkerOptions::default()
            },
            stop_rx,
        ));
        wait_done(&gauge, 30).await;
        assert!(
            gauge.max.load(Ordering::SeqCst) <= 2,
            "ran {} at once during the burst",
            gauge.max.load(Ordering::SeqCst)
        );

        drop(burst);
        // Still a burst for a moment (requests come and go between commits), then over.
        assert!(pressure.busy());
        tokio::time::sleep(BUSY_HOLD + Duration::from_millis(50)).await;
        assert!(!pressure.busy());
        gauge.max.store(0, Ordering::SeqCst);
        wait_done(&gauge, 1000).await;
        assert!(
            gauge.max.load(Ordering::SeqCst) > 2,
            "stayed at {} after the burst",
            gauge.max.load(Ordering::SeqCst)
        );
        stop_tx.send(true).unwrap();
        worker.await.unwrap();
    }
}
