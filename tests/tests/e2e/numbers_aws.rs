//! crm-sync's Lambda handler over DynamoDB and SQS (moto) with a numbers registry (issue 21):
//! two numbers, each with its own webhook CRM. Every event lands in its own number's CRM only,
//! tagged with the line; an event of an unknown number goes to the SQS DLQ with the reason
//! `unknown_number`, and lands once a registry that has the number handles it again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{json, Value};
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::numbers::Numbers;
use wabridge_core::queue::Queue;
use wabridge_core::sync::NoHooks;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

pub(crate) const MX: &str = "106540352242922";
pub(crate) const CO: &str = "206540352242922";
pub(crate) const NEW: &str = "306540352242922";

pub(crate) type Got = Arc<Mutex<Vec<Value>>>;

/// A webhook CRM keeping every record it accepts.
pub(crate) async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let kept = kept.clone();
        async move {
            kept.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn registry(mx_url: &str, co_url: &str, with_new: bool) -> Numbers {
    let number = |label: &str, id: &str, display: &str, url: &str, key: &str| {
        format!(
            r#"
[[number]]
label = "{label}"
phone_number_id = "{id}"
waba_id = "102290129340398"
display_number = "{display}"
token_key = "WHATSAPP_ACCESS_TOKEN_{key}"
[number.crm]
kind = "webhook"
settings = {{ CRM_WEBHOOK_URL = "{url}" }}
secrets = {{ CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_{key}" }}
"#
        )
    };
    let mut text = number("ventas-mx", MX, "+52 55 5000 1111", mx_url, "MX")
        + &number("soporte-co", CO, "+57 601 500 2222", co_url, "CO");
    if with_new {
        text += &number("nuevo-mx", NEW, "+52 55 5000 3333", mx_url, "MX");
    }
    Numbers::parse("numbers.toml", text.as_bytes()).unwrap()
}

/// What the registry's crm-sync shares: the two CRMs' secrets by key, nothing else.
pub(crate) fn shared() -> crm_sync::numbers::Shared {
    crm_sync::numbers::Shared {
        env: Arc::new(|_: &str| None),
        secret: Arc::new(|key: &str| match key {
            "CRM_WEBHOOK_SECRET_MX" => Some("whsec_bXgtc2VjcmV0".to_string()),
            "CRM_WEBHOOK_SECRET_CO" => Some("whsec_Y28tc2VjcmV0".to_string()),
            _ => None,
        }),
        attribution: Default::default(),
        ledger_retention: Duration::from_secs(86_400),
        hooks: Arc::new(NoHooks),
        finish: Arc::new(|sync| sync),
    }
}

fn app(
    aws: &wabridge_tests::Aws,
    table: &str,
    queue: Arc<SqsQueue>,
    numbers: Numbers,
) -> crm_sync::App {
    let engine = aws.engine(table);
    let shared = shared();
    let dispatch = crm_sync::numbers::dispatch(&engine, Arc::new(numbers), &shared).unwrap();
    crm_sync::App {
        handler: Arc::new(dispatch),
        queue,
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
    }
}

pub(crate) fn event(number: &str, wamid: &str, from: &str) -> String {
    json!({"v": 1, "key": format!("m:{wamid}"), "kind": "message", "field": "messages",
        "waba_id": "102290129340398", "phone_number_id": number,
        "contact": {"profile": {"name": "Ana"}, "wa_id": from},
        "item": {"from": from, "id": wamid, "timestamp": "1763780000", "type": "text", "text": {"body": "hola"}},
        "received_at": 1})
    .to_string()
}

pub(crate) async fn receive(aws: &wabridge_tests::Aws, url: &str, n: usize) -> Vec<SqsMessage> {
    let mut records = Vec::new();
    while records.len() < n {
        records.extend(wabridge_tests::receive_lambda_records(&aws.sqs, url).await);
    }
    records
}

pub(crate) fn activities(got: &Got) -> Vec<(String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "activity")
        .map(|r| {
            (
                r["message_id"].as_str().unwrap().to_string(),
                r["business_number"]["label"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_lambda_routes_by_number_and_dead_letters_unknown_numbers() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("numbers")).await;
    let queues = create_queues(&aws.sqs, &unique_name("numbers-events"), 5).await;
    let queue = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        queues.url.clone(),
        queues.dlq_url.clone(),
    ));
    let (mx_url, mx) = receiver().await;
    let (co_url, co) = receiver().await;
    let app1 = app(
        &aws,
        &table,
        queue.clone(),
        registry(&mx_url, &co_url, false),
    );
    for body in [
        event(MX, "wamid.MX", "5215512345678"),
        event(CO, "wamid.CO", "573001234567"),
        event(NEW, "wamid.NEW", "5215599999999"),
    ] {
        queue
            .send_batch(&[wabridge_core::queue::OutgoingMessage {
                id: uuid_like(&body),
                body,
                delay: None,
            }])
            .await
            .unwrap();
    }
    let mut batch = SqsEvent::default();
    batch.records = receive(&aws, &queues.url, 3).await;
    let response = crm_sync::handle(&app1, batch, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        activities(&mx),
        vec![("wamid.MX".to_string(), "ventas-mx".to_string())]
    );
    assert_eq!(
        activities(&co),
        vec![("wamid.CO".to_string(), "soporte-co".to_string())]
    );
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("unknown_number: phone_number_id {NEW}")),
        "{reason}"
    );

    // Once the registry has the number, the same event lands in its target, under its label.
    let app2 = app(
        &aws,
        &table,
        queue.clone(),
        registry(&mx_url, &co_url, true),
    );
    let mut again = SqsEvent::default();
    again.records = vec![wabridge_tests::lambda_record(
        aws_sdk_sqs::types::Message::builder()
            .message_id("redriven-1")
            .receipt_handle("none")
            .body(dead[0].body.clone())
            .build(),
    )];
    let response = crm_sync::handle(&app2, again, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mut landed = activities(&mx);
    landed.sort();
    assert_eq!(
        landed,
        vec![
            ("wamid.MX".to_string(), "ventas-mx".to_string()),
            ("wamid.NEW".to_string(), "nuevo-mx".to_string()),
        ]
    );
    assert_eq!(activities(&co).len(), 1, "nothing new in the CO CRM");
}

/// A stable message id per body (the SQS engine takes the caller's id for dedupe).
pub(crate) fn uuid_like(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("m{:x}", h.finish())
}
