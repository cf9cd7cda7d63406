//! The sending side wired into the Lambdas, against moto (DynamoDB, SQS: real AWS SDK) and Prism
//! (Meta's OpenAPI spec):
//!
//! - the crm-sync Lambda's handler with [`crm_sync::sending_hooks`] (what its cold start wires):
//!   status events from a real SQS receive move a DynamoDB send forward only; a 131050 failure
//!   records the opt-out and puts a `send_result` event back on the events queue; a template
//!   PAUSED reaches the DynamoDB registry; a STOP keyword and an inbound message land in the
//!   consent history and the window under the phone AND the BSUID;
//! - the sender Lambda's `handle` over [`sender::build`] (what its cold start wires): a queued
//!   send becomes `sent` through Prism; one refused by a guard that changed while it waited
//!   reaches the events queue as a `send_result` event, which crm-sync turns into one outbound
//!   activity in the CRM (once, also when redelivered).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{json, Value};
use wabridge_aws::dynamo::consent::DynamoConsent;
use wabridge_aws::dynamo::sends::DynamoSends;
use wabridge_aws::dynamo::templates::DynamoTemplates;
use wabridge_aws::dynamo::window::DynamoWindow;
use wabridge_core::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ConsentStore,
};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Queue;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::service::NoEvents;
use wabridge_core::sends::store::{SendRecord, SendState, SendStore};
use wabridge_core::templates::TemplateStore;
use wabridge_core::window::WindowStore;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_graph::GraphClient;
use wabridge_tests::prism::Prism;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name, Aws, TestQueues};

/// A CRM receiver (the `webhook` CRM posts each record): 204, keeps what it got.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/crm"), got)
}

