//! The `ingest` Lambda's handler, fed the Lambda test events of `events/lambda/` through
//! lambda_http's own deserialiser, over DynamoDB and SQS in moto's server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use ingest::{build_api, handle, Settings};
use lambda_http::Body;
use wabridge_aws::dynamo::dedupe::DynamoDedupe;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::api::Api;
use wabridge_core::dedupe::DEFAULT_DEDUPE_TTL;
use wabridge_core::event::{Event, EventKind};
use wabridge_core::inbox::StagedInbox;
use wabridge_core::ingest::{IngestConfig, IngestService};
use wabridge_core::queue::Queue;
use wabridge_tests::faults::FailingQueue;
use wabridge_tests::{create_queues, create_table, queue_depth, require_aws, unique_name, Aws};

/// The sample secrets the events in `events/lambda/` were signed with (scripts/lambda_events.py).
const SAMPLE_APP_SECRET: &str = "wabridge-sample-app-secret-not-for-production";
const SAMPLE_VERIFY_TOKEN: &str = "wabridge-sample-verify-token";

fn lambda_event(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/lambda")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(name: &str) -> lambda_http::Request {
    lambda_http::request::from_str(&lambda_event(name))
        .unwrap_or_else(|e| panic!("{name} is not a Lambda HTTP event: {e}"))
}

fn ingest_config() -> IngestConfig {
    IngestConfig::from_lookup(|name| match name {
        "WHATSAPP_APP_SECRET" => Some(SAMPLE_APP_SECRET.into()),
        "WHATSAPP_VERIFY_TOKEN" => Some(SAMPLE_VERIFY_TOKEN.into()),
        _ => None,
    })
    .unwrap()
}

struct Stack {
    aws: Aws,
    table: String,
    queue: SqsQueue,
}

async fn stack(aws: Aws) -> Stack {
    let table = create_table(&aws.dynamo, &unique_name("wabridge")).await;
    let queues = create_queues(&aws.sqs, &unique_name("events"), 5).await;
    let queue = SqsQueue::new(aws.sqs.clone(), &queues.url, &queues.dlq_url);
    Stack { aws, table, queue }
}

