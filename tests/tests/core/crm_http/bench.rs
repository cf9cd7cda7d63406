//! Throughput against a CRM answering in 50 ms (ignored; run with --ignored).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::*;

/// `cargo test --release -p wabridge-tests --test core -- --ignored --nocapture crm_http::bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_crm_sync_against_a_50ms_crm() {
    // (kind, worker loops, deliveries in flight each, CRM latency). One worker loop keeps its
    // slots full (`consumer::run_worker` refills a freed slot at once); `wabridge serve` runs
    // one loop with 128 (WABRIDGE_SYNC_CONCURRENCY); more loops model Lambda instances. The
    // last row answers at once: the ceiling of our own side (queue, identities, ledger on SQLite).
    let runs = [
        ("webhook", 1, 32, 50),
        ("webhook", 1, 128, 50),
        ("hubspot", 1, 32, 50),
        ("hubspot", 1, 128, 50),
        ("hubspot", 1, 256, 50),
        ("hubspot", 4, 128, 50),
        ("hubspot", 1, 256, 0),
    ];
    for (kind, workers, concurrency, latency_ms) in runs {
        {
            let rig = rig(
                kind,
                Fake {
                    latency: Duration::from_millis(latency_ms),
                    ..Default::default()
                },
            )
            .await;
            let events: Vec<Value> = (0..3000).map(|i| text_event(i, 500)).collect();
            let (dead, elapsed) = drain(&rig, &events, 1, workers, concurrency).await;
            assert_eq!(dead, 0);
            let calls = rig.fake.calls.load(Ordering::Relaxed);
            let mut batches = String::new();
            if kind == "hubspot" {
                assert_eq!(rig.fake.comms.lock().unwrap().len(), events.len());
                let s = rig.hubspot.as_ref().unwrap().stats();
                batches = format!(
                    "; upsert: {} calls, mean batch {:.1}, largest {}; communications: {} calls, mean batch {:.1}, largest {}",
                    s.contacts.calls,
                    s.contacts.inputs as f64 / s.contacts.calls.max(1) as f64,
                    s.contacts.largest,
                    s.communications.calls,
                    s.communications.inputs as f64 / s.communications.calls.max(1) as f64,
                    s.communications.largest,
                );
            }
            println!(
                "BENCH {kind} workers={workers}x{concurrency}: {} events in {:.2}s = {:.0} events/s ({calls} CRM calls of {latency_ms} ms{batches})",
                events.len(),
                elapsed.as_secs_f64(),
                events.len() as f64 / elapsed.as_secs_f64()
            );
        }
    }
}
