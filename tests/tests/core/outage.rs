//! A CRM outage of 6 hours, lived through in about 22 seconds: every part (the SQLite queue,
//! the retry horizon, the circuit breaker, the fake CRM) reads one clock that runs 1,000 times
//! faster than real time. The real crm-sync, the real worker loop and a real SQLite file.
//!
//! How we know nothing is lost or doubled: the fake CRM counts every effect id it applied; each
//! event's contact and activity must be there exactly once, and the dead letters empty. How we
//! know the CRM was not hammered: it records the time of every call it refused, and the calls
//! after the circuit opened must fit one probe per period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use wabridge_core::breaker::{BreakerStats, CircuitBreaker, MAX_PERIOD, OPEN_AFTER};
use wabridge_core::clock::Clock;
use wabridge_core::consumer::{run_worker, Settle, WorkerOptions};
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{OutgoingMessage, Queue};
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sync::CrmSync;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteQueue, EVENTS_QUEUE};

const SCALE: u32 = 1000;
const OUTAGE: Duration = Duration::from_secs(6 * 3600);
const EVENTS: usize = 100;
const CONCURRENCY: usize = 16;

/// A CRM that answers 503 until `down_until_ms` (on the shared clock), then applies.
struct DownCrm {
    clock: Clock,
    down_until_ms: i64,
    refused_at: Mutex<Vec<i64>>,
    applied: Mutex<HashMap<String, u32>>,
    last_applied_ms: Mutex<i64>,
}

#[async_trait]
impl Crm for DownCrm {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        let now = self.clock.now_ms();
        if now < self.down_until_ms {
            self.refused_at.lock().unwrap().push(now);
            return Err(CrmError::Transient("HTTP 503: upstream down".into()));
        }
        *self
            .applied
            .lock()
            .unwrap()
            .entry(effect.id.clone())
            .or_default() += 1;
        *self.last_applied_ms.lock().unwrap() = now;
        Ok(())
    }
}

fn event(i: usize) -> Value {
    let from = format!("52155{i:08}");
    json!({"v": 1, "key": format!("wamid.OUT{i}"), "kind": "message", "field": "messages",
        "waba_id": "W1", "contact": {"profile": {"name": format!("Cliente {i}")}, "wa_id": from},
        "item": {"from": from, "id": format!("wamid.OUT{i}"), "timestamp": "1763780000",
                 "type": "text", "text": {"body": format!("¿Siguen abiertos? {i}")}},
        "received_at": 1763780000000i64})
}

/// What one outage run saw.
struct Run {
    start: i64,
    crm: Arc<DownCrm>,
    breakers: Vec<Arc<CircuitBreaker>>,
    real: Duration,
}

/// Lives through the outage with `instances` consumers (as many Lambda instances: each its own
/// crm-sync and breaker, all over one store and queue), and checks nothing was lost, doubled or
/// dead-lettered.
async fn outage(instances: usize) -> Run {
    let clock = Clock::scaled(SCALE);
    let start = clock.now_ms();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("outage.db")).unwrap();
    let queue = Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE).with_clock(clock.clone()));
    let crm = Arc::new(DownCrm {
        clock: clock.clone(),
        down_until_ms: start + OUTAGE.as_millis() as i64,
        refused_at: Mutex::default(),
        applied: Mutex::default(),
        last_applied_ms: Mutex::default(),
    });
    let messages: Vec<_> = (0..EVENTS)
        .map(|i| OutgoingMessage {
            id: format!("e{i}"),
            body: event(i).to_string(),
            delay: None,
        })
        .collect();
    queue.send_batch(&messages).await.unwrap();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut breakers = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..instances {
        let breaker = Arc::new(CircuitBreaker::new("crm").with_clock(clock.clone()));
        let sync = Arc::new(
            CrmSync::new(
                Arc::new(SqliteIdentityStore::new(db.clone())),
                Arc::new(SqliteLedger::new(db.clone())),
                crm.clone(),
                Arc::new(Mapping::example("webhook").unwrap()),
            )
            .with_breaker(breaker.clone()),
        );
        workers.push(tokio::spawn(run_worker(
            queue.clone(),
            sync,
            WorkerOptions {
                batch: 16,
                concurrency: CONCURRENCY,
                // An hour of the scaled clock: no delivery outlives its visibility by accident.
                visibility: Duration::from_secs(3600),
                idle: Duration::from_millis(10),
                settle: Settle {
                    policy: RetryPolicy::EVENTS,
                    clock: clock.clone(),
                    delete_on_done: true,
                },
                breaker: Some(breaker.clone()),
                ..WorkerOptions::default()
            },
            stop_rx.clone(),
        )));
        breakers.push(breaker);
    }
    let real_start = Instant::now();
    let deadline = real_start + OUTAGE / SCALE + Duration::from_secs(60);
    loop {
        let c = queue.counts().await.unwrap();
        if c.visible + c.hidden == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not drained: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    for w in workers {
        w.await.unwrap();
    }

    // Nothing lost, nothing doubled, nothing dead-lettered.
    let counts = queue.counts().await.unwrap();
    assert_eq!(counts.dead, 0, "{:?}", queue.dead_letters(5).await.unwrap());
    let applied = crm.applied.lock().unwrap().clone();
    for i in 0..EVENTS {
        for effect in ["contact", "activity"] {
            let id = format!("wamid.OUT{i}#{effect}");
            assert_eq!(applied.get(&id), Some(&1), "{id}");
        }
    }
    assert_eq!(applied.len(), EVENTS * 2, "no other effect");
    Run {
        start,
        crm,
        breakers,
        real: real_start.elapsed(),
    }
}

