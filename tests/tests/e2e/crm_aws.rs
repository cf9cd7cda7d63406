//! crm-sync on the AWS engine through the real AWS SDK against moto: the DynamoDB identity store
//! (one contact under racing first messages, number moves), the DynamoDB effects ledger, and the
//! Lambda handler's partial batch failures over a real SQS queue and DLQ.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{json, Value};
use wabridge_aws::dynamo::identity::DynamoIdentityStore;
use wabridge_aws::dynamo::ledger::DynamoLedger;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::identity::{IdentityKey, IdentityStore};
use wabridge_core::ledger::{Claim, Ledger};
use wabridge_core::mapping::Mapping;
use wabridge_core::sync::CrmSync;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

#[tokio::test]
async fn dynamo_identity_store_makes_one_contact_under_racing_first_messages() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("crm-id")).await;
    let store = Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table));
    let keys = vec![
        IdentityKey::Phone("525512345678".into()),
        IdentityKey::Bsuid("MX.42".into()),
    ];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, keys) = (store.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            store.resolve(&keys, &format!("c{i}")).await.unwrap()
        }));
    }
    let mut contacts = Vec::new();
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        created += usize::from(r.created);
        contacts.push(r.contact_id);
    }
    contacts.dedup();
    assert_eq!(contacts.len(), 1, "one contact: {contacts:?}");
    assert_eq!(created, 1);
    let c = contacts[0].clone();
    assert_eq!(
        store.lookup(&keys[1]).await.unwrap().as_deref(),
        Some(c.as_str())
    );
    // Number change: the new key joins the contact, the old one is freed; repeating is a no-op.
    let new = IdentityKey::Phone("525599999999".into());
    assert_eq!(store.move_key(&keys[0], &new, "x").await.unwrap(), c);
    assert_eq!(store.move_key(&keys[0], &new, "y").await.unwrap(), c);
    assert_eq!(store.lookup(&keys[0]).await.unwrap(), None);
    assert_eq!(
        store.lookup(&new).await.unwrap().as_deref(),
        Some(c.as_str())
    );
}

#[tokio::test]
async fn dynamo_ledger_claims_once_and_statuses_only_move_forward() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("crm-ledger")).await;
    let ledger = Arc::new(DynamoLedger::new(aws.dynamo.clone(), table));
    let lease = Duration::from_secs(30);
    // A second claim while the first holds its lease is refused (the conditional update).
    // (Racing claims are not asserted here: moto does not serialise concurrent UpdateItem calls
    // the way DynamoDB does; the SQLite ledger's race is covered by its own tests.)
    assert_eq!(
        ledger.claim("ev#activity", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    for _ in 0..3 {
        assert!(
            matches!(ledger.claim("ev#activity", lease).await.unwrap(), Claim::Busy(d) if d > Duration::from_secs(20))
        );
    }
    ledger.abandon("ev#activity").await.unwrap();
    assert_eq!(
        ledger.claim("ev#activity", lease).await.unwrap(),
        Claim::Proceed { in_doubt: true }
    );
    ledger.confirm("ev#activity").await.unwrap();
    assert_eq!(
        ledger.claim("ev#activity", lease).await.unwrap(),
        Claim::Done
    );
    ledger.release("ev#activity").await.unwrap();
    assert_eq!(
        ledger.claim("ev#activity", lease).await.unwrap(),
        Claim::Done
    );
    assert_eq!(
        ledger.claim("ev2#contact", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    ledger.release("ev2#contact").await.unwrap();
    assert_eq!(
        ledger.claim("ev2#contact", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    assert!(ledger.advance_status("wamid.1", 1).await.unwrap());
    assert!(ledger.advance_status("wamid.1", 3).await.unwrap());
    assert!(
        !ledger.advance_status("wamid.1", 2).await.unwrap(),
        "late delivered after read"
    );
    assert!(ledger.advance_status("wamid.1", 5).await.unwrap());
}

/// A CRM receiver: 204 for every event except those whose text asks for a 503 or a 400.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let text = v["text"].as_str().unwrap_or_default().to_string();
            if text.contains("please-503") {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE;
            }
            if text.contains("please-400") {
                return axum::http::StatusCode::BAD_REQUEST;
            }
            if text.contains("please-slow") {
                // Past the client's timeout: the call fails, as a hung CRM's would.
                tokio::time::sleep(Duration::from_secs(3)).await;
                return axum::http::StatusCode::GATEWAY_TIMEOUT;
            }
            seen.lock().unwrap().push(v);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/crm"), got)
}

/// Receives `n` messages of `url` as Lambda's SQS records (hidden 60 s).
async fn receive_records(aws: &wabridge_tests::Aws, url: &str, n: usize) -> Vec<SqsMessage> {
    let mut records = Vec::new();
    while records.len() < n {
        records.extend(wabridge_tests::receive_lambda_records(&aws.sqs, url).await);
    }
    records
}

fn event(key: &str, text: &str) -> String {
    json!({"v": 1, "key": key, "kind": "message", "field": "messages", "waba_id": "W",
        "contact": {"profile": {"name": "Ana"}, "wa_id": "5215512345678"},
        "item": {"from": "5215512345678", "id": key, "timestamp": "1763780000", "type": "text", "text": {"body": text}},
        "received_at": 1})
    .to_string()
}

#[tokio::test]
async fn lambda_reports_partial_batch_failures_and_dead_letters_with_reason() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("crm-lambda")).await;
    let queues = create_queues(&aws.sqs, &unique_name("crm-events"), 5).await;
    let (url, got) = receiver().await;
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(aws.dynamo.clone(), table)),
        Arc::new(WebhookCrm::new(&url, "whsec_c2VjcmV0", Duration::from_secs(2)).unwrap()),
        Arc::new(Mapping::example("webhook").unwrap()),
    );
    let app = crm_sync::App {
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
        handler: Arc::new(sync),
        queue: Arc::new(SqsQueue::new(
            aws.sqs.clone(),
            queues.url.clone(),
            queues.dlq_url.clone(),
        )),
    };
    for body in [
        event("wamid.ok", "hola"),
        event("wamid.down", "please-503"),
        event("wamid.bad", "please-400"),
        "{not json".into(),
    ] {
        aws.sqs
            .send_message()
            .queue_url(&queues.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let records = receive_records(&aws, &queues.url, 4).await;
    let ids: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.body.clone().unwrap(), r.message_id.clone().unwrap()))
        .collect();
    let id_of = |needle: &str| {
        ids.iter()
            .find(|(b, _)| b.contains(needle))
            .unwrap()
            .1
            .clone()
    };
    let mut sqs_event = SqsEvent::default();
    sqs_event.records = records;
    let response = crm_sync::handle(&app, sqs_event, None).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        vec![id_of("wamid.down")],
        "only the 503 stays for a retry"
    );
    // The good event reached the CRM (contact + activity), the bad ones never did.
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got.iter().filter(|v| v["event_id"] == "wamid.ok").count(),
        1
    );
    assert!(got.iter().all(|v| v["text"] != "please-400"));
    // The 400 and the non-event are in the DLQ with their reasons.
    let dead = app.queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| d.reason.clone().unwrap_or_default())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("HTTP 400")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not an event")),
        "{reasons:?}"
    );
}

