//! crm-sync over the embedded engine: identity store, effects ledger and the handler writing to
//! the `local` CRM (the SQLite records table), with real SQLite files.

mod forward_compat;
mod hooks;
mod identity_changes;
mod phones;
mod records;
mod stores;

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteRecords};

struct Env {
    _dir: tempfile::TempDir,
    db: Db,
    records: SqliteRecords,
    sync: CrmSync,
}

fn env_with(mapping: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::from_toml(mapping).unwrap()),
    );
    Env {
        _dir: dir,
        db,
        records,
        sync,
    }
}

fn env() -> Env {
    env_with(wabridge_core::mapping::LOCAL_EXAMPLE)
}

fn delivery(event: Value) -> Delivery {
    Delivery {
        message_id: event["key"].as_str().unwrap().to_string(),
        receipt: "r".into(),
        body: event.to_string(),
        receive_count: 1,
        enqueued_at: None,
    }
}

fn message(key: &str, from: Option<&str>, user_id: Option<&str>, name: &str, item: Value) -> Value {
    let mut item = item;
    item["id"] = json!(key);
    item["timestamp"] = json!("1763780000");
    if let Some(f) = from {
        item["from"] = json!(f);
    }
    if let Some(u) = user_id {
        item["from_user_id"] = json!(u);
    }
    let mut contact = json!({"profile": {"name": name}});
    if let Some(f) = from {
        contact["wa_id"] = json!(f);
    }
    if let Some(u) = user_id {
        contact["user_id"] = json!(u);
    }
    json!({"v": 1, "key": key, "kind": "message", "field": "messages", "waba_id": "W1",
           "phone_number_id": "P1", "contact": contact, "item": item, "received_at": 1763780000123i64})
}

fn text(key: &str, from: &str, body: &str) -> Value {
    message(
        key,
        Some(from),
        None,
        "Ana López",
        json!({"type": "text", "text": {"body": body}}),
    )
}

fn status(key_suffix: &str, wamid: &str, to: &str, status: &str) -> Value {
    let mut item =
        json!({"id": wamid, "status": status, "timestamp": "1763780100", "recipient_id": to});
    if status == "failed" {
        item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    json!({"v": 1, "key": format!("{wamid}:{key_suffix}"), "kind": "status", "field": "messages",
           "waba_id": "W1", "item": item, "received_at": 1763780100000i64})
}

async fn lines(records: &SqliteRecords, kind: &str) -> Vec<Value> {
    records
        .list(Some(kind), 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Value::Object(r.body))
        .collect()
}
