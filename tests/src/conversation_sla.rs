//! A scripted SLA week on the number of [`crate::conversation_day`], shared by the SQLite and
//! DynamoDB tests. The sweeps run at the script's times (a scaled clock: `sweep(now)`), with a
//! 15-minute SLA counted in business hours (Monday to Friday, 09:00 to 18:00, Mexico City).
//! Every sweep runs twice (two sweepers), and every event it queues is delivered twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::conversations::sla::{BusinessHours, RawBusinessHours, SlaPolicy};
use wabridge_core::conversations::sweep::{SweepReport, Sweeper};
use wabridge_core::conversations::Conversations;
use wabridge_core::event::Event;
use wabridge_core::queue::Queue;
use wabridge_core::sync::CrmSync;

use wabridge_sqlite::{Db, SqliteEngine, SqliteQueue, SqliteRecords, EVENTS_QUEUE};

use crate::conversation_day::{self as day, HOUR, MIN, NUMBER, T0};

/// Pedro writes on Friday at 10:00 in Mexico City (16:00 UTC); nobody answers for 40 minutes.
pub const PEDRO: &str = "5215533334444";
pub const PEDRO_AT: i64 = T0 + 8 * HOUR;
/// Lucía writes on Saturday at 20:00 in Mexico City (Sunday 02:00 UTC).
pub const LUCIA: &str = "5215511112222";
pub const LUCIA_AT: i64 = T0 + 42 * HOUR;
/// Monday 09:15 in Mexico City (15:15 UTC), in seconds: Lucía's first response is due.
pub const LUCIA_DUE: i64 = T0 + 3 * 24 * HOUR + 7 * HOUR + 15 * MIN;

/// What a test drives over SQLite: crm-sync to the `local` CRM, the conversations, the events
/// queue and the CRM's records.
pub type SqliteWeek = (CrmSync, Conversations, Arc<SqliteQueue>, SqliteRecords);

/// crm-sync, the conversations and the events queue over one SQLite file (`path`).
pub fn sqlite(path: &std::path::Path) -> SqliteWeek {
    let db = Db::open(path).unwrap();
    let records = SqliteRecords::new(db.clone());
    let conversations = SqliteEngine::new(db.clone()).conversations(day::IDLE_MS);
    let sync = CrmSync::new(
        Arc::new(wabridge_sqlite::identity::SqliteIdentityStore::new(
            db.clone(),
        )),
        Arc::new(wabridge_sqlite::ledger::SqliteLedger::new(db.clone())),
        Arc::new(wabridge_crm::local::LocalCrm::new(records.clone())),
        Arc::new(
            wabridge_core::mapping::Mapping::from_toml(wabridge_core::mapping::LOCAL_EXAMPLE)
                .unwrap(),
        ),
    )
    .with_conversations(conversations.clone());
    let queue = Arc::new(SqliteQueue::new(db, EVENTS_QUEUE));
    (sync, conversations, queue, records)
}

/// The SLA of the script: 15 minutes in the number's business hours.
pub fn policy() -> SlaPolicy {
    let hours = BusinessHours::parse(&RawBusinessHours {
        timezone: "America/Mexico_City".into(),
        days: ["mon", "tue", "wed", "thu", "fri"]
            .map(String::from)
            .to_vec(),
        open: "09:00".into(),
        close: "18:00".into(),
        holidays: Vec::new(),
    })
    .unwrap();
    let mut policy = SlaPolicy::new(15);
    policy.hours.insert(NUMBER.into(), hours);
    policy
}

/// Delivers `event` twice to `sync`.
pub async fn twice(sync: &CrmSync, event: &Event) {
    for _ in 0..2 {
        let d = wabridge_core::queue::Delivery {
            message_id: event.key.clone(),
            receipt: "r".into(),
            body: event.to_json(),
            receive_count: 1,
            enqueued_at: None,
        };
        assert_eq!(sync.handle(&d).await, Outcome::Done, "{}", event.key);
    }
}

/// Two sweepers at `now` (seconds), then every event they queued delivered twice; returns the
/// first sweeper's report.
pub async fn sweep(sweeper: &Sweeper, queue: &dyn Queue, sync: &CrmSync, now: i64) -> SweepReport {
    let first = sweeper.sweep(now * 1000).await.unwrap();
    let second = sweeper.sweep(now * 1000).await.unwrap();
    assert_eq!(first, second, "the same findings twice");
    let mut left = first.breaches + first.closed;
    left *= 2;
    while left > 0 {
        let got = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        assert!(!got.is_empty(), "{left} queued findings missing");
        for d in got {
            for _ in 0..2 {
                assert_eq!(sync.handle(&d).await, Outcome::Done, "{}", d.message_id);
            }
            queue.delete(&d.receipt).await.unwrap();
            left -= 1;
        }
    }
    first
}