/// Receives exactly `n` messages from `url` (a real SQS receive) as the Lambda event SQS would
/// deliver; panics if fewer arrive within 20 s or more are waiting.
pub(crate) async fn receive(aws: &Aws, url: &str, n: usize) -> SqsEvent {
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while records.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} messages arrived",
            records.len()
        );
        records.extend(wabridge_tests::receive_lambda_records(&aws.sqs, url).await);
    }
    assert_eq!(records.len(), n, "more messages than expected");
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// The crm-sync Lambda's app as its cold start builds it (webhook CRM, the sending hooks).
fn crm_sync_app(aws: &Aws, table: &str, events: &TestQueues, crm_url: &str) -> crm_sync::App {
    let engine = aws.engine(table);
    let queue: Arc<dyn Queue> = Arc::new(engine.queue(events.url.clone(), events.dlq_url.clone()));
    let sync = engine.crm_sync(
        Arc::new(WebhookCrm::new(crm_url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap()),
        Mapping::example("webhook").unwrap(),
        wabridge_core::attribution::AttributionConfig::default(),
        Duration::from_secs(wabridge_core::config::DEFAULT_LEDGER_RETENTION_DAYS * 86_400),
        Arc::new(crm_sync::sending_hooks(&engine, queue.clone())),
    );
    crm_sync::App {
        handler: Arc::new(sync),
        queue,
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
    }
}

async fn put_events(aws: &Aws, url: &str, events: &[Value]) {
    for e in events {
        aws.sqs
            .send_message()
            .queue_url(url)
            .message_body(e.to_string())
            .send()
            .await
            .unwrap();
    }
}

fn status_event(send_id: &str, wamid: &str, status: &str, errors: Value) -> Value {
    let mut item = json!({"id": wamid, "status": status, "timestamp": "1763780000",
                          "recipient_id": "5215512345678", "recipient_user_id": "MX.lambda1",
                          "biz_opaque_callback_data": send_id});
    if !errors.is_null() {
        item["errors"] = errors;
    }
    json!({"v": 1, "key": format!("s:{wamid}:{status}"), "kind": "status", "field": "messages",
           "waba_id": "W", "item": item, "received_at": 1_763_780_001_000_i64})
}

fn queued(id: &str, to: &str, contact: &str) -> SendRecord {
    SendRecord {
        id: id.into(),
        idempotency_key: None,
        request_hash: "h".into(),
        request: json!({"to": to, "contact": contact, "type": "template",
                        "name": "order_confirmation", "language": "es_MX"}),
        contact: contact.into(),
        state: SendState::Queued,
        error: None,
        wamid: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn no_failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) {
    assert!(
        response.batch_item_failures.is_empty(),
        "failures: {:?}",
        response
            .batch_item_failures
            .iter()
            .map(|f| &f.item_identifier)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn crm_sync_lambda_hooks_move_dynamodb_sends_and_feed_the_guards() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("sends-hooks")).await;
    let events = create_queues(&aws.sqs, &unique_name("sends-hooks-ev"), 5).await;
    let (crm_url, got) = receiver().await;
    let app = crm_sync_app(&aws, &table, &events, &crm_url);
    let sends = DynamoSends::new(aws.dynamo.clone(), table.clone());
    let consent = DynamoConsent::new(aws.dynamo.clone(), table.clone());
    for (id, wamid) in [("snd_lambda1", "wamid.L1"), ("snd_lambda2", "wamid.L2")] {
        sends
            .create(&queued(id, "+525512345678", "phone:525512345678"))
            .await
            .unwrap();
        sends
            .transition(id, SendState::Sent, None, Some(wamid), 2)
            .await
            .unwrap();
    }

    // delivered, then read, then a late delivered: read stays.
    for st in ["delivered", "read"] {
        put_events(
            &aws,
            &events.url,
            &[status_event("snd_lambda1", "wamid.L1", st, Value::Null)],
        )
        .await;
        no_failures(&crm_sync::handle(&app, receive(&aws, &events.url, 1).await, None).await);
        let r = sends.get("snd_lambda1").await.unwrap().unwrap();
        assert_eq!(r.state.as_str(), st);
    }
    put_events(
        &aws,
        &events.url,
        &[status_event(
            "snd_lambda1",
            "wamid.L1b",
            "delivered",
            Value::Null,
        )],
    )
    .await;
    no_failures(&crm_sync::handle(&app, receive(&aws, &events.url, 1).await, None).await);
    assert_eq!(
        sends.get("snd_lambda1").await.unwrap().unwrap().state,
        SendState::Read
    );

    // A 131050 failure: the send fails, the opt-out is recorded under the phone it went to and
    // the BSUID the status names, and a send_result event goes back on the events queue.
    put_events(
        &aws,
        &events.url,
        &[status_event(
            "snd_lambda2",
            "wamid.L2",
            "failed",
            json!([{"code": 131050, "title": "User has stopped marketing messages"}]),
        )],
    )
    .await;
    no_failures(&crm_sync::handle(&app, receive(&aws, &events.url, 1).await, None).await);
    let r = sends.get("snd_lambda2").await.unwrap().unwrap();
    assert_eq!(r.state, SendState::Failed);
    assert_eq!(r.error.unwrap().code, "meta_131050");
    for key in ["phone:525512345678", "bsuid:MX.lambda1"] {
        let h = consent.history(key).await.unwrap();
        assert_eq!(h.len(), 1, "{key}: {h:?}");
        assert_eq!(h[0].action, ConsentAction::OptOut);
        assert_eq!(h[0].source, ConsentSource::MetaError);
    }
    let back = receive(&aws, &events.url, 1).await;
    let body: Value = serde_json::from_str(back.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["kind"], "send_result");
    assert_eq!(body["key"], "send:snd_lambda2:opted_out");
    // crm-sync turns it into the consent record in the CRM.
    no_failures(&crm_sync::handle(&app, back, None).await);

    // A template PAUSED reaches the registry.
    put_events(
        &aws,
        &events.url,
        &[
            json!({"v": 1, "key": "t:594:PAUSED:1763780000", "kind": "template_status",
                 "field": "message_template_status_update", "waba_id": "W",
                 "entry_time": 1_763_780_000_i64,
                 "item": {"event": "PAUSED", "message_template_id": 594,
                          "message_template_name": "promo_verano",
                          "message_template_language": "es_MX", "reason": "NONE"},
                 "received_at": 1_763_780_001_000_i64}),
        ],
    )
    .await;
    no_failures(&crm_sync::handle(&app, receive(&aws, &events.url, 1).await, None).await);
    let t = DynamoTemplates::new(aws.dynamo.clone(), table.clone())
        .get("promo_verano", "es_MX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.status.unwrap().as_str(), "PAUSED");

    // STOP from a person with a phone and a BSUID: consent and window under both keys; the
    // same event delivered again appends nothing.
    let stop = json!({"v": 1, "key": "wamid.stop1", "kind": "message", "field": "messages",
        "waba_id": "W",
        "contact": {"profile": {"name": "Ana"}, "wa_id": "5215598765432", "user_id": "MX.lambda2"},
        "item": {"from": "5215598765432", "from_user_id": "MX.lambda2", "id": "wamid.stop1",
                 "timestamp": "1763780000", "type": "text", "text": {"body": "BAJA"}},
        "received_at": 1_763_780_001_000_i64});
    let window = DynamoWindow::new(aws.dynamo.clone(), table.clone());
    for _ in 0..2 {
        put_events(&aws, &events.url, std::slice::from_ref(&stop)).await;
        no_failures(&crm_sync::handle(&app, receive(&aws, &events.url, 1).await, None).await);
        for key in ["phone:525598765432", "bsuid:MX.lambda2"] {
            let h = consent.history(key).await.unwrap();
            assert_eq!(h.len(), 1, "{key}: {h:?}");
            assert_eq!(h[0].source, ConsentSource::Keyword);
            assert_eq!(h[0].action, ConsentAction::OptOut);
            assert_eq!(
                window.last_inbound(key, None).await.unwrap().any,
                Some(1_763_780_000_000),
                "{key}: the window opens at the message's time"
            );
        }
    }

    // The CRM saw the outbound status activities with the send id, and the 131050 consent.
    let got = got.lock().unwrap().clone();
    let statuses: Vec<&Value> = got
        .iter()
        .filter(|r| r["kind"] == "activity" && r["send_id"] == "snd_lambda1")
        .collect();
    assert!(!statuses.is_empty(), "{got:#?}");
    assert!(statuses.iter().any(|r| r["status"] == "read"), "{got:#?}");
    let consents: Vec<&Value> = got
        .iter()
        .filter(|r| r["kind"] == "consent" && r["source"] == "meta_error")
        .collect();
    assert_eq!(consents.len(), 1, "{got:#?}");
    assert_eq!(consents[0]["evidence"]["send_id"], "snd_lambda2");
}

#[tokio::test]
async fn sender_lambda_sends_through_prism_and_reports_a_refusal_to_the_events_queue() {
    let aws = require_aws!();
    let Some(prism) = Prism::start() else { return };
    let table = create_table(&aws.dynamo, &unique_name("sender-l")).await;
    let sends_q = create_queues(&aws.sqs, &unique_name("sender-l-sends"), 5).await;
    let events_q = create_queues(&aws.sqs, &unique_name("sender-l-events"), 5).await;
    let graph = GraphClient::new(GraphConfig {
        base_url: prism.url().to_string(),
        version: "v23.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: "EAAGtestToken123".into(),
        timeout: Duration::from_secs(10),
    });
    let app = wabridge_tests::sender_app(&aws, &table, &sends_q, &events_q, graph);
    // What ingest's `POST /sends` does: the same table, the sends queue.
    let engine = aws.engine(&table);
    let api = engine.sends(
        Arc::new(engine.producer(sends_q.url.clone())),
        Arc::new(NoEvents),
        wabridge_tests::admin_keys("k"),
    );
    let consent = api.policy.consent.clone();
    let opt = |action, at| ConsentEntry {
        id: format!("con_{}", uuid::Uuid::new_v4().simple()),
        contact: "phone:525512340077".into(),
        to: "+525512340077".into(),
        category: ConsentCategory::Marketing,
        action,
        source: ConsentSource::WebForm,
        evidence: None,
        at,
        recorded_at: at,
        number: None,
    };
    let now = wabridge_core::clock::now_ms();
    consent
        .record(&opt(ConsentAction::OptIn, now - 60_000))
        .await
        .unwrap();
    let ok = api
        .submit(
            br#"{"to": "+52 1 55 1234 0076", "template": "order_confirmation", "language": "es_MX", "parameters": ["Ana"]}"#,
            None,
        )
        .await
        .unwrap();
    let refused = api
        .submit(
            br#"{"to": "+525512340077", "template": "promo_verano", "language": "es_MX", "category": "MARKETING"}"#,
            None,
        )
        .await
        .unwrap();
    // The contact opts out while the send waits in the queue.
    consent
        .record(&opt(ConsentAction::OptOut, now - 1_000))
        .await
        .unwrap();

    let response = sender::handle(&app, receive(&aws, &sends_q.url, 2).await, None).await;
    no_failures(&response);
    let store = DynamoSends::new(aws.dynamo.clone(), table.clone());
    let sent = store.get(&ok.id).await.unwrap().unwrap();
    assert_eq!(sent.state, SendState::Sent, "{sent:?}");
    assert!(sent
        .wamid
        .as_deref()
        .is_some_and(|w| w.starts_with("wamid.")));
    let r = store.get(&refused.id).await.unwrap().unwrap();
    assert_eq!(r.state, SendState::Refused);
    assert_eq!(r.error.as_ref().unwrap().code, "marketing_opted_out");

    // Exactly one send_result event: the refusal (a sent send ends through status webhooks).
    let reported = receive(&aws, &events_q.url, 1).await;
    let body: Value = serde_json::from_str(reported.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["kind"], "send_result");
    assert_eq!(body["key"], format!("send:{}:refused", refused.id));
    assert_eq!(body["item"]["state"], "refused");
    assert_eq!(body["item"]["error"]["code"], "marketing_opted_out");
    assert_eq!(body["item"]["to"], "+525512340077");

    // crm-sync makes it one outbound activity, also when the event is delivered twice.
    let (crm_url, got) = receiver().await;
    let sync = crm_sync_app(&aws, &table, &events_q, &crm_url);
    no_failures(&crm_sync::handle(&sync, reported, None).await);
    put_events(&aws, &events_q.url, std::slice::from_ref(&body)).await;
    no_failures(&crm_sync::handle(&sync, receive(&aws, &events_q.url, 1).await, None).await);
    let got = got.lock().unwrap().clone();
    let activities: Vec<&Value> = got
        .iter()
        .filter(|r| r["kind"] == "activity" && r["send_id"] == refused.id.as_str())
        .collect();
    assert_eq!(activities.len(), 1, "{got:#?}");
    assert_eq!(activities[0]["type"], "send_result");
    assert_eq!(activities[0]["status"], "refused");
    assert_eq!(activities[0]["direction"], "outbound");
    assert_eq!(activities[0]["errors"][0]["title"], "marketing_opted_out");

    // A duplicate queue message of the ended send reports it again (harmless: same key), and
    // never sends anything.
    sends_q_resend(&aws, &sends_q, &refused.id).await;
    no_failures(&sender::handle(&app, receive(&aws, &sends_q.url, 1).await, None).await);
    let again = receive(&aws, &events_q.url, 1).await;
    let b: Value = serde_json::from_str(again.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(b["key"], body["key"]);
    assert_eq!(
        store.get(&refused.id).await.unwrap().unwrap().state,
        SendState::Refused
    );
}

async fn sends_q_resend(aws: &Aws, q: &TestQueues, id: &str) {
    aws.sqs
        .send_message()
        .queue_url(&q.url)
        .message_body(wabridge_core::sends::service::queue_body(id))
        .send()
        .await
        .unwrap();
}
