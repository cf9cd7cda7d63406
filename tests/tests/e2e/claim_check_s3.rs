//! The claim-check over moto's S3 and SQS through the real AWS SDK: a 600 KiB event in a batched
//! delivery next to small ones goes through ingest's Lambda handler (S3 object + SQS pointer,
//! 200 only after both) and crm-sync's (read back, CRM once, object deleted), and the failure
//! modes: a redelivered pointer after the work is done, a missing object, a corrupt one.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use wabridge_core::ingest::IngestConfig;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Queue;
use wabridge_core::signature::{self, AppSecret};
use wabridge_crm::webhook::WebhookCrm;

use crate::infra_e2e::crm_receiver::CrmReceiver;
use crate::infra_e2e::lambda_service::{call_ingest, lambda_request};
use wabridge_tests::{
    create_bucket, create_queues, create_table, object_keys, receive_lambda_records, require_aws,
    unique_name, Aws, TestQueues,
};

pub(crate) const APP_SECRET: &str = "claim-check-test-app-secret";

pub(crate) struct Setup {
    pub(crate) aws: Aws,
    pub(crate) table: String,
    pub(crate) queues: TestQueues,
    pub(crate) bucket: String,
}

pub(crate) async fn setup(aws: Aws) -> Setup {
    let table = create_table(&aws.dynamo, &unique_name("claim")).await;
    let queues = create_queues(&aws.sqs, &unique_name("claim-events"), 5).await;
    // As the template's events queue: messages up to 256 KiB.
    aws.sqs
        .set_queue_attributes()
        .queue_url(&queues.url)
        .attributes(QueueAttributeName::MaximumMessageSize, "262144")
        .send()
        .await
        .unwrap();
    let bucket = create_bucket(&aws.s3, &unique_name("claim")).await;
    Setup {
        aws,
        table,
        queues,
        bucket,
    }
}

impl Setup {
    /// ingest's Lambda wiring, as at a cold start.
    pub(crate) fn ingest(&self, bucket: Option<&str>) -> wabridge_core::api::Api {
        let ingest = IngestConfig::from_lookup(|name| {
            (name == "WHATSAPP_APP_SECRET").then(|| APP_SECRET.to_string())
        })
        .unwrap();
        ingest::build_api(
            &self.aws.config,
            ingest::Settings {
                table: self.table.clone(),
                events_queue_url: self.queues.url.clone(),
                ingest,
                sends_queue_url: None,
                api_keys: Default::default(),
                claim_check_bucket: bucket.map(str::to_string),
                audit_retention: wabridge_tests::AUDIT_RETENTION,
                content_retention: wabridge_tests::CONTENT_RETENTION,
                template_languages: Default::default(),
                media_bucket: None,
                media_links: None,
                catalogues: Default::default(),
                conversation_idle_ms: 24 * 3_600_000,
                consent_scope: Default::default(),
            },
        )
    }

    /// crm-sync's Lambda wiring over the same table, queue and bucket, with the webhook CRM.
    pub(crate) fn crm_sync(&self, crm_url: &str) -> crm_sync::App {
        let crm = WebhookCrm::new(crm_url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap();
        self.crm_sync_with(Arc::new(crm))
    }

    /// crm-sync's Lambda wiring with this CRM client.
    pub(crate) fn crm_sync_with(&self, crm: Arc<dyn wabridge_core::crm::Crm>) -> crm_sync::App {
        let engine = self
            .aws
            .engine(&self.table)
            .with_claim_check(&self.aws.config, Some(self.bucket.clone()));
        let queue: Arc<dyn Queue> = Arc::new(engine.queue(&self.queues.url, &self.queues.dlq_url));
        let sync = engine
            .crm_sync(
                crm,
                Mapping::example("webhook").unwrap(),
                Default::default(),
                Duration::from_secs(86_400),
                Arc::new(crm_sync::sending_hooks(&engine, queue.clone())),
            )
            // As the Lambda builds it (default idle time).
            .with_conversations(engine.conversations(24 * 3_600_000, Duration::from_secs(86_400)));
        crm_sync::App {
            handler: engine.claim_checked(Arc::new(sync)),
            queue,
            policy: wabridge_core::retry::RetryPolicy::EVENTS,
        }
    }

    /// Everything on the events queue, as Lambda's SQS records (hidden 60 s).
    pub(crate) async fn records(&self) -> Vec<SqsMessage> {
        let mut records = Vec::new();
        for _ in 0..5 {
            records.extend(receive_lambda_records(&self.aws.sqs, &self.queues.url).await);
        }
        records
    }

    async fn send(&self, body: &str) {
        self.aws
            .sqs
            .send_message()
            .queue_url(&self.queues.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
}

/// A signed Function URL POST of `payload` to ingest; returns the status and body.
pub(crate) async fn post_webhook(api: &wabridge_core::api::Api, payload: &[u8]) -> (u16, String) {
    let secret = AppSecret::new(APP_SECRET.as_bytes().to_vec()).unwrap();
    let signature = signature::sign(&secret, payload);
    let headers = [
        ("content-type", "application/json"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    call_ingest(api, lambda_request("POST", "/webhook", &headers, payload)).await
}

fn text(id: &str, body: &str) -> Value {
    json!({"from": "5493514567890", "id": id, "timestamp": "1763700060", "type": "text",
        "text": {"body": body}})
}

/// A Flow reply whose response carries `size` bytes of answers (a long form, pasted text).
fn big_flow_reply(id: &str, size: usize) -> Value {
    let answers =
        "Necesito cotización para 40 cajas, entrega en Córdoba capital. ".repeat(size / 64);
    let response = json!({"flow_token": "lead-form-2026", "nombre": "Martín", "notas": answers});
    json!({"from": "5493514567890", "id": id, "timestamp": "1763700061", "type": "interactive",
        "interactive": {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
            "response_json": response.to_string()}}})
}

/// One delivery, one change, the given messages.
fn webhook(messages: Vec<Value>) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "107788990011223", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "541150001111", "phone_number_id": "112233445566778"},
            "contacts": [{"profile": {"name": "Martín Gómez"}, "wa_id": "5493514567890"}],
            "messages": messages}}]}]})
    .to_string()
    .into_bytes()
}

