//! Edits, deletions, Business-app echoes, calls and account updates through crm-sync on the AWS
//! engine (DynamoDB identity store and effects ledger over moto) to the webhook CRM: every
//! record reaches the CRM once as it is, whatever the order, with every event delivered twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wabridge_aws::dynamo::identity::DynamoIdentityStore;
use wabridge_aws::dynamo::ledger::DynamoLedger;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::event::Event;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::CrmSync;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::{create_table, require_aws, unique_name};

/// A webhook CRM receiver keeping every body it accepted.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice::<Value>(&body).unwrap());
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/crm"), got)
}

fn sample(name: &str) -> Vec<Event> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/webhooks")
        .join(name);
    wabridge_core::webhook::split(&std::fs::read(path).unwrap(), 1_763_700_000_000).unwrap()
}

#[tokio::test]
async fn changes_echoes_calls_and_account_updates_reach_the_webhook_crm_once_over_dynamodb() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("changes")).await;
    let (url, got) = receiver().await;
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(aws.dynamo.clone(), table)),
        Arc::new(WebhookCrm::new(&url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap()),
        Arc::new(Mapping::example("webhook").unwrap()),
    );
    let mut events = Vec::new();
    for name in [
        "echoes_text_edit_revoke_pt_br.json",
        "call_business_status_terminate_pt_br.json",
        "revoke_es_ar.json",
        "account_update_restriction_es_mx.json",
    ] {
        events.extend(sample(name));
    }
    // Out of order (the call's terminate and the echo's edit first), each delivered twice.
    events.reverse();
    for e in events.iter().chain(events.iter()) {
        let d = Delivery {
            message_id: e.key.clone(),
            receipt: "r".into(),
            body: e.to_json(),
            receive_count: 1,
            enqueued_at: None,
        };
        assert_eq!(sync.handle(&d).await, Outcome::Done, "{}", e.key);
    }
    let got = got.lock().unwrap().clone();
    let of = |kind: &str| -> Vec<&Value> { got.iter().filter(|r| r["kind"] == kind).collect() };
    // One record per event, none twice.
    let calls = of("call");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls
        .iter()
        .all(|c| c["event_id"] == "call:wacid.HBgNQ0FMTDAyUFRCUjAwMDAwMg=="));
    assert_eq!(
        calls.iter().filter(|c| c["outcome"] == "rejected").count(),
        1
    );
    let activities = of("activity");
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0]["agent"], "whatsapp_business_app");
    assert_eq!(activities[0]["direction"], "outbound");
    let changes = of("message_change");
    assert_eq!(
        changes.len(),
        3,
        "the echo's edit and revoke, the customer's revoke"
    );
    assert!(changes
        .iter()
        .filter(|c| c["change"] == "deleted")
        .all(|c| c["content"] == "clear"));
    assert_eq!(of("account").len(), 1);
    assert!(of("unknown").is_empty());
    // The echo, its changes and the call name the same customer.
    let joao = &activities[0]["contact_id"];
    assert!(calls.iter().all(|c| &c["contact_id"] == joao));
    assert_eq!(
        changes.iter().filter(|c| &c["contact_id"] == joao).count(),
        2
    );
}