/// Periods of the breaker in the outage: each at least 3/4 of 1 s, 2 s, 4 s ... MAX_PERIOD.
fn periods_in_outage() -> usize {
    let mut periods = 0usize;
    let mut covered = Duration::ZERO;
    while covered < OUTAGE {
        periods += 1;
        let full = Duration::from_secs(1 << (periods - 1).min(20)).min(MAX_PERIOD);
        covered += full * 3 / 4;
    }
    periods
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_hour_crm_outage_loses_nothing_doubles_nothing_and_is_probed_not_hammered() {
    let run = outage(1).await;
    // Probed, not hammered. Before the circuit opened, at most every delivery in flight made its
    // quick attempts; after, one probe per period. Without the breaker each of the 100 events
    // would have been tried about 40 times (3 quick attempts each) in 6 hours: some 12,000
    // calls.
    let refused = run.crm.refused_at.lock().unwrap().clone();
    let stats: BreakerStats = run.breakers[0].stats();
    let burst = CONCURRENCY * 3;
    let periods = periods_in_outage();
    assert!(
        refused.len() <= burst + periods,
        "{} calls during the outage, bound {} ({burst} before opening + {periods} probes): {stats:?}",
        refused.len(),
        burst + periods
    );
    assert!(refused.len() >= OPEN_AFTER as usize);
    assert_eq!(stats.openings, 1, "{stats:?}");
    assert_eq!(stats.closings, 1, "{stats:?}");
    assert!(stats.probes as usize >= periods / 2, "{stats:?}");
    // The calls after the burst: never two probes in one period (the shortest is 750 ms).
    let opened_at = refused[OPEN_AFTER as usize - 1];
    let probes: Vec<i64> = refused
        .iter()
        .copied()
        .filter(|t| *t > opened_at + 500)
        .collect();
    for pair in probes.windows(2) {
        assert!(
            pair[1] - pair[0] >= 700,
            "two probes {} ms apart: {probes:?}",
            pair[1] - pair[0]
        );
    }
    // Once a probe found the CRM back, the backlog drained at full speed: within one period
    // (the longest wait for the probe) and a few minutes of work, on the scaled clock.
    let end_of_outage = run.start + OUTAGE.as_millis() as i64;
    let drained_in = *run.crm.last_applied_ms.lock().unwrap() - end_of_outage;
    assert!(
        drained_in <= (MAX_PERIOD + Duration::from_secs(600)).as_millis() as i64,
        "the backlog took {} s of scaled time after the outage",
        drained_in / 1000
    );
    eprintln!(
        "outage: {} refused calls ({} probes) over {} h; drained {} s (scaled) after it ended; {:.1} s real",
        refused.len(),
        stats.probes,
        OUTAGE.as_secs() / 3600,
        drained_in / 1000,
        run.real.as_secs_f64()
    );
}

/// Lambda instances share no memory: each has its own breaker, so the CRM sees at most one
/// probe per period per instance, and the event source's maximum concurrency (the template's
/// `CrmSyncMaxConcurrency`) bounds the instances. Three consumers here, as three instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_instances_each_probe_on_their_own_and_the_bound_is_per_instance() {
    let instances = 3;
    let run = outage(instances).await;
    let refused = run.crm.refused_at.lock().unwrap().len();
    let bound = instances * (CONCURRENCY * 3 + periods_in_outage());
    assert!(
        refused <= bound,
        "{refused} calls during the outage, bound {bound}"
    );
    let stats: Vec<BreakerStats> = run.breakers.iter().map(|b| b.stats()).collect();
    assert!(stats.iter().all(|s| s.openings <= 1), "{stats:?}");
    assert!(stats.iter().any(|s| s.openings == 1), "{stats:?}");
    eprintln!("outage, {instances} instances: {refused} refused calls (bound {bound}); {stats:?}");
}