/// The JSON bodies the CRM received.
fn bodies(crm: &CrmReceiver) -> Vec<Value> {
    crm.calls()
        .iter()
        .map(|c| serde_json::from_str(&c.body).unwrap_or(Value::Null))
        .collect()
}

/// The records the CRM received, as (kind, event id): an event makes one record of each kind
/// it has (the first message also upserts its contact; a Flow reply is also a lead).
fn records_received(crm: &CrmReceiver) -> Vec<(String, String)> {
    bodies(crm)
        .iter()
        .filter_map(|v| {
            let kind = v["kind"].as_str()?.to_string();
            Some((kind, v["event_id"].as_str()?.to_string()))
        })
        .collect()
}

pub(crate) async fn handle(app: &crm_sync::App, records: Vec<SqsMessage>) -> Vec<String> {
    let mut event = SqsEvent::default();
    event.records = records;
    crm_sync::handle(app, event, None)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_600_kib_event_in_a_batched_delivery_arrives_once_through_s3() {
    let s = setup(require_aws!()).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (small_a, big, small_b) = (
        format!("wamid.A{run}"),
        format!("wamid.BIG{run}"),
        format!("wamid.B{run}"),
    );
    let payload = webhook(vec![
        text(&small_a, "Hola, ¿hacen envíos a Córdoba?"),
        big_flow_reply(&big, 600 * 1024),
        text(&small_b, "Gracias!"),
    ]);
    assert!(payload.len() > 600 * 1024 && payload.len() < 1024 * 1024);

    // With the claim-check: 200, the big event as an object, three messages on the queue.
    let api = s.ingest(Some(&s.bucket));
    let (status, body) = post_webhook(&api, &payload).await;
    assert_eq!(status, 200, "{body}");
    let stored = object_keys(&s.aws.s3, &s.bucket, "events/").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let records = s.records().await;
    assert_eq!(records.len(), 3, "one message per event, each once");
    let pointers: Vec<&SqsMessage> = records
        .iter()
        .filter(|r| wabridge_core::claim_check::is_pointer(r.body.as_deref().unwrap()))
        .collect();
    assert_eq!(pointers.len(), 1);
    let pointer = pointers[0].body.clone().unwrap();
    assert!(pointer.len() < 1024, "{pointer}");
    assert!(records
        .iter()
        .all(|r| r.body.as_ref().unwrap().len() < 256 * 1024));

    // crm-sync: every event reaches the CRM once; the object is replaced by its tombstone.
    let got = CrmReceiver::start().await;
    let crm = got.url.clone();
    let app = s.crm_sync(&crm);
    assert_eq!(handle(&app, records).await, Vec::<String>::new());
    let received = records_received(&got);
    let mut distinct = received.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        received.len(),
        "nothing twice: {received:?}"
    );
    for id in [&small_a, &big, &small_b] {
        assert!(
            received
                .iter()
                .any(|(kind, e)| kind == "activity" && e.ends_with(id.as_str())),
            "{id}'s activity in {received:?}"
        );
    }
    let big_call = bodies(&got)
        .iter()
        .any(|v| v.to_string().contains("Necesito cotización para 40 cajas"));
    assert!(big_call, "the CRM saw the big event's content");
    assert!(object_keys(&s.aws.s3, &s.bucket, "events/")
        .await
        .is_empty());
    assert_eq!(object_keys(&s.aws.s3, &s.bucket, "done/").await.len(), 1);

    // SQS delivers the pointer again (at least once): done, nothing twice, nothing dead.
    let calls = got.calls().len();
    s.send(&pointer).await;
    assert_eq!(handle(&app, s.records().await).await, Vec::<String>::new());
    assert_eq!(got.calls().len(), calls);
    assert!(app.queue.dead_letters(10).await.unwrap().is_empty());

    // Meta retries the same delivery: dedupe keeps every event out, the same object is written.
    let (status, _) = post_webhook(&api, &payload).await;
    assert_eq!(status, 200);
    assert!(s.records().await.is_empty());

    // What the claim-check is for: without a bucket, the queue refuses the big event and ingest
    // must fail the whole delivery (Meta retries it).
    let payload = webhook(vec![big_flow_reply(
        &format!("wamid.NOBUCKET{run}"),
        600 * 1024,
    )]);
    let (status, _) = post_webhook(&s.ingest(None), &payload).await;
    assert_eq!(status, 503, "the queue takes no 600 KiB message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_claim_checked_object_is_dead_lettered_with_its_reason() {
    let s = setup(require_aws!()).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let api = s.ingest(Some(&s.bucket));
    for id in ["LOST", "BAD"] {
        let payload = webhook(vec![big_flow_reply(
            &format!("wamid.{id}{run}"),
            300 * 1024,
        )]);
        assert_eq!(post_webhook(&api, &payload).await.0, 200);
    }
    let records = s.records().await;
    assert_eq!(records.len(), 2);
    let key_of = |r: &SqsMessage| -> String {
        let v: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        v["claim_check"]["key"].as_str().unwrap().to_string()
    };
    // One object deleted by hand, the other overwritten with something else.
    s.aws
        .s3
        .delete_object()
        .bucket(&s.bucket)
        .key(key_of(&records[0]))
        .send()
        .await
        .unwrap();
    s.aws
        .s3
        .put_object()
        .bucket(&s.bucket)
        .key(key_of(&records[1]))
        .body(b"{\"v\":1}".to_vec().into())
        .send()
        .await
        .unwrap();

    let got = CrmReceiver::start().await;
    let crm = got.url.clone();
    let app = s.crm_sync(&crm);
    assert_eq!(
        handle(&app, records).await,
        Vec::<String>::new(),
        "neither is retried for ever"
    );
    assert!(got.calls().is_empty(), "nothing reached the CRM");
    let dead = app.queue.dead_letters(10).await.unwrap();
    let reasons: Vec<String> = dead.iter().filter_map(|d| d.reason.clone()).collect();
    assert_eq!(reasons.len(), 2, "{dead:?}");
    assert!(
        reasons.iter().any(|r| r.contains("is corrupt")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("is missing")),
        "{reasons:?}"
    );
    // The dead letters keep their pointers (a redrive reads the object again).
    assert!(dead
        .iter()
        .all(|d| wabridge_core::claim_check::is_pointer(&d.body)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_without_the_bucket_waits_instead_of_failing_the_event() {
    let s = setup(require_aws!()).await;
    let api = s.ingest(Some(&s.bucket));
    let id = format!("wamid.WAIT{}", uuid::Uuid::new_v4().simple());
    let payload = webhook(vec![big_flow_reply(&id, 300 * 1024)]);
    assert_eq!(post_webhook(&api, &payload).await.0, 200);
    let got = CrmReceiver::start().await;
    let crm = got.url.clone();
    // crm-sync deployed without CLAIM_CHECK_BUCKET.
    let mut app = s.crm_sync(&crm);
    let engine = s.aws.engine(&s.table);
    app.handler = engine.claim_checked(Arc::new(engine.crm_sync(
        Arc::new(WebhookCrm::new(&crm, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap()),
        Mapping::example("webhook").unwrap(),
        Default::default(),
        Duration::from_secs(86_400),
        Arc::new(crm_sync::sending_hooks(&engine, app.queue.clone())),
    )));
    let records = s.records().await;
    let id_of = records[0].message_id.clone().unwrap();
    assert_eq!(handle(&app, records).await, vec![id_of], "retried later");
    assert!(app.queue.dead_letters(10).await.unwrap().is_empty());
    assert!(got.calls().is_empty());
    assert_eq!(object_keys(&s.aws.s3, &s.bucket, "events/").await.len(), 1);
}
