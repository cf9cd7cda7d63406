//! What conversations cost crm-sync (issue 20: at least 90 % of the throughput without them),
//! against a CRM answering in 50 ms. Ignored; run with
//! `cargo test --release -p wabridge-tests --test core -- --ignored --nocapture crm_http::bench_conversations`.
//!
//! Off and on alternate in one run (this machine is noisy), same events, same fake: with
//! conversations on, every message is folded into its thread (store read and conditional write)
//! and its changed conversation is one more effect (a `conversation` record; a HubSpot ticket
//! upsert and association, batched like the other calls).

use std::time::Duration;

use serde_json::{json, Value};
use wabridge_sqlite::SqliteEngine;

use super::*;

const EVENTS: usize = 3000;
const CONTACTS: usize = 500;
const ROUNDS: usize = 2;

/// A customer's text on a business number: a message of a thread.
fn numbered_text(i: usize) -> Value {
    let mut event = text_event(i, CONTACTS);
    event["phone_number_id"] = json!("106540352242922");
    event["display_phone_number"] = json!("15550783881");
    // Spread over a day, so threads do not all go idle between their messages.
    event["item"]["timestamp"] = json!((1_763_780_000 + i as i64 * 20).to_string());
    event
}

/// CPU seconds this process has used (user and system; Linux's `/proc/self/stat`, in ticks
/// of 10 ms). The fake CRM runs in this process: it is the whole run's CPU.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command's closing parenthesis; utime and stime are its 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Events per second, CRM calls and CPU milliseconds per event.
async fn run(kind: &str, conversations: bool) -> (f64, u64, f64) {
    let fake = Arc::new(Fake {
        latency: Duration::from_millis(50),
        ..Default::default()
    });
    let addr = serve(fake.clone()).await;
    let crm: Arc<dyn Crm> = match kind {
        "webhook" => {
            Arc::new(WebhookCrm::new(&format!("http://{addr}/hook"), SECRET, TIMEOUT).unwrap())
        }
        _ => hubspot_crm(addr),
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let mut sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        crm,
        Arc::new(Mapping::example(kind).unwrap()),
    )
    .with_lease(Duration::from_secs(3));
    if conversations {
        sync = sync.with_conversations(SqliteEngine::new(db.clone()).conversations(24 * 3_600_000));
    }
    let sync = Arc::new(sync);
    let events: Vec<Value> = (0..EVENTS).map(numbered_text).collect();
    let cpu = cpu_seconds();
    let (dead, elapsed) = crate::crm_conformance::drain(&db, &sync, &events, 1, 1, 128).await;
    let cpu = cpu_seconds() - cpu;
    assert_eq!(dead, 0);
    let stored: i64 = rusqlite::Connection::open(dir.path().join("t.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM conversations", [], |r| r.get(0))
        .unwrap();
    // The run measured what it says: one conversation per contact with them, none without.
    assert_eq!(stored, if conversations { CONTACTS as i64 } else { 0 });
    let calls = fake.calls.load(std::sync::atomic::Ordering::Relaxed);
    (
        EVENTS as f64 / elapsed.as_secs_f64(),
        calls,
        1000.0 * cpu / EVENTS as f64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_conversations_on_and_off() {
    for kind in ["webhook", "hubspot"] {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            off.push(run(kind, false).await);
            on.push(run(kind, true).await);
        }
        let mean = |v: &[(f64, u64, f64)]| v.iter().map(|r| r.0).sum::<f64>() / v.len() as f64;
        let cpu = |v: &[(f64, u64, f64)]| v.iter().map(|r| r.2).sum::<f64>() / v.len() as f64;
        let (a, b) = (mean(&off), mean(&on));
        println!(
            "BENCH conversations {kind} 1x128, 50 ms CRM: off {a:.0} events/s ({} CRM calls, {:.2} CPU ms/event), on {b:.0} events/s ({} CRM calls, {:.2} CPU ms/event): {:.0} %",
            off[0].1,
            cpu(&off),
            on[0].1,
            cpu(&on),
            100.0 * b / a
        );
    }
}
