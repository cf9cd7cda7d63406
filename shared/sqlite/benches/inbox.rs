//! The embedded engine's durable hand-off: `SqliteInbox::accept` of one new event (a dedupe claim
//! and an enqueue, group-committed with `synchronous=FULL` on a real file), 64 callers at once as
//! in the load test. The time per accept is the writer's cost per webhook without HTTP or wrk,
//! so writer changes can be compared with less noise than whole load runs. A second run adds the
//! merge of the accepted keys from the dedupe log into the dedupe table (done between bursts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wabridge_core::event::Event;
use wabridge_core::inbox::Inbox;
use wabridge_core::webhook::split;
use wabridge_sqlite::{Db, SqliteInbox};

const CALLERS: u64 = 64;

/// A bijection on u64 that scatters consecutive numbers: real message ids fall in random places
/// in key order, and sequential ones would flatter the dedupe store.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One `messages` webhook of the load test's shape, with message id `n`, as its one event.
fn event(n: u64) -> Event {
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "María José Hernández"}, "wa_id": "5215512345678"}],
            "messages": [{"from": "5215512345678", "id": format!("wamid.HBgM{:016X}", splitmix64(n)),
                "timestamp": "1763700000", "type": "text",
                "text": {"body": "Hola, quiero información sobre el envío a Monterrey 🙌"}}]
        }}]}]
    });
    let mut events = split(body.to_string().as_bytes(), 1_763_700_000_000).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("bench.db")).unwrap();
    let inbox = Arc::new(rt.block_on(SqliteInbox::open(db.clone())).unwrap());
    let mut next = 0u64;

    let mut group = c.benchmark_group("inbox");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(10));
    // The second run also merges what it accepted into the dedupe table before the clock stops:
    // the sustained cost, where the first shows what a burst's acks wait for.
    // The last run turns SQLite's secure_delete off (the file has it on, so deleted rows are
    // zeroed): the two merge runs side by side show what overwriting deleted data costs.
    for (name, merge, secure_delete) in [
        ("durable_accept_one_event_64_callers", false, true),
        ("durable_accept_one_event_64_callers_then_merge", true, true),
        (
            "durable_accept_one_event_64_callers_then_merge_secure_delete_off",
            true,
            false,
        ),
    ] {
        let pragma = format!(
            "PRAGMA secure_delete={}",
            if secure_delete { "ON" } else { "OFF" }
        );
        rt.block_on(db.write(move |t| {
            t.query_row(&pragma, [], |_| Ok(()))
                .map_err(|e| wabridge_core::error::StoreError::Unavailable(e.to_string()))
        }))
        .unwrap();
        // Each run starts from a merged log.
        rt.block_on(inbox.merge_recent()).unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // Events built before the clock starts; each caller accepts its share in turn.
                let per_caller = iters.div_ceil(CALLERS);
                let shares: Vec<Vec<Event>> = (0..CALLERS)
                    .map(|_| {
                        (0..per_caller)
                            .map(|_| {
                                next += 1;
                                event(next)
                            })
                            .collect()
                    })
                    .collect();
                let started = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = shares
                        .into_iter()
                        .map(|share| {
                            let inbox = inbox.clone();
                            tokio::spawn(async move {
                                for e in share {
                                    let report = inbox.accept(vec![e]).await.unwrap();
                                    assert_eq!(report.accepted, 1);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    if merge {
                        inbox.merge_recent().await.unwrap();
                    }
                });
                // Per accept of the ones run (a share may round the count up).
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per_caller * CALLERS) as f64)
            })
        });
    }
    group.finish();
    let stats = db.stats();
    eprintln!(
        "writer: {} writes in {} commits ({:.1} per commit)",
        stats.writes,
        stats.commits,
        stats.writes as f64 / stats.commits.max(1) as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
