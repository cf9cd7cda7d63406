//! Business alerts from crm-sync over the embedded engine, with Meta's sample webhooks: each
//! signal is emitted once per fact, also when the queue delivers the event again (the effects
//! ledger keeps it once), as the EMF lines the AWS engine writes; and the local alert store
//! keeps the newest state of a number when an older event arrives late.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wabridge_aws::emf::EmfAlerts;
use wabridge_core::alerts::{emf, AlertSink, Signal};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::event::Event;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::CrmSync;
use wabridge_core::webhook::split;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteAlerts, SqliteRecords};

fn sample(name: &str) -> Vec<Event> {
    let path = wabridge_tests::workspace_root()
        .join("events/webhooks")
        .join(name);
    split(&std::fs::read(&path).unwrap(), 1_763_700_000_000).unwrap()
}

fn body(field: &str, value: Value) -> Vec<Event> {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "time": 1763700300, "changes": [{"field": field, "value": value}]}]});
    split(body.to_string().as_bytes(), 1_763_700_000_000).unwrap()
}

fn delivery(e: &Event, receive_count: u32) -> Delivery {
    Delivery {
        message_id: e.key.clone(),
        receipt: "r".into(),
        body: e.to_json(),
        receive_count,
        enqueued_at: None,
    }
}

/// Sums each metric of the EMF lines, checking the namespace and the dimensionless set.
fn sums(lines: &[String]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap();
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "wabridge", "{line}");
        assert_eq!(d["Dimensions"][0], json!([]), "{line}");
        for m in d["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            *out.entry(name.to_string()).or_default() += v[name].as_f64().unwrap();
        }
    }
    out
}

#[tokio::test]
async fn each_signal_is_emitted_once_when_an_event_is_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let out = lines.clone();
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(SqliteRecords::new(db.clone()))),
        Arc::new(Mapping::from_toml(wabridge_core::mapping::LOCAL_EXAMPLE).unwrap()),
    )
    .with_alerts(Arc::new(EmfAlerts::with_writer(move |l| {
        out.lock().unwrap().push(l.to_string())
    })));

    let mut events = Vec::new();
    for name in [
        "phone_number_quality_update_es_ar.json", // DOWNGRADE TIER_10K → TIER_1K: a drop
        "template_status_rejected_pt_br.json",    // REJECTED
        "template_status_update_es_mx.json",      // APPROVED: no signal
        "template_category_update_pt_br.json",    // UTILITY → MARKETING
        "account_update_restriction_es_mx.json",  // ACCOUNT_RESTRICTION
        "account_update_es_mx.json",              // ACCOUNT_VIOLATION
    ] {
        events.extend(sample(name));
    }
    events.extend(body(
        "phone_number_quality_update",
        json!({"display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_2K"}),
    ));
    events.extend(body(
        "messages",
        json!({"messaging_product": "whatsapp",
               "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
               "statuses": [{"id": "wamid.alerts.failed", "status": "failed", "timestamp": "1763700290",
                             "recipient_id": "5215512340101",
                             "errors": [{"code": 131049, "title": "not delivered"}]}]}),
    ));
    assert_eq!(events.len(), 8);
    for receive_count in 1..=2 {
        for e in &events {
            let o = sync.handle(&delivery(e, receive_count)).await;
            assert!(matches!(o, Outcome::Done), "{}: {o:?}", e.key);
        }
    }
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 7, "one line per fact: {lines:#?}");
    let sums = sums(&lines);
    let expect = [
        (emf::NUMBER_QUALITY_DROPS, 2.0),
        (emf::NUMBER_QUALITY_RED, 1.0),
        (emf::TEMPLATES_BLOCKED, 1.0),
        (emf::TEMPLATE_CATEGORY_CHANGES, 1.0),
        (emf::ACCOUNT_RESTRICTIONS, 2.0),
        (emf::SENDS_FAILED, 1.0),
    ];
    for (metric, n) in expect {
        assert_eq!(sums.get(metric), Some(&n), "{metric}: {sums:?}");
    }
    assert_eq!(sums.len(), expect.len(), "{sums:?}");
    // Meta's failed status counts a failure, not a second attempt of the send.
    assert!(!sums.contains_key(emf::SENDS_ATTEMPTED));
    let red = lines
        .iter()
        .find(|l| l.contains("NumberQualityRed"))
        .unwrap();
    assert!(!red.contains("15550783881"), "a full number: {red}");
}

#[tokio::test]
async fn the_local_store_keeps_the_newest_state_and_counts_over_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let alerts = SqliteAlerts::new(db);
    let now = wabridge_core::clock::now_ms();
    let quality = |event: &str, red: bool| Signal::NumberQuality {
        number: "15550783881".into(),
        event: Some(event.into()),
        rating: red.then(|| "RED".into()),
        limit: None,
        old_limit: None,
        drop: red,
        red,
    };
    alerts.record(&quality("FLAGGED", true), now).await.unwrap();
    // An older event delivered late does not hide the flag.
    alerts
        .record(&quality("UPGRADE", false), now - 60_000)
        .await
        .unwrap();
    let outcome = |failed| Signal::SendOutcome {
        attempted: true,
        failed,
        code: None,
    };
    alerts.record(&outcome(false), now).await.unwrap();
    alerts.record(&outcome(true), now).await.unwrap();
    // Outside a one-hour window.
    alerts
        .record(&outcome(true), now - 2 * 3_600_000)
        .await
        .unwrap();
    let (states, counts) = alerts.read(now - 3_600_000).await.unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].0, quality("FLAGGED", true));
    assert_eq!(counts.get(emf::SENDS_ATTEMPTED), Some(&2), "{counts:?}");
    assert_eq!(counts.get(emf::SENDS_FAILED), Some(&1), "{counts:?}");
    let (_, day) = alerts.read(now - 24 * 3_600_000).await.unwrap();
    assert_eq!(day.get(emf::SENDS_FAILED), Some(&2), "{day:?}");
}