/// The week: sweeps around Pedro's and Lucía's due times, a late answer to Pedro, and the idle
/// sweep. Checks the sweep reports and the backlog as it goes.
pub async fn run(conversations: &Conversations, events: Arc<dyn Queue>, sync: &CrmSync) {
    let sweeper = Sweeper::new(conversations.clone(), policy(), events.clone());
    let queue = events.as_ref();
    for e in day::morning() {
        twice(sync, &e).await;
    }
    twice(sync, &day::text(PEDRO, "wamid.P1", PEDRO_AT, json!({}))).await;
    // 14 minutes: not yet. Pedro waits, João's last message is the business's.
    let r = sweep(&sweeper, queue, sync, PEDRO_AT + 14 * MIN).await;
    assert_eq!((r.breaches, r.closed, r.backlog), (0, 0, 1), "{r:?}");
    assert_eq!(r.oldest_wait_ms, Some(14 * MIN * 1000));
    let b = conversations.backlog(Some(NUMBER), (PEDRO_AT + 14 * MIN) * 1000);
    assert_eq!(b.await.unwrap().count, 1);
    assert_eq!(
        conversations.backlog(Some("other"), 0).await.unwrap().count,
        0
    );
    // 15 minutes: one breach, however many sweeps and deliveries.
    let r = sweep(&sweeper, queue, sync, PEDRO_AT + 15 * MIN).await;
    assert_eq!((r.breaches, r.closed), (1, 0), "{r:?}");
    let r = sweep(&sweeper, queue, sync, PEDRO_AT + 16 * MIN).await;
    assert_eq!(r.breaches, 0, "breached before: {r:?}");
    // The answer comes late: it is still the first response.
    twice(
        sync,
        &day::status(PEDRO, "wamid.PR1", "sent", PEDRO_AT + 40 * MIN, "service"),
    )
    .await;
    let r = sweep(&sweeper, queue, sync, PEDRO_AT + 41 * MIN).await;
    assert_eq!((r.breaches, r.backlog), (0, 0), "{r:?}");

    // Lucía on Saturday evening: due on Monday 09:15, not before.
    twice(sync, &day::text(LUCIA, "wamid.L1", LUCIA_AT, json!({}))).await;
    // Saturday night: no breach; the week's other conversations close for idleness.
    let r = sweep(&sweeper, queue, sync, LUCIA_AT + HOUR).await;
    assert_eq!((r.breaches, r.closed, r.backlog), (0, 3, 1), "{r:?}");
    // Past her idle time (Monday 02:00 UTC) she still waits: not closed before her SLA.
    let r = sweep(&sweeper, queue, sync, LUCIA_DUE - MIN).await;
    assert_eq!(
        (r.breaches, r.closed, r.backlog),
        (0, 0, 1),
        "Monday 09:14: {r:?}"
    );
    // Monday 09:15: her breach, and her idle close.
    let r = sweep(&sweeper, queue, sync, LUCIA_DUE).await;
    assert_eq!((r.breaches, r.closed, r.backlog), (1, 1, 1), "{r:?}");
    let r = sweep(&sweeper, queue, sync, LUCIA_DUE + MIN).await;
    assert_eq!((r.breaches, r.closed, r.backlog), (0, 0, 0), "{r:?}");
    // Lucía writes again: a new conversation; the swept one is not closed a second time.
    twice(
        sync,
        &day::text(LUCIA, "wamid.L2", LUCIA_DUE + HOUR, json!({})),
    )
    .await;
}

/// The breaches among every record the CRM received (`all`, any kinds, each post once).
pub fn check_breaches(all: &[Value]) {
    let breaches: Vec<&Value> = all.iter().filter(|r| r["kind"] == "sla_breach").collect();
    assert_eq!(breaches.len(), 2, "{breaches:#?}");
    let pedro = breaches
        .iter()
        .find(|b| b["first_inbound_at"] == PEDRO_AT * 1000)
        .expect("Pedro's breach");
    assert_eq!(pedro["due_at"], (PEDRO_AT + 15 * MIN) * 1000);
    assert_eq!(pedro["breached_at"], (PEDRO_AT + 15 * MIN) * 1000);
    assert_eq!(pedro["number"], NUMBER);
    let lucia = breaches
        .iter()
        .find(|b| b["first_inbound_at"] == LUCIA_AT * 1000)
        .expect("Lucía's breach");
    assert_eq!(lucia["due_at"], LUCIA_DUE * 1000);
    assert_eq!(lucia["breached_at"], LUCIA_DUE * 1000);
    let latest = day::latest(all);
    let of = |at: i64| {
        latest
            .iter()
            .find(|c| c["first_inbound_at"] == at * 1000)
            .unwrap()
            .clone()
    };
    let p = of(PEDRO_AT);
    assert_eq!(p["sla_breached_at"], (PEDRO_AT + 15 * MIN) * 1000);
    assert_eq!(
        p["first_response_ms"],
        40 * MIN * 1000,
        "a late answer still counts"
    );
    assert_eq!(p["close_reason"], "idle");
    assert_eq!(p["closed_at"], (PEDRO_AT + 40 * MIN) * 1000 + day::IDLE_MS);
    let l = of(LUCIA_AT);
    assert_eq!(l["sla_breached_at"], LUCIA_DUE * 1000);
    assert_eq!(l["closed_at"], LUCIA_AT * 1000 + day::IDLE_MS);
    // The morning's conversations were answered in time.
    for c in &latest {
        if c["first_inbound_at"] != PEDRO_AT * 1000 && c["first_inbound_at"] != LUCIA_AT * 1000 {
            assert_eq!(c["sla_breached_at"], Value::Null, "{c:#}");
        }
    }
    assert_eq!(latest.len(), 5, "Mariana, João, Pedro, Lucía twice");
    let closed = latest
        .iter()
        .filter(|c| c["close_reason"] == "idle")
        .count();
    assert_eq!(closed, 4, "all but Lucía's second");
}

