//! Sends from a chosen number on AWS (issue 21), over moto and Prism: with the numbers registry
//! in the table, ingest's `POST /sends` (its Function URL handler as its cold start builds it)
//! requires `from` and refuses an unknown one (422 `from_required` / `unknown_number`); the
//! sender Lambda's handler, with a line per registered number (its path, its token by key from
//! the stack's secret, its own limiter), sends each from its number. Prism checks every request
//! against Meta's spec, behind a loopback front that records the path and token each one used.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_core::ingest::IngestConfig;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::store::{SendState, SendStore};
use wabridge_core::templates::{TemplateStatus, TemplateStore};
use wabridge_graph::GraphClient;
use wabridge_tests::prism::Prism;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

use crate::infra_e2e::lambda_service::{call_ingest, lambda_request};
use crate::sends_lambda::receive;

pub(crate) const API_KEY: &str = "numbers-aws-sends-key-0042";
const MX: &str = "106540352242922";
const CO: &str = "206540352242922";

fn registry() -> String {
    let number = |label: &str, id: &str, display: &str, key: &str| {
        format!(
            r#"
[[number]]
label = "{label}"
phone_number_id = "{id}"
waba_id = "102290129340398"
display_number = "{display}"
token_key = "WHATSAPP_ACCESS_TOKEN_{key}"
sends_per_second = 20
crm = {{ kind = "webhook", settings = {{ CRM_WEBHOOK_URL = "https://crm.example/{key}" }} }}
"#
        )
    };
    number("ventas-mx", MX, "+52 55 5000 1111", "MX")
        + &number("soporte-co", CO, "+57 601 500 2222", "CO")
}

/// The stack's secret, by key.
fn secret(key: &str) -> Option<String> {
    match key {
        "WHATSAPP_ACCESS_TOKEN_MX" => Some("EAAG-mx-token-0001".into()),
        "WHATSAPP_ACCESS_TOKEN_CO" => Some("EAAG-co-token-0002".into()),
        _ => None,
    }
}

/// Ingest's settings over `table`, sends on `sends_url`, one API key ([`API_KEY`]).
pub(crate) fn settings(table: &str, sends_url: &str) -> ingest::Settings {
    let keys = json!([{"id": "crm", "scopes": ["sends"], "key": API_KEY}]).to_string();
    let lookup = |name: &str| match name {
        "WABRIDGE_API_KEYS" => Some(keys.clone()),
        _ => None,
    };
    ingest::Settings {
        table: table.to_string(),
        events_queue_url: "http://unused.invalid/events".into(),
        ingest: IngestConfig::from_lookup(lookup).unwrap(),
        sends_queue_url: Some(sends_url.to_string()),
        api_keys: Arc::new(wabridge_core::auth::ApiKeys::from_lookup(lookup).unwrap()),
        claim_check_bucket: None,
        audit_retention: wabridge_tests::AUDIT_RETENTION,
        content_retention: wabridge_tests::CONTENT_RETENTION,
        template_languages: Default::default(),
        media_bucket: None,
        media_links: None,
        catalogues: Default::default(),
        conversation_idle_ms: 24 * 3_600_000,
        consent_scope: Default::default(),
    }
}

fn ingest_api(
    aws: &wabridge_tests::Aws,
    table: &str,
    sends_url: &str,
    numbers: wabridge_core::numbers::Numbers,
) -> wabridge_core::api::Api {
    let settings = settings(table, sends_url);
    ingest::build_api_with_numbers(&aws.config, settings, Some(Arc::new(numbers)))
}

