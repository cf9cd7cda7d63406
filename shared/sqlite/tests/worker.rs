//! The core's worker loop (`consumer::run_worker`) over a real SQLite queue.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use wabridge_core::consumer::{
    run_worker, Handler, Outcome, Pressure, PressureGuard, WorkerOptions, BUSY_HOLD,
};
use wabridge_core::queue::{Delivery, OutgoingMessage, Queue};
use wabridge_sqlite::{Db, SqliteQueue};

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

/// With `busy_pace`, a burst leaves the worker a trickle (one receive per pace), never nothing:
/// what waits drains once the burst is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_worker_trickles_during_a_burst_and_starves_never() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("p.db")).unwrap();
    let queue: Arc<dyn Queue> = Arc::new(SqliteQueue::new(db, "destination:bot"));
    let messages: Vec<OutgoingMessage> = (0..200)
        .map(|i| OutgoingMessage {
            id: format!("m{i}"),
            body: format!("event {i}"),
            delay: None,
        })
        .collect();
    queue.send_batch(&messages).await.unwrap();
    let pressure = Pressure::new(3);
    let burst: Vec<PressureGuard> = (0..3).map(|_| pressure.enter()).collect();
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
            busy_concurrency: 1,
            busy_pace: Duration::from_millis(50),
            ..WorkerOptions::default()
        },
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = gauge.done.load(Ordering::SeqCst);
    // 500 ms at one receive per 50 ms: about 10; unpaced, all 200 go in a few ms.
    assert!(
        (2..=13).contains(&during),
        "{during} handled during the burst"
    );
    drop(burst);
    wait_done(&gauge, 200).await;
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
}
