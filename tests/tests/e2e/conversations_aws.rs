//! Conversations through crm-sync on the AWS engine (DynamoDB identity store, effects ledger and
//! conversation items over moto) to the webhook CRM, with the scripted day of
//! [`wabridge_tests::conversation_day`]: every event delivered twice, the latest revision of
//! each conversation as on SQLite, and no conversation change posted twice. Tags through the
//! ingest Lambda's `PATCH`/`POST /conversations/{id}…` and an outcome through the attribution
//! Lambda's `POST /conversions` (each twice) travel the SQS events queue to crm-sync.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wabridge_aws::dynamo::identity::DynamoIdentityStore;
use wabridge_aws::dynamo::ledger::DynamoLedger;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::api::Api;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::event::Event;
use wabridge_core::http::{Method, Request};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::queue::Queue;
use wabridge_core::sync::CrmSync;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::conversation_day as day;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

const KEY: &str = "conversations-aws-admin-key";

/// `body` to `path` on `api` with the admin key: status and JSON.
async fn call(api: &Api, method: Method, path: &str, body: Value) -> (u16, Value) {
    let response = api
        .handle(Request {
            method,
            path: path.into(),
            query: None,
            headers: vec![
                ("authorization".into(), format!("Bearer {KEY}")),
                ("content-type".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        })
        .await;
    let v = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, v)
}

/// Hands every queued event to crm-sync, twice each; returns how many.
async fn drain(queue: &SqsQueue, sync: &CrmSync) -> usize {
    let mut n = 0;
    loop {
        let batch = queue.receive(10, Duration::from_secs(60)).await.unwrap();
        if batch.is_empty() {
            return n;
        }
        for d in batch {
            deliver_twice(sync, &[Event::from_json(&d.body).unwrap()]).await;
            queue.delete(&d.receipt).await.unwrap();
            n += 1;
        }
    }
}

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
    let queues = create_queues(&aws.sqs, &unique_name("conv-events"), 5).await;
    let queue = SqsQueue::new(aws.sqs.clone(), &queues.url, &queues.dlq_url);
    let dir = tempfile::tempdir().unwrap();
    let mapping_path = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping_path,
        format!("{}\n{}", wabridge_core::mapping::WEBHOOK_EXAMPLE, day::TAGS),
    )
    .unwrap();
    let lookup = |name: &str| match name {
        "WABRIDGE_TABLE" => Some(table.clone()),
        "EVENTS_QUEUE_URL" => Some(queues.url.clone()),
        "WABRIDGE_API_KEY" => Some(KEY.to_string()),
        "WABRIDGE_MAPPING" => Some(mapping_path.to_str().unwrap().to_string()),
        "CRM_KIND" => Some("webhook".to_string()),
        _ => None,
    };
    // The Lambdas' own wiring, as at a cold start.
    let ingest = ingest::build_api(&aws.config, ingest::Settings::from_lookup(lookup).unwrap());
    let attribution = attribution::build_api(
        &aws.config,
        attribution::Settings::from_lookup(lookup).unwrap(),
    );
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(aws.dynamo.clone(), table.clone())),
        Arc::new(WebhookCrm::new(&url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap()),
        Arc::new(Mapping::load(mapping_path.to_str().unwrap()).unwrap()),
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

    // Tags by rule, then by the API, and a conversion, each twice.
    deliver_twice(&sync, &day::late_morning()).await;
    day::check_late_morning(&day::latest(&bodies(&got)));
    let joao = morning[1]["id"].as_str().unwrap();
    let tags = format!("/conversations/{joao}/tags");
    for _ in 0..2 {
        let (status, v) = call(
            &ingest,
            Method::Post,
            &tags,
            serde_json::json!({"tags": ["vip"]}),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = call(
        &ingest,
        Method::Post,
        &tags,
        serde_json::json!({"tags": ["gold"]}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_tag")),
        "{v}"
    );
    let (status, v) = call(
        &ingest,
        Method::Patch,
        "/conversations/cnv_missing",
        serde_json::json!({"outcome": "lost"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let sale = serde_json::json!({"contact_id": morning[0]["contact_id"], "value": day::SALE,
        "currency": "MXN", "event_id": "deal-8812", "number": day::NUMBER});
    for _ in 0..2 {
        let (status, v) = call(&attribution, Method::Post, "/conversions", sale.clone()).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["conversation_id"], first, "{v}");
    }
    // Each once: the same tag or conversion again changes and queues nothing.
    assert_eq!(drain(&queue, &sync).await, 2);
    day::check_api_changes(&day::latest(&bodies(&got)));

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
