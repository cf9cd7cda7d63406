//! Content retention on the embedded engine: `wabridge serve` takes every sample webhook and a
//! send; then the purger serve runs hourly runs on a clock moved past the retention. No message
//! text the test wrote is left in any row of any table nor in the file's bytes; identities,
//! consents, sends (without their content), contacts and the audit stay.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use wabridge_core::clock::{now_ms, Clock};
use wabridge_sqlite::engine::Retentions;
use wabridge_sqlite::{Db, SqliteEngine};
use wabridge_tests::stores::{bytes_contain, message_texts, sqlite_file_bytes, sqlite_rows};

use super::clean_logs::samples;
use super::*;

const API_KEY: &str = "retention-test-api-key-5e8f";
const DAY: Duration = Duration::from_secs(86_400);
const SEND_TEXT: &str = "Pedido A-17 para Rosalía, Rua Augusta 1200";

fn count(rows: &[(String, String)], table: &str) -> usize {
    rows.iter().filter(|(t, _)| t == table).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_past_the_retention_is_gone_from_every_table_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("WHATSAPP_APP_SECRET", SECRET),
        ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
        ("WABRIDGE_API_KEY", API_KEY),
        ("WABRIDGE_CONTENT_RETENTION_DAYS", "30"),
    ];
    let server = Gateway::start_in(dir.path(), &env);
    let mut texts = BTreeSet::new();
    for (file, body) in samples() {
        message_texts(&serde_json::from_slice(&body).unwrap(), &mut texts);
        let (status, v) = post_signed(&server.webhook(), &body).await;
        assert_eq!(status, 200, "{}: {v}", file.display());
    }
    let r = gateway::http_client()
        .post(format!("{}/sends", server.url))
        .bearer_auth(API_KEY)
        .json(
            &json!({"to": "+52 1 81 8765 4321", "template": "order_update",
            "language": "es_MX", "category": "UTILITY", "parameters": [SEND_TEXT]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    texts.insert(SEND_TEXT.into());
    server.wait_drained_for(Duration::from_secs(60));
    assert!(server.terminate());

    let path = dir.path().join("wabridge.db");
    let before = sqlite_rows(&path);
    let stored = |rows: &[(String, String)], needle: &str| {
        rows.iter()
            .filter(|(_, r)| bytes_contain(r.as_bytes(), needle))
            .map(|(t, _)| t.clone())
            .collect::<Vec<_>>()
    };
    // Consent evidence outlives content by design (a keyword opt-out keeps the words).
    let evidence: BTreeSet<&String> = texts
        .iter()
        .filter(|t| {
            stored(&before, t)
                .iter()
                .any(|table| table == "consent_history")
        })
        .collect();
    let held: Vec<&String> = texts
        .iter()
        .filter(|t| !stored(&before, t).is_empty())
        .collect();
    assert!(
        held.len() > 10,
        "the scan finds content before the purge: {held:?}"
    );

    // Within the retention the purger keeps it; past it, it goes.
    let db = Db::open(&path).unwrap();
    let retentions = Retentions {
        ledger: 30 * DAY,
        audit: 400 * DAY,
        content: 30 * DAY,
    };
    let engine = SqliteEngine::new(db.clone());
    engine
        .purger(
            Clock::manual(now_ms() + (29 * DAY).as_millis() as i64),
            retentions,
        )
        .purge_all()
        .await;
    assert_eq!(stored(&sqlite_rows(&path), SEND_TEXT), vec!["sends"]);
    engine
        .purger(
            Clock::manual(now_ms() + (31 * DAY).as_millis() as i64),
            retentions,
        )
        .purge_all()
        .await;
    drop(engine);
    drop(db);

    let after = sqlite_rows(&path);
    let bytes = sqlite_file_bytes(&path);
    let mut left = Vec::new();
    for text in texts.iter().filter(|t| !evidence.contains(t)) {
        let tables = stored(&after, text);
        if !tables.is_empty() || bytes_contain(&bytes, text) {
            left.push(format!("{text:?} in {tables:?} (or the file's bytes)"));
        }
    }
    assert!(left.is_empty(), "content left:\n{}", left.join("\n"));
    for table in [
        "identities",
        "consent_history",
        "sends",
        "audit_log",
        "last_inbound",
    ] {
        assert_eq!(
            count(&before, table),
            count(&after, table),
            "{table} keeps its rows"
        );
    }
    assert!(count(&after, "identities") > 5);
    let contacts = |rows: &[(String, String)]| {
        rows.iter()
            .filter(|(t, r)| t == "records" && r.contains(r#"| Text("contact") |"#))
            .count()
    };
    assert!(contacts(&before) > 3);
    assert_eq!(contacts(&before), contacts(&after), "contacts stay");
    assert!(after
        .iter()
        .any(|(t, r)| t == "records" && r.contains("content_purged")));
}