/// A template send to `to` from `from`.
async fn post_send(api: &wabridge_core::api::Api, to: &str, from: Option<&str>) -> (u16, Value) {
    let mut body = json!({"to": to, "template": "pedido_enviado",
                          "language": "es_MX", "category": "UTILITY"});
    if let Some(f) = from {
        body["from"] = json!(f);
    }
    let req = lambda_request(
        "POST",
        "/sends",
        &[
            ("authorization", &format!("Bearer {API_KEY}")),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    let (status, text) = call_ingest(api, req).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ingest_resolves_from_and_the_sender_sends_each_from_its_number() {
    let aws = require_aws!();
    let Some(prism) = Prism::start() else { return };
    let (graph_url, seen) = crate::numbers_sends::front(&prism).await;
    let table = create_table(&aws.dynamo, &unique_name("numbers-sends")).await;
    let sends_q = create_queues(&aws.sqs, &unique_name("numbers-sends-q"), 5).await;
    let events_q = create_queues(&aws.sqs, &unique_name("numbers-sends-ev"), 5).await;

    // The registry as `numbers add --table` writes it; both functions read it from the table.
    let split =
        wabridge_core::numbers::items::split("numbers.toml", registry().as_bytes()).unwrap();
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    registry.put(None, &split.entries).await.unwrap();
    let numbers = registry.load().await.unwrap().unwrap();
    let engine = aws.engine(&table);
    let store = wabridge_aws::dynamo::templates::DynamoTemplates::new(aws.dynamo.clone(), &table);
    store
        .put_status(
            "pedido_enviado",
            "es_MX",
            &TemplateStatus::new("APPROVED"),
            None,
            1,
        )
        .await
        .unwrap();

    let api = ingest_api(&aws, &table, &sends_q.url, numbers.clone());
    let (status, v) = post_send(&api, "+52 1 55 1234 5678", None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("from_required")),
        "{v}"
    );
    let (status, v) = post_send(&api, "+52 1 55 1234 5678", Some("ventas-ar")).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_number")),
        "{v}"
    );
    let (status, v) = post_send(&api, "+52 1 55 1234 5678", Some("ventas-mx")).await;
    assert_eq!(status, 202, "{v}");
    let by_label = v["id"].as_str().unwrap().to_string();
    // The same customer from the other number, at once: the pair limit is the (number,
    // customer) pair's, so neither send waits for the other (both leave in one batch below).
    let (status, v) = post_send(&api, "+52 1 55 1234 5678", Some(CO)).await;
    assert_eq!(status, 202, "{v}");
    let by_id = v["id"].as_str().unwrap().to_string();

    // The sender as its cold start wires it with the registry: a line per number.
    let lookup = |name: &str| (name == "WHATSAPP_API_URL").then(|| graph_url.clone());
    let lines = sender::lines::lines(&numbers, 1, lookup, secret).unwrap();
    let default = GraphConfig {
        base_url: graph_url.clone(),
        version: "v23.0".into(),
        phone_number_id: "999999999999999".into(),
        access_token: "EAAG-default-token".into(),
        timeout: Duration::from_secs(10),
    };
    let app = sender::build_with_lines(
        engine.clone(),
        sender::Names {
            queue_url: sends_q.url.clone(),
            dlq_url: sends_q.dlq_url.clone(),
            events_url: events_q.url.clone(),
        },
        GraphClient::new(default),
        wabridge_core::sends::ratelimit::RateLimiter::for_instances(80.0, 1),
        wabridge_core::retry::RetryPolicy::SENDS,
        None,
        lines,
    );
    let response = sender::handle(&app, receive(&aws, &sends_q.url, 2).await, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let sends = wabridge_aws::dynamo::sends::DynamoSends::new(aws.dynamo.clone(), table.clone());
    for id in [&by_label, &by_id] {
        let record = sends.get(id).await.unwrap().unwrap();
        assert_eq!(record.state, SendState::Sent, "{record:?}");
    }
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    let v = wabridge_core::config::DEFAULT_WHATSAPP_API_VERSION;
    assert_eq!(
        got,
        [
            (
                format!("/{v}/{MX}/messages"),
                "Bearer EAAG-mx-token-0001".to_string(),
                200
            ),
            (
                format!("/{v}/{CO}/messages"),
                "Bearer EAAG-co-token-0002".to_string(),
                200
            ),
        ]
    );

    // A number whose token the secret lacks stops the sender's cold start, naming it.
    let err = sender::lines::lines(&numbers, 1, lookup, |_: &str| None)
        .err()
        .unwrap();
    assert!(
        err.contains("number `soporte-co` (token_key WHATSAPP_ACCESS_TOKEN_CO)"),
        "{err}"
    );
    assert!(!err.contains("EAAG"), "{err}");
}