/// The invocation's deadline with a CRM that hangs: a call that would not end before the
/// deadline is not started, and the batch answers in time with every unfinished record as a
/// batch item failure, never a whole-batch timeout. The CRM client's timeout is 2 s.
#[tokio::test]
async fn the_lambda_answers_before_its_deadline_with_a_hung_crm() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("crm-deadline")).await;
    let queues = create_queues(&aws.sqs, &unique_name("crm-deadline"), 1000).await;
    let (url, _) = receiver().await;
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let crm = Arc::new(Counting {
        inner: WebhookCrm::new(&url, "whsec_c2VjcmV0", Duration::from_secs(2)).unwrap(),
        calls: hits.clone(),
    });
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(aws.dynamo.clone(), table)),
        crm,
        Arc::new(Mapping::example("webhook").unwrap()),
    );
    let app = crm_sync::App {
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
        handler: Arc::new(sync),
        queue: Arc::new(SqsQueue::new(
            aws.sqs.clone(),
            queues.url.clone(),
            queues.dlq_url.clone(),
        )),
    };
    for i in 0..6 {
        aws.sqs
            .send_message()
            .queue_url(&queues.url)
            .message_body(event(&format!("wamid.slow{i}"), "please-slow"))
            .send()
            .await
            .unwrap();
    }
    // 3.5 s of work: each record's contact goes through, its activity's first attempt (2 s)
    // fits and times out, a second would not fit.
    let mut batch = SqsEvent::default();
    batch.records = receive_records(&aws, &queues.url, 6).await;
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_millis(3500);
    let response = crm_sync::handle(&app, batch, Some(deadline)).await;
    let took = started.elapsed();
    assert_eq!(response.batch_item_failures.len(), 6, "{response:?}");
    assert!(
        took < Duration::from_millis(3500),
        "answered after {took:?}"
    );
    let calls = hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        calls <= 12,
        "{calls} calls: 6 contacts and one activity attempt each at most"
    );

    // With less time left than one call takes, nothing is called at all.
    hits.store(0, std::sync::atomic::Ordering::SeqCst);
    let mut batch = SqsEvent::default();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for r in receive_records(&aws, &queues.url, 6).await {
        batch.records.push(r);
    }
    let started = std::time::Instant::now();
    let response = crm_sync::handle(&app, batch, Some(started + Duration::from_secs(1))).await;
    assert_eq!(response.batch_item_failures.len(), 6);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A CRM that counts its calls.
struct Counting {
    inner: WebhookCrm,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl wabridge_core::crm::Crm for Counting {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn call_budget(&self) -> Option<Duration> {
        self.inner.call_budget()
    }
    async fn apply(
        &self,
        effect: &wabridge_core::crm::Effect,
    ) -> Result<(), wabridge_core::crm::CrmError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.apply(effect).await
    }
}
