//! Template registries per WABA and the re-read registry on AWS (issue 21), over moto: with two
//! numbers of two WABAs in the table, ingest's `POST /sends` refuses from `soporte-co` a
//! template its WABA's registry (synced) lacks, 422 `template_not_found`, and accepts it from
//! `ventas-mx`, whose WABA has it; the sender sends it from MX after its own check of MX's WABA.
//! A number added with `numbers add --table` after ingest's instance was built is served after
//! the instance re-reads the registry (on the miss, at most once per interval).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::dynamo::templates::DynamoTemplates;
use wabridge_core::http::{Method, Request};
use wabridge_core::sends::store::{SendState, SendStore};
use wabridge_core::templates::{TemplateStatus, TemplateStore};
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

use crate::numbers_aws_sends::{settings, API_KEY};
use crate::sends_lambda::receive;

const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const WABA_MX: &str = "102290129340398";
const WABA_CO: &str = "202290129340398";

fn entry(label: &str, id: &str, waba: &str, key: &str) -> String {
    format!(
        "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"{waba}\"\n\
         display_number = \"+52 55 5000 {}\"\ntoken_key = \"WHATSAPP_ACCESS_TOKEN_{key}\"\n\
         crm = {{ kind = \"webhook\", settings = {{ CRM_WEBHOOK_URL = \"https://crm.example/{key}\" }} }}\n",
        &id[..4]
    )
}

async fn put_registry(registry: &DynamoNumbers, text: &str) {
    let split = wabridge_core::numbers::items::split("numbers.toml", text.as_bytes()).unwrap();
    registry.put(None, &split.entries).await.unwrap();
}

fn send(from: &str) -> Request {
    let body = json!({"to": "+52 1 55 1234 5678", "template": "pedido_enviado",
                      "language": "es_MX", "category": "UTILITY", "from": from});
    Request {
        method: Method::Post,
        path: "/sends".into(),
        query: None,
        headers: vec![
            ("authorization".into(), format!("Bearer {API_KEY}")),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_string().into_bytes(),
    }
}

async fn post(api: &ingest::ReloadingApi, from: &str) -> (u16, Value) {
    let r = api.handle(send(from)).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_template_number_bs_waba_lacks_is_refused_from_b_and_sent_from_a() {
    let aws = require_aws!();
    let Some(prism) = wabridge_tests::prism::Prism::start() else {
        return;
    };
    let (graph_url, seen) = crate::numbers_sends::front(&prism).await;
    let table = create_table(&aws.dynamo, &unique_name("numbers-tpl")).await;
    let sends_q = create_queues(&aws.sqs, &unique_name("numbers-tpl-q"), 5).await;
    let events_q = create_queues(&aws.sqs, &unique_name("numbers-tpl-ev"), 5).await;
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    put_registry(
        &registry,
        &(entry("ventas-mx", MX, WABA_MX, "MX") + &entry("soporte-co", CO, WABA_CO, "CO")),
    )
    .await;
    let numbers = registry.load().await.unwrap().unwrap();
    // MX's WABA has the template; CO's was synced and has none.
    let mx = DynamoTemplates::for_waba(aws.dynamo.clone(), &table, WABA_MX);
    let approved = TemplateStatus::new("APPROVED");
    mx.put_status("pedido_enviado", "es_MX", &approved, None, 1)
        .await
        .unwrap();
    let co = DynamoTemplates::for_waba(aws.dynamo.clone(), &table, WABA_CO);
    co.mark_synced(1).await.unwrap();
    // The implicit registry (items written before registries were per WABA) is no WABA's.
    let implicit = DynamoTemplates::new(aws.dynamo.clone(), &table);
    assert_eq!(implicit.get("pedido_enviado", "es_MX").await.unwrap(), None);
    assert_eq!(implicit.synced_at().await.unwrap(), None);

    let api = ingest::ReloadingApi::new(
        &aws.config,
        settings(&table, &sends_q.url),
        registry.clone(),
        Some(Arc::new(numbers.clone())),
        Duration::from_secs(60),
    );
    let (status, v) = post(&api, "soporte-co").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("template_not_found")),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("pedido_enviado") && message.contains("soporte-co"),
        "{message}"
    );
    let (status, v) = post(&api, "ventas-mx").await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();

    // The sender with the registry: its guards read MX's WABA too, and it sends from MX.
    let lookup = |name: &str| (name == "WHATSAPP_API_URL").then(|| graph_url.clone());
    let secret = |key: &str| Some(format!("EAAG-{key}-0001"));
    let lines = sender::lines::lines(&numbers, 1, lookup, secret).unwrap();
    let default = sender::lines::graph_config(&numbers.all()[0], lookup, secret).unwrap();
    let app = sender::build_with_numbers(
        aws.engine(&table),
        sender::Names {
            queue_url: sends_q.url.clone(),
            dlq_url: sends_q.dlq_url.clone(),
            events_url: events_q.url.clone(),
        },
        wabridge_graph::GraphClient::new(default),
        wabridge_core::sends::ratelimit::RateLimiter::for_instances(80.0, 1),
        wabridge_core::retry::RetryPolicy::SENDS,
        None,
        lines,
        Some(Arc::new(numbers)),
        None,
    );
    assert!(app.templates.is_per_waba());
    let response = sender::handle(&app, receive(&aws, &sends_q.url, 1).await, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let sends = wabridge_aws::dynamo::sends::DynamoSends::new(aws.dynamo.clone(), table.clone());
    let record = sends.get(&id).await.unwrap().unwrap();
    assert_eq!(record.state, SendState::Sent, "{record:?}");
    let paths: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(paths.len(), 1);
    assert!(paths[0].ends_with(&format!("/{MX}/messages")), "{paths:?}");
}

#[tokio::test]
async fn ingest_serves_a_number_added_after_it_started_once_it_rereads() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("numbers-reload")).await;
    let sends_q = create_queues(&aws.sqs, &unique_name("numbers-reload-q"), 5).await;
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    put_registry(&registry, &entry("ventas-mx", MX, WABA_MX, "MX")).await;
    let numbers = registry.load().await.unwrap().map(Arc::new);
    let build = |every| {
        ingest::ReloadingApi::new(
            &aws.config,
            settings(&table, &sends_q.url),
            registry.clone(),
            numbers.clone(),
            every,
        )
    };
    // Two instances built before CO was added: one may re-read now, one only in a minute.
    let (eager, bounded) = (build(Duration::ZERO), build(Duration::from_secs(60)));
    let (status, v) = post(&eager, "soporte-co").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_number")),
        "{v}"
    );
    put_registry(
        &registry,
        &(entry("ventas-mx", MX, WABA_MX, "MX") + &entry("soporte-co", CO, WABA_CO, "CO")),
    )
    .await;
    let (status, v) = post(&eager, "soporte-co").await;
    assert_eq!(status, 202, "after the re-read: {v}");
    let sends = wabridge_aws::dynamo::sends::DynamoSends::new(aws.dynamo.clone(), table.clone());
    let record = sends.get(v["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.request["from"], CO, "{record:?}");
    let (status, v) = post(&bounded, "soporte-co").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_number")),
        "no re-read within the interval: {v}"
    );
}