/// No conversation change reached the CRM twice (`all`: every post of a CRM that keeps them).
pub fn check_no_change_twice(all: &[Value]) {
    let mut seen = std::collections::BTreeSet::new();
    for c in all.iter().filter(|r| r["kind"] == "conversation") {
        let key = (c["id"].to_string(), c["revision"].as_u64());
        assert!(seen.insert(key), "posted twice: {c:#}");
    }
}

/// Outcomes after the week: Mariana's (from an ad) `converted`, Pedro's `lost`.
pub async fn set_outcomes(conversations: &Conversations) {
    let all = conversations.store().opened_since(T0 * 1000).await.unwrap();
    for (first_inbound, outcome) in [(T0, "converted"), (PEDRO_AT, "lost")] {
        let c = all
            .iter()
            .find(|c| c.first_inbound_at == Some(first_inbound * 1000))
            .unwrap();
        let change = wabridge_core::conversations::update::Change {
            outcome: Some(outcome.to_string()),
            ..Default::default()
        };
        conversations
            .update(&c.id, &change, LUCIA_DUE * 1000)
            .await
            .unwrap()
            .unwrap();
    }
}

/// The week's report (`by`) over a store, as JSON.
pub async fn report(conversations: &Conversations, by: &str) -> Value {
    use wabridge_core::attribution::report::Format;
    use wabridge_core::conversations::report::ConversationReport;
    let since = T0 * 1000;
    let records = conversations.store().opened_since(since).await.unwrap();
    let report = ConversationReport::build(since, by.parse().unwrap(), &records);
    serde_json::from_str(&report.render(Format::Json)).unwrap()
}

/// The exact figures of the week: five conversations, first responses of 2 min 15 s (João),
/// 7 min (Mariana) and 40 min (Pedro), two breaches, one conversion from the ad.
pub fn check_report(by_origin: &Value, by_agent: &Value) {
    let rows = by_origin["rows"].as_array().unwrap();
    let row = |g: &str| rows.iter().find(|r| r["group"] == g).unwrap().clone();
    let ad = row("ctwa_ad");
    assert_eq!(
        (ad["opened"].as_u64(), ad["closed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(ad["conversion_rate"], 1.0);
    assert_eq!(ad["frt_p50_ms"], 7 * MIN * 1000);
    let organic = row("organic");
    assert_eq!(organic["opened"], 3);
    assert_eq!(organic["closed"], 2);
    assert_eq!(organic["frt_p50_ms"], 40 * MIN * 1000);
    assert_eq!(organic["sla_breach_rate"], 2.0 / 3.0);
    assert_eq!(organic["conversion_rate"], 0.0);
    assert_eq!(
        organic["outcomes"],
        json!({"(none)": 2.0 / 3.0, "lost": 1.0 / 3.0})
    );
    assert_eq!(row("template")["frt_p90_ms"], (2 * MIN + 15) * 1000);
    // Per agent: João's conversation has the Business app's; the others none.
    let rows = by_agent["rows"].as_array().unwrap();
    let none = rows.iter().find(|r| r["group"] == "(none)").unwrap();
    assert_eq!(none["opened"], 4);
    // FRTs of Mariana and Pedro: p50 the 1st of 2 by nearest rank, p90 the 2nd.
    assert_eq!(none["frt_p50_ms"], 7 * MIN * 1000);
    assert_eq!(none["frt_p90_ms"], 40 * MIN * 1000);
    assert_eq!(none["sla_breach_rate"], 0.5);
    assert_eq!(none["outcomes"]["converted"], 0.25);
}
