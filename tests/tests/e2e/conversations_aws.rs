//! Conversations through crm-sync on the AWS engine (DynamoDB identity store, effects ledger and
//! conversation items over moto) to the webhook CRM, with the scripted day of
//! [`wabridge_tests::conversation_day`]: every event delivered twice, the latest revision of
//! each conversation as on SQLite, and no conversation change posted twice.

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
use wabridge_tests::conversation_day as day;
use wabridge_tests::{create_table, require_aws, unique_name};

/// A webhook CRM receiver keeping every body it accepted, with its `webhook-id`.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock()
                    .unwrap()
                    .push((id, serde_json::from_slice::<Value>(&body).unwrap()));
                axum::http::StatusCode::NO_CONTENT
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/crm"), got)
}

async fn deliver_twice(sync: &CrmSync, events: &[Event]) {
    for e in events {
        for _ in 0..2 {
            let d = Delivery {
                message_id: e.key.clone(),
                receipt: "r".into(),
                body: e.to_json(),
                receive_count: 1,
                enqueued_at: None,
            };
            assert_eq!(sync.handle(&d).await, Outcome::Done, "{}", e.key);
        }
    }
}

#[tokio::test]
async fn a_scripted_day_of_conversations_over_dynamodb_reaches_the_webhook_crm_once() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("conversations")).await;
    let (url, got) = receiver().await;
    let engine = aws.engine(&table);
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(aws.dynamo.clone(), table)),
        Arc::new(WebhookCrm::new(&url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap()),
        Arc::new(Mapping::example("webhook").unwrap()),
    )
    .with_conversations(engine.conversations(day::IDLE_MS, Duration::from_secs(30 * 86_400)));

    deliver_twice(&sync, &day::morning()).await;
    let bodies = |got: &Arc<Mutex<Vec<(String, Value)>>>| -> Vec<Value> {
        got.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    };
    let morning = day::latest(&bodies(&got));
    day::check_morning(&morning);
    let first = morning[0]["id"].clone();
    // Activities carry their conversation.
    let all = bodies(&got);
    let activity = |id: &str| {
        all.iter()
            .find(|r| r["kind"] == "activity" && r["message_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(activity("wamid.M1")["conversation_id"], first);
    assert_eq!(activity("wamid.E1")["conversation_id"], morning[1]["id"]);
    // An edit names its original's conversation, a call the thread's current one (none two
    // days later, the conversation idle since); neither changes a conversation.
    deliver_twice(
        &sync,
        &[
            day::edit(
                day::MARIANA,
                "wamid.ED1",
                "wamid.M1",
                day::T0 + 5 * day::MIN,
            ),
            day::call(day::MARIANA, "wacid.C1", day::T0 + day::HOUR),
            day::call(day::MARIANA, "wacid.C2", day::T0 + 48 * day::HOUR),
        ],
    )
    .await;
    let all = bodies(&got);
    let of = |kind: &str, key: &str, id: &str| {
        all.iter()
            .find(|r| r["kind"] == kind && r[key] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        of("message_change", "message_id", "wamid.M1")["conversation_id"],
        first
    );
    assert_eq!(of("call", "call_id", "wacid.C1")["conversation_id"], first);
    assert!(of("call", "call_id", "wacid.C2")
        .get("conversation_id")
        .is_none());
    assert_eq!(day::latest(&all), morning);

    deliver_twice(&sync, &day::next_day()).await;
    day::check_next_day(&day::latest(&bodies(&got)), &first);
    // Each effect reached the CRM once: no webhook id twice.
    let got = got.lock().unwrap();
    let mut ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "an effect was posted twice");
}
