//! crm-sync with the `local` CRM through the real `wabridge serve`: 1,000 events posted twice
//! (Meta retrying every delivery) while 30% of the CRM's record writes fail (a trigger installed
//! in the live SQLite file aborts them); every event lands in `wabridge records --json` exactly
//! once, with one contact per person, and nothing is dead-lettered.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_core::signature::{sign, AppSecret};
use wabridge_tests::gateway::{self, Gateway};

const SECRET: &str = "crm-local-serve-secret";

fn start(data: &Path) -> Gateway {
    Gateway::start_in(
        data,
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WHATSAPP_VERIFY_TOKEN", "t"),
        ],
    )
}

fn cli(args: &[&str], data: &Path) -> Vec<u8> {
    gateway::cli_ok(data, args, &[]).into_bytes()
}

fn payload(batch: usize) -> Vec<u8> {
    let messages: Vec<Value> = (0..10)
        .map(|j| {
            let i = batch * 10 + j;
            json!({"from": format!("52155{:08}", i % 100), "id": format!("wamid.L{i}"), "timestamp": "1763780000",
                   "type": "text", "text": {"body": format!("mensaje {i}")}})
        })
        .collect();
    let contacts: Vec<Value> = (0..10)
        .map(|j| json!({"profile": {"name": "Cliente"}, "wa_id": format!("52155{:08}", (batch * 10 + j) % 100)}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550001111", "phone_number_id": "P1"},
        "contacts": contacts, "messages": messages}}]}]})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_crm_through_serve_gets_every_event_exactly_once_under_faults() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER crm_faults BEFORE INSERT ON records
         WHEN abs(random()) % 100 < 30 BEGIN SELECT RAISE(ABORT, 'injected CRM fault'); END;",
    )
    .unwrap();
    let client = reqwest::Client::new();
    let secret = AppSecret::new(SECRET).unwrap();
    for round in 0..2 {
        for batch in 0..100 {
            let body = payload(batch);
            let r = client
                .post(format!("{}/webhook", server.url))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sign(&secret, &body))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "round {round} batch {batch}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stats: Value = serde_json::from_slice(&cli(&["stats"], dir.path())).unwrap();
        let q = &stats["events_queue"];
        if q["visible"] == 0 && q["hidden"] == 0 {
            assert_eq!(q["dead"], 0, "nothing dead-lettered: {stats}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events queue never drained: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.execute_batch("DROP TRIGGER crm_faults").unwrap();
    let lines: Vec<Value> = String::from_utf8(cli(&["records", "--json"], dir.path()))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let contacts: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "contact").collect();
    let activities: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "activity").collect();
    assert_eq!(contacts.len(), 100, "one contact per person");
    assert_eq!(activities.len(), 1000, "every event once");
    let mut ids: Vec<&str> = activities
        .iter()
        .map(|a| a["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
    let contact_ids: std::collections::HashSet<&str> =
        contacts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for a in &activities {
        assert!(contact_ids.contains(a["contact_id"].as_str().unwrap()));
        assert_eq!(a["type"], "text");
    }
    for c in &contacts {
        for field in ["id", "phone_e164", "wa_id", "bsuid", "name"] {
            assert!(c.get(field).is_some(), "contact lacks {field}: {c}");
        }
    }
}
