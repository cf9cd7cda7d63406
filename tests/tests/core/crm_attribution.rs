//! crm-sync with attribution over the embedded engine: a tracked link's code and a
//! click-to-WhatsApp referral become `attribution` and `lead` records in the `local` CRM, exactly
//! once, with the code taken off the activity text. Real SQLite files throughout.

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::attribution::{AttributionConfig, AttributionStore, LinkRequest};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteRecords};

const RECEIVED: i64 = 1763780000123;

struct Env {
    _dir: tempfile::TempDir,
    records: SqliteRecords,
    store: Arc<SqliteAttribution>,
    sync: CrmSync,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let store = Arc::new(SqliteAttribution::open(db.clone()).await.unwrap());
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::from_toml(wabridge_core::mapping::LOCAL_EXAMPLE).unwrap()),
    )
    .with_attribution(store.clone(), AttributionConfig::default());
    Env {
        _dir: dir,
        records,
        store,
        sync,
    }
}

fn delivery(event: &Value) -> Delivery {
    Delivery {
        message_id: event["key"].as_str().unwrap().to_string(),
        receipt: "r".into(),
        body: event.to_string(),
        receive_count: 1,
        enqueued_at: None,
    }
}

fn message(key: &str, from: &str, item: Value) -> Value {
    let mut item = item;
    item["id"] = json!(key);
    item["timestamp"] = json!("1763780000");
    item["from"] = json!(from);
    json!({"v": 1, "key": key, "kind": "message", "field": "messages", "waba_id": "W1",
           "phone_number_id": "P1", "contact": {"profile": {"name": "Ana"}, "wa_id": from},
           "item": item, "received_at": RECEIVED})
}

async fn all(records: &SqliteRecords) -> Vec<Value> {
    records
        .list(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Value::Object(r.body))
        .collect()
}

fn of_kind<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["kind"] == kind).collect()
}

#[tokio::test]
async fn tracked_link_code_gives_attribution_and_lead_once_and_leaves_the_activity_text() {
    let e = env().await;
    let config = AttributionConfig::default();
    let spec = LinkRequest {
        utm_source: Some("newsletter".into()),
        utm_medium: Some("email".into()),
        utm_campaign: Some("buen_fin".into()),
        utm_content: Some("header_button".into()),
        phone_number: Some("+52 55 1234 5678".into()),
        ..Default::default()
    }
    .validate(&config)
    .unwrap();
    let tracked = e.store.create_link(&spec, RECEIVED - 60_000).await.unwrap();
    let url = url::Url::parse(&tracked.url).unwrap();
    let prefilled = url
        .query_pairs()
        .find(|(k, _)| k == "text")
        .unwrap()
        .1
        .into_owned();
    assert!(prefilled.contains(&tracked.code));

    let event = message(
        "wamid.L1",
        "5215512345678",
        json!({"type": "text", "text": {"body": prefilled}}),
    );
    assert_eq!(e.sync.handle(&delivery(&event)).await, Outcome::Done);
    let first = all(&e.records).await;

    let attributions = of_kind(&first, "attribution");
    assert_eq!(attributions.len(), 2, "{first:#?}");
    let mut touches: Vec<&str> = attributions
        .iter()
        .map(|a| a["touch"].as_str().unwrap())
        .collect();
    touches.sort();
    assert_eq!(touches, ["first", "last"]);
    let contact = of_kind(&first, "contact")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for a in &attributions {
        assert_eq!(a["contact_id"], contact.as_str());
        assert_eq!(a["utm_source"], "newsletter");
        assert_eq!(a["utm_medium"], "email");
        assert_eq!(a["utm_campaign"], "buen_fin");
        assert_eq!(a["utm_content"], "header_button");
        assert_eq!(a["ref_code"], tracked.code.as_str());
        assert!(a.as_object().unwrap().contains_key("ctwa_clid"));
    }
    let leads = of_kind(&first, "lead");
    assert_eq!(leads.len(), 1, "{first:#?}");
    assert_eq!(leads[0]["contact_id"], contact.as_str());
    assert_eq!(leads[0]["utm_campaign"], "buen_fin");

    let activity = of_kind(&first, "activity");
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0]["ref_code"], tracked.code.as_str());
    assert_eq!(activity[0]["ref_code_status"], "known");
    let text = activity[0]["text"].as_str().unwrap_or("");
    assert!(!text.contains(&tracked.code), "code left in {text:?}");
    assert!(!text.contains("[ref:"), "token left in {text:?}");

    // The same event again adds and changes nothing.
    assert_eq!(e.sync.handle(&delivery(&event)).await, Outcome::Done);
    assert_eq!(all(&e.records).await, first);
}

#[tokio::test]
async fn ctwa_referral_gives_attribution_with_the_click_id() {
    let e = env().await;
    let event = message(
        "wamid.R1",
        "5215599990000",
        json!({"type": "text", "text": {"body": "Hola, vi su anuncio"},
               "referral": {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726",
                            "source_type": "ad", "headline": "Chat with us", "media_type": "image",
                            "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e"}}),
    );
    assert_eq!(e.sync.handle(&delivery(&event)).await, Outcome::Done);
    let got = all(&e.records).await;
    let attributions = of_kind(&got, "attribution");
    assert_eq!(attributions.len(), 2, "{got:#?}");
    for a in &attributions {
        assert_eq!(a["ctwa_clid"], "Aff-n8ZTODiE79d22KtAwQKj9e");
        assert!(a["ref_code"].is_null());
    }
    assert_eq!(of_kind(&got, "lead").len(), 1);
    let activity = of_kind(&got, "activity");
    assert_eq!(activity[0]["text"], "Hola, vi su anuncio");
    assert!(activity[0].get("ref_code").is_none());

    assert_eq!(e.sync.handle(&delivery(&event)).await, Outcome::Done);
    assert_eq!(all(&e.records).await, got);
}
