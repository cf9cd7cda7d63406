//! The sender Lambda serves a number added after its cold start (issue 21), over moto and
//! Prism: the sender's handler is built from the table's registry (one number) and the stack's
//! secret; the operator adds the second number's token to the secret and the number with
//! `wabridge numbers add --table` (the real binary); a send from it, accepted by ingest (which
//! re-reads too), goes out through the new number's path with its token, without a recycle.
//! An instance that may not re-read yet keeps the send queued (a retry, not `unknown_number`),
//! and the first number keeps its limiter across the re-read (its pace carries on).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::secrets::Secrets;
use wabridge_core::http::{Method, Request};
use wabridge_core::sends::store::{SendState, SendStore};
use wabridge_tests::prism::Prism;
use wabridge_tests::{create_queues, create_table, gateway, require_aws, unique_name, Aws};

use crate::numbers_aws_sends::{settings, API_KEY};
use crate::sends_lambda::receive;

const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const TOKEN_MX: &str = "EAAG-mx-token-0001";
const TOKEN_CO: &str = "EAAG-co-token-0002";

/// One number as `numbers add --table --from` reads it; MX sends one message every 20 s.
fn entry(label: &str, id: &str, display: &str, key: &str, rate: &str) -> String {
    format!(
        r#"
[[number]]
label = "{label}"
phone_number_id = "{id}"
waba_id = "102290129340398"
display_number = "{display}"
token_key = "WHATSAPP_ACCESS_TOKEN_{key}"
sends_per_second = {rate}
crm = {{ kind = "webhook", settings = {{ CRM_WEBHOOK_URL = "https://crm.example/{key}" }} }}
"#
    )
}