impl Stack {
    /// The Lambda's own wiring (`build_api`), as at a cold start.
    fn api(&self) -> Api {
        build_api(
            &self.aws.config,
            Settings {
                table: self.table.clone(),
                events_queue_url: self.queue.queue_url().to_string(),
                ingest: ingest_config(),
                sends_queue_url: None,
                api_keys: Default::default(),
                claim_check_bucket: None,
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

    async fn drain_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        loop {
            let batch = self
                .queue
                .receive(10, Duration::from_secs(300))
                .await
                .unwrap();
            if batch.is_empty() {
                return keys;
            }
            keys.extend(batch.iter().map(|d| Event::from_json(&d.body).unwrap().key));
        }
    }
}

fn body_text(resp: &lambda_http::Response<Body>) -> String {
    String::from_utf8_lossy(resp.body().as_ref()).into_owned()
}

#[tokio::test]
async fn a_signed_function_url_post_is_enqueued_once_and_acknowledged() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let api = s.api();

    let resp = handle(&api, request("function-url-webhook-post.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", body_text(&resp));
    // Meta retries the very same delivery (it did not see our 200 in time).
    let resp = handle(&api, request("function-url-webhook-post.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let keys = s.drain_keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].ends_with("wamid.HBgNNjI4QjQ5RDk2RENERTk3QTQzMERENEY1"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_base64_encoded_batched_post_is_verified_over_the_decoded_bytes() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let api = s.api();
    let raw = lambda_event("function-url-webhook-post-base64.json");
    assert!(raw.contains("\"isBase64Encoded\": true"));

    let resp = handle(&api, request("function-url-webhook-post-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", body_text(&resp));
    let keys = s.drain_keys().await;
    assert!(
        keys.len() > 2,
        "several entries, changes and items: {keys:?}"
    );
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len(), "each event once");
}

#[tokio::test]
async fn a_bad_signature_is_refused_with_401_and_nothing_enqueued() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let resp = handle(
        &s.api(),
        request("function-url-webhook-post-bad-signature.json"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body_text(&resp)).unwrap();
    assert!(v["error"]["code"].is_string());
    assert_eq!(queue_depth(&s.aws.sqs, s.queue.queue_url()).await, (0, 0));
}

#[tokio::test]
async fn the_get_handshake_echoes_the_challenge_as_text() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let resp = handle(&s.api(), request("function-url-handshake.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(body_text(&resp), "1158201444");
}

#[tokio::test]
async fn unknown_paths_and_oversized_bodies_get_precise_errors() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let api = s.api();
    let event = lambda_event("function-url-webhook-post.json").replace("\"/webhook\"", "\"/nope\"");
    let resp = handle(&api, lambda_http::request::from_str(&event).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let mut event: serde_json::Value =
        serde_json::from_str(&lambda_event("function-url-webhook-post.json")).unwrap();
    event["body"] = serde_json::Value::String("x".repeat(1024 * 1024 + 1));
    let resp = handle(
        &api,
        lambda_http::request::from_str(&event.to_string()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(queue_depth(&s.aws.sqs, s.queue.queue_url()).await, (0, 0));
}

#[tokio::test]
async fn a_store_outage_answers_503_and_meta_s_retry_loses_nothing() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let dedupe = Arc::new(DynamoDedupe::new(s.aws.dynamo.clone(), &s.table));
    let real: Arc<dyn Queue> = Arc::new(s.queue.clone());
    // The queue takes 2 events of the batched POST, then the connection drops.
    let failing = Arc::new(FailingQueue::new(real, 1, 2));
    let inbox = StagedInbox::new(dedupe, failing.clone(), DEFAULT_DEDUPE_TTL);
    let api = Api::new().with_ingest(Arc::new(IngestService::new(
        ingest_config(),
        Arc::new(inbox),
    )));

    let resp = handle(&api, request("function-url-webhook-post-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "{}", body_text(&resp));
    assert_eq!(resp.headers()["retry-after"], "1");

    let resp = handle(&api, request("function-url-webhook-post-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = handle(&api, request("function-url-webhook-post-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        failing.sends(),
        2,
        "the third delivery was a pure duplicate"
    );

    // Compare with a clean run of the same POST on a fresh stack: the same keys, none missing;
    // the two sent before the failure are the only ones there twice.
    let keys = s.drain_keys().await;
    let clean = stack(s.aws.clone()).await;
    handle(
        &clean.api(),
        request("function-url-webhook-post-base64.json"),
    )
    .await
    .unwrap();
    let mut expected = clean.drain_keys().await;
    expected.sort();
    let mut got = keys.clone();
    got.sort();
    got.dedup();
    assert_eq!(got, expected, "every event on the queue");
    assert_eq!(keys.len(), expected.len() + 2);
}

#[tokio::test]
async fn an_unreachable_store_is_a_503_not_a_500() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Aws::connect(&format!("http://127.0.0.1:{port}")).await;
    let api = build_api(
        &down.config,
        Settings {
            table: s.table.clone(),
            events_queue_url: s.queue.queue_url().to_string(),
            ingest: ingest_config(),
            sends_queue_url: None,
            api_keys: Default::default(),
            claim_check_bucket: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            content_retention: wabridge_tests::CONTENT_RETENTION,
            template_languages: Default::default(),
            media_bucket: None,
            media_links: None,
            catalogues: Default::default(),
            conversation_idle_ms: 24 * 3_600_000,
            consent_scope: Default::default(),
        },
    );
    let resp = handle(&api, request("function-url-webhook-post.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "{}", body_text(&resp));
}

#[test]
fn the_sqs_batch_event_carries_queue_bodies_the_consumers_read() {
    let event: SqsEvent = serde_json::from_str(&lambda_event("sqs-events-batch.json")).unwrap();
    assert_eq!(event.records.len(), 2);
    for record in &event.records {
        let body = record.body.as_deref().expect("body");
        let e = Event::from_json(body).expect("an Event v1 body");
        assert_eq!(e.kind, EventKind::Message);
        assert!(e.key.contains("wamid."), "{}", e.key);
        assert!(record.message_id.is_some());
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    }
    assert_eq!(
        event.records[1]
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("2")
    );
}

/// A Function URL event for `method path` with `body` and an optional bearer key.
fn api_request(method: &str, path: &str, body: &str, bearer: Option<&str>) -> lambda_http::Request {
    let mut headers = serde_json::json!({"content-type": "application/json"});
    if let Some(key) = bearer {
        headers["authorization"] = serde_json::json!(format!("Bearer {key}"));
    }
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:03:00:00 +0000", "timeEpoch": 1795000000000u64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "crm"}
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a Lambda HTTP event")
}

#[tokio::test]
async fn the_lambda_serves_sends_and_links_with_the_api_key_over_dynamodb_and_sqs() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let sends = create_queues(&s.aws.sqs, &unique_name("sends"), 5).await;
    let sends_queue = SqsQueue::new(s.aws.sqs.clone(), &sends.url, &sends.dlq_url);
    let key = "test-api-key-0123456789";
    let api = build_api(
        &s.aws.config,
        Settings {
            table: s.table.clone(),
            events_queue_url: s.queue.queue_url().to_string(),
            ingest: ingest_config(),
            sends_queue_url: Some(sends.url.clone()),
            api_keys: wabridge_tests::admin_keys(key),
            claim_check_bucket: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            content_retention: wabridge_tests::CONTENT_RETENTION,
            template_languages: wabridge_core::sends::language::LanguageMap::parse(
                "AR=es_AR|es_MX,*=en_US",
            )
            .unwrap(),
            media_bucket: None,
            media_links: None,
            catalogues: Default::default(),
            conversation_idle_ms: 24 * 3_600_000,
            consent_scope: Default::default(),
        },
    );
    let body = r#"{"to": "+52 1 55 1234 5678", "template": "order_update", "language": "es_MX", "category": "UTILITY"}"#;

    // A wrong key is refused and nothing is queued.
    let resp = handle(&api, api_request("POST", "/sends", body, Some("wrong")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{}", body_text(&resp));
    assert_eq!(queue_depth(&s.aws.sqs, &sends.url).await, (0, 0));

    let resp = handle(&api, api_request("POST", "/sends", body, Some(key)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", body_text(&resp));
    let accepted: serde_json::Value = serde_json::from_str(&body_text(&resp)).unwrap();
    let id = accepted["id"].as_str().expect("an id").to_string();
    assert_eq!(accepted["state"], "queued");

    // The send is on the sends queue (and only there), naming the same id.
    let batch = sends_queue
        .receive(10, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert!(batch[0].body.contains(&id), "{}", batch[0].body);
    assert!(s.drain_keys().await.is_empty());

    let resp = handle(
        &api,
        api_request("GET", &format!("/sends/{id}"), "", Some(key)),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "{}", body_text(&resp));
    let got: serde_json::Value = serde_json::from_str(&body_text(&resp)).unwrap();
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["state"], "queued");
    assert_eq!(got["language"], "es_MX");

    // Without a language: the table's registry says which of the Argentine number's languages
    // (the configured map: es_AR, then es_MX) is approved.
    let no_language =
        r#"{"to": "+54 9 11 2345 6789", "template": "order_update", "category": "UTILITY"}"#;
    let resp = handle(&api, api_request("POST", "/sends", no_language, Some(key)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "{}", body_text(&resp));
    assert!(
        body_text(&resp).contains("template_language_unavailable"),
        "{}",
        body_text(&resp)
    );
    use wabridge_core::templates::TemplateStore;
    wabridge_aws::dynamo::templates::DynamoTemplates::new(s.aws.dynamo.clone(), s.table.clone())
        .put_status(
            "order_update",
            "es_MX",
            &wabridge_core::templates::TemplateStatus::new("APPROVED"),
            None,
            1,
        )
        .await
        .unwrap();
    let resp = handle(&api, api_request("POST", "/sends", no_language, Some(key)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", body_text(&resp));
    let accepted: serde_json::Value = serde_json::from_str(&body_text(&resp)).unwrap();
    assert_eq!(
        (accepted["template"].as_str(), accepted["language"].as_str()),
        (Some("order_update"), Some("es_MX"))
    );
    sends_queue
        .receive(10, Duration::from_secs(300))
        .await
        .unwrap();

    // Links are the attribution function's, not ingest's.
    let link = r#"{"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring", "phone_number": "+52 1 55 1234 5678"}"#;
    let resp = handle(&api, api_request("POST", "/links", link, Some(key)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "{}", body_text(&resp));

    // Attribution links over DynamoDB, through the attribution function's own wiring.
    let links = attribution::build_api(
        &s.aws.config,
        attribution::Settings {
            table: s.table.clone(),
            api_keys: wabridge_tests::admin_keys(key),
            attribution: Default::default(),
            conversions: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            events_queue_url: None,
            conversation_idle_ms: 24 * 3_600_000,
        },
    );
    let resp = handle(&links, api_request("POST", "/links", link, Some("wrong")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{}", body_text(&resp));
    let resp = handle(&links, api_request("POST", "/links", link, Some(key)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", body_text(&resp));
    let created: serde_json::Value = serde_json::from_str(&body_text(&resp)).unwrap();
    assert!(
        created["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://wa.me/5215512345678")),
        "{created}"
    );
}

/// Scoped keys on the Lambda, read as a cold start reads the secret: the `read` key cannot
/// send (403 naming the scope, nothing queued), the `sends` key can, and cannot read.
#[tokio::test]
async fn the_lambda_puts_each_route_behind_its_scope() {
    let aws = require_aws!();
    let s = stack(aws).await;
    let sends = create_queues(&s.aws.sqs, &unique_name("sends"), 5).await;
    let keys = r#"[{"id": "crm-sends", "scopes": ["sends"], "key": "lambda-sends-key-0123456789"},
                   {"id": "bi", "scopes": ["read"], "key": "lambda-read-key-0123456789"}]"#;
    let (table, events_url) = (s.table.clone(), s.queue.queue_url().to_string());
    let settings = Settings::from_lookup(|name| match name {
        "WABRIDGE_TABLE" => Some(table.clone()),
        "EVENTS_QUEUE_URL" => Some(events_url.clone()),
        "SENDS_QUEUE_URL" => Some(sends.url.clone()),
        "WABRIDGE_API_KEYS" => Some(keys.to_string()),
        "WHATSAPP_APP_SECRET" => Some(SAMPLE_APP_SECRET.into()),
        _ => None,
    })
    .unwrap();
    let api = build_api(&s.aws.config, settings);
    let body = r#"{"to": "+52 1 55 1234 5678", "template": "order_update", "language": "es_MX", "category": "UTILITY"}"#;
    let resp = handle(
        &api,
        api_request("POST", "/sends", body, Some("lambda-read-key-0123456789")),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 403, "{}", body_text(&resp));
    assert!(body_text(&resp).contains("`sends`"));
    assert_eq!(queue_depth(&s.aws.sqs, &sends.url).await, (0, 0));
    let resp = handle(
        &api,
        api_request("POST", "/sends", body, Some("lambda-sends-key-0123456789")),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 202, "{}", body_text(&resp));
    let id: serde_json::Value = serde_json::from_str(&body_text(&resp)).unwrap();
    let path = format!("/sends/{}", id["id"].as_str().unwrap());
    // One audit line in the table: the key's id and the send's id, kept by TTL.
    use wabridge_core::audit::AuditLog;
    let lines = wabridge_aws::dynamo::audit::DynamoAudit::new(s.aws.dynamo.clone(), &s.table)
        .since(0, 100)
        .await
        .unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].actor, "key:crm-sends");
    assert_eq!(lines[0].action, "send");
    assert_eq!(lines[0].subject.as_deref(), id["id"].as_str());
    let items = s
        .aws
        .dynamo
        .scan()
        .table_name(&s.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let audit_item = items
        .iter()
        .find(|i| i["pk"].as_s().is_ok_and(|p| p.starts_with("audit#")))
        .expect("the audit item");
    let expires: i64 = audit_item["expires_at"].as_n().unwrap().parse().unwrap();
    let at: i64 = audit_item["at"].as_n().unwrap().parse().unwrap();
    assert_eq!(
        expires,
        (at + 400 * 86_400_000) / 1000,
        "kept 400 days by default"
    );
    for (key, status) in [
        ("lambda-sends-key-0123456789", 403),
        ("lambda-read-key-0123456789", 200),
    ] {
        let resp = handle(&api, api_request("GET", &path, "", Some(key)))
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{key}: {}", body_text(&resp));
    }
}

#[tokio::test]
async fn without_an_api_key_the_lambda_fails_closed_and_without_a_sends_queue_sends_are_not_served()
{
    let aws = require_aws!();
    let s = stack(aws).await;
    let api = s.api(); // no SENDS_QUEUE_URL, no WABRIDGE_API_KEY
    let resp = handle(&api, api_request("POST", "/sends", "{}", Some("any")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "{}", body_text(&resp));
    let link = r#"{"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring", "phone_number": "+52 1 55 1234 5678"}"#;
    let links = attribution::build_api(
        &s.aws.config,
        attribution::Settings {
            table: s.table.clone(),
            api_keys: Default::default(),
            attribution: Default::default(),
            conversions: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            events_queue_url: None,
            conversation_idle_ms: 24 * 3_600_000,
        },
    );
    let resp = handle(&links, api_request("POST", "/links", link, Some("any")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "{}", body_text(&resp));
}