fn add(endpoint: &str, secret: &str, table: &str, dir: &tempfile::TempDir, text: &str) {
    let path = dir.path().join(format!("{}.toml", unique_name("n")));
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    let args = ["numbers", "add", "--table", table, "--from", &path];
    let out = gateway::against_aws(endpoint, &args, &[("WABRIDGE_SECRETS_ARN", secret)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn post(api: &ingest::ReloadingApi, to: &str, from: &str) -> String {
    let body = json!({"to": to, "template": "pedido_enviado",
                      "language": "es_MX", "category": "UTILITY", "from": from});
    let response = api
        .handle(Request {
            method: Method::Post,
            path: "/sends".into(),
            query: None,
            headers: vec![
                ("authorization".into(), format!("Bearer {API_KEY}")),
                ("content-type".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        })
        .await;
    let v: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    assert_eq!(response.status, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// The sender as its cold start builds it over the registry, re-read at most once per `every`.
async fn sender_app(
    aws: &Aws,
    table: &str,
    secret: &str,
    graph_url: &str,
    queue: &wabridge_tests::TestQueues,
    events_url: &str,
    every: Duration,
) -> sender::App {
    let registry = DynamoNumbers::new(aws.dynamo.clone(), table);
    let numbers = registry.load().await.unwrap().unwrap();
    let read = {
        let (client, name) = (aws.secrets.clone(), secret.to_string());
        move || {
            let (client, name) = (client.clone(), name.clone());
            Box::pin(async move {
                Secrets::from_secrets_manager(&client, &name)
                    .await
                    .map_err(|e| e.to_string())
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<Secrets, String>> + Send>,
                >
        }
    };
    let cold = read().await.unwrap();
    let url = graph_url.to_string();
    let lookup = move |name: &str| (name == "WHATSAPP_API_URL").then(|| url.clone());
    let secret = |key: &str| cold.get(key).map(str::to_string);
    let lines = sender::lines::lines(&numbers, 1, &lookup, secret).unwrap();
    let default = sender::lines::graph_config(&numbers.all()[0], &lookup, secret).unwrap();
    sender::build_with_numbers(
        aws.engine(table),
        sender::Names {
            queue_url: queue.url.clone(),
            dlq_url: queue.dlq_url.clone(),
            events_url: events_url.to_string(),
        },
        wabridge_graph::GraphClient::new(default),
        wabridge_core::sends::ratelimit::RateLimiter::for_instances(80.0, 1),
        wabridge_core::retry::RetryPolicy::SENDS,
        None,
        lines,
        Some(Arc::new(numbers)),
        Some((
            sender::reload::Registry {
                table: registry,
                read_secret: Arc::new(read),
                settings: Arc::new(lookup),
                instances: 1,
                uploader: Arc::new(|_| None),
            },
            every,
        )),
    )
}

#[tokio::test]
async fn the_sender_sends_from_a_number_added_after_its_cold_start() {
    let aws = require_aws!();
    let Some(prism) = Prism::start() else { return };
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let (graph_url, seen) = crate::numbers_sends::front(&prism).await;
    let table = create_table(&aws.dynamo, &unique_name("sender-reload")).await;
    let eager_q = create_queues(&aws.sqs, &unique_name("sender-reload-q"), 5).await;
    let bounded_q = create_queues(&aws.sqs, &unique_name("sender-reload-b"), 5).await;
    let events_q = create_queues(&aws.sqs, &unique_name("sender-reload-ev"), 5).await;
    let secret = unique_name("sender-reload-secret");
    aws.secrets
        .create_secret()
        .name(&secret)
        .secret_string(json!({"WHATSAPP_ACCESS_TOKEN_MX": TOKEN_MX}).to_string())
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mx = entry("ventas-mx", MX, "+52 55 5000 1111", "MX", "0.05");
    add(&endpoint, &secret, &table, &dir, &mx);

    // Both sender instances and both ingest instances start with MX only.
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    let numbers = registry.load().await.unwrap().map(Arc::new);
    let api = |q: &wabridge_tests::TestQueues| {
        let every = Duration::ZERO;
        let settings = settings(&table, &q.url);
        ingest::ReloadingApi::new(
            &aws.config,
            settings,
            registry.clone(),
            numbers.clone(),
            every,
        )
    };
    let (eager_api, bounded_api) = (api(&eager_q), api(&bounded_q));
    let app = |q, every| sender_app(&aws, &table, &secret, &graph_url, q, &events_q.url, every);
    let eager = app(&eager_q, Duration::ZERO).await;
    let bounded = app(&bounded_q, Duration::from_secs(60)).await;

    let first = post(&eager_api, "+52 1 55 1234 0001", "ventas-mx").await;
    let response = sender::handle(&eager, receive(&aws, &eager_q.url, 1).await, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let slot_taken = Instant::now();

    // The operator adds CO's token to the secret, then CO to the table.
    let both = json!({"WHATSAPP_ACCESS_TOKEN_MX": TOKEN_MX, "WHATSAPP_ACCESS_TOKEN_CO": TOKEN_CO});
    aws.secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(both.to_string())
        .send()
        .await
        .unwrap();
    add(
        &endpoint,
        &secret,
        &table,
        &dir,
        &entry("soporte-co", CO, "+57 601 500 2222", "CO", "20"),
    );

    // An instance that read the registry less than a minute ago keeps the send queued.
    let waiting = post(&bounded_api, "+57 300 555 0002", "soporte-co").await;
    let response = sender::handle(&bounded, receive(&aws, &bounded_q.url, 1).await, None).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    let sends = wabridge_aws::dynamo::sends::DynamoSends::new(aws.dynamo.clone(), table.clone());
    let record = sends.get(&waiting).await.unwrap().unwrap();
    assert_eq!(record.state, SendState::Queued, "not failed: {record:?}");

    // The other re-reads on the miss and sends from CO with CO's token.
    let from_co = post(&eager_api, "+57 300 555 0003", "soporte-co").await;
    let response = sender::handle(&eager, receive(&aws, &eager_q.url, 1).await, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    // MX kept its limiter: its next slot is 20 s after the first send's, so this one waits.
    let second = post(&eager_api, "+52 1 55 1234 0004", "ventas-mx").await;
    let batch = receive(&aws, &eager_q.url, 1).await;
    let started = Instant::now();
    let response = sender::handle(&eager, batch, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(3)
            && slot_taken.elapsed() >= Duration::from_secs(19),
        "MX's pace was reset by the re-read: waited {:?}",
        started.elapsed()
    );
    for id in [&first, &from_co, &second] {
        let record = sends.get(id).await.unwrap().unwrap();
        assert_eq!(record.state, SendState::Sent, "{record:?}");
    }
    let v = wabridge_core::config::DEFAULT_WHATSAPP_API_VERSION;
    let got = seen.lock().unwrap().clone();
    let sent = |id: &str, token: &str| {
        (
            format!("/{v}/{id}/messages"),
            format!("Bearer {token}"),
            200,
        )
    };
    assert_eq!(
        got,
        [sent(MX, TOKEN_MX), sent(CO, TOKEN_CO), sent(MX, TOKEN_MX)]
    );
}
