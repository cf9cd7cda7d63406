//! Support shared by the end-to-end tests: moto's server, AWS SDK clients pointed at it, and
//! helpers that create uniquely named tables and queues so tests can run in parallel.
//!
//! Services policy: under the full test command (`scripts/test.sh`) `AWS_ENDPOINT_URL` points
//! at moto and `WABRIDGE_REQUIRE_SERVICES=1`; a test that needs moto and cannot reach it FAILS
//! there. In a plain `cargo test` the support starts moto itself from `./.venv` when it exists,
//! and otherwise the test prints "skipped: run scripts/test.sh" and returns.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use wabridge_aws::dynamo::{EXPIRES_AT, PK, SK};
use wabridge_aws::sdk::SdkConfig;

/// Env var the test command sets so tests needing a service fail instead of skipping.
pub const REQUIRE_SERVICES: &str = "WABRIDGE_REQUIRE_SERVICES";

/// Whether missing services are failures (the full test command) rather than skips.
/// A webhook model type (a `statuses[]` item, a template update...) from its JSON, as the
/// webhook model reads what Meta sends.
pub fn model<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).expect("the webhook model reads this JSON")
}

pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The workspace root (where `.venv` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A moto server this process started; it stops when the process exits (its stdin closes).
struct OwnMoto {
    _child: Child,
    _stdin: ChildStdin,
    endpoint: String,
}

static OWN_MOTO: OnceLock<Option<Mutex<OwnMoto>>> = OnceLock::new();

/// Python run inside the venv: moto's threaded server on a kernel-chosen loopback port; prints
/// the port, then serves until stdin closes (when the test process exits, however it exits).
const MOTO_LAUNCHER: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

fn start_own_moto() -> Option<Mutex<OwnMoto>> {
    let python = workspace_root().join(".venv/bin/python");
    if !workspace_root().join(".venv/bin/moto_server").exists() {
        return None;
    }
    let mut child = Command::new(&python)
        .args(["-c", MOTO_LAUNCHER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let port: u16 = line.trim().parse().ok()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    eprintln!("started moto_server at {endpoint} for this test binary");
    Some(Mutex::new(OwnMoto {
        _child: child,
        _stdin: stdin,
        endpoint,
    }))
}

/// The moto endpoint to test against, or `None` when tests needing it should be skipped.
///
/// `AWS_ENDPOINT_URL` wins. Without it: panics under `WABRIDGE_REQUIRE_SERVICES=1` (never a
/// silent skip under the full command); else starts moto from `./.venv` if installed; else None.
pub fn moto_endpoint() -> Option<String> {
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        if !url.is_empty() {
            return Some(url);
        }
    }
    if services_required() {
        panic!(
            "{REQUIRE_SERVICES}=1 but AWS_ENDPOINT_URL is not set: this test needs moto's server; \
             run it through scripts/test.sh (or scripts/moto.sh -- cargo test ...)"
        );
    }
    OWN_MOTO
        .get_or_init(start_own_moto)
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).endpoint.clone())
}

/// Returns the moto endpoint, or prints a skip notice and returns from the test.
#[macro_export]
macro_rules! require_moto {
    () => {
        match $crate::moto_endpoint() {
            Some(endpoint) => endpoint,
            None => {
                eprintln!("skipped: needs moto's server; run scripts/test.sh");
                return;
            }
        }
    };
}

/// Region used against moto.
pub const REGION: &str = "us-east-1";

/// SDK configuration for moto at `endpoint`, with dummy static credentials.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    wabridge_aws::sdk::sdk_config_for_endpoint(endpoint, REGION)
}

/// SDK clients against moto.
#[derive(Clone)]
pub struct Aws {
    pub config: SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Path-style, as `wabridge_aws::s3::S3Blobs` addresses an emulator.
    pub s3: aws_sdk_s3::Client,
}

impl Aws {
    /// The AWS engine the Lambdas build, over moto and `table`.
    pub fn engine(&self, table: &str) -> wabridge_aws::engine::AwsEngine {
        wabridge_aws::engine::AwsEngine::new(&self.config, table)
    }
}

impl Aws {
    pub async fn connect(endpoint: &str) -> Aws {
        let config = sdk_config(endpoint).await;
        Aws {
            dynamo: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(true)
                    .build(),
            ),
            config,
        }
    }
}

/// Returns [`Aws`] clients for moto, or skips the test (see [`moto_endpoint`]).
#[macro_export]
macro_rules! require_aws {
    () => {
        $crate::Aws::connect(&$crate::require_moto!()).await
    };
}

/// Keeps what a tracing subscriber writes (`telemetry::lambda_subscriber(buffer.clone(), …)`),
/// for tests that read log lines.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'w self) -> LogBuffer {
        self.clone()
    }
}

/// An SQS message as Lambda's event source hands it to a function (id, receipt, body and the
/// system attributes received with it).
pub fn lambda_record(m: aws_sdk_sqs::types::Message) -> aws_lambda_events::event::sqs::SqsMessage {
    let mut r = aws_lambda_events::event::sqs::SqsMessage::default();
    r.message_id = m.message_id;
    r.receipt_handle = m.receipt_handle;
    r.body = m.body;
    for (k, v) in m.attributes.unwrap_or_default() {
        r.attributes.insert(k.as_str().to_string(), v);
    }
    r
}

/// One receive of up to 10 messages of `url` (long-polling 1 s), hidden 60 s, as the Lambda
/// records an event source mapping would hand over.
pub async fn receive_lambda_records(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<aws_lambda_events::event::sqs::SqsMessage> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .visibility_timeout(60)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage");
    out.messages
        .unwrap_or_default()
        .into_iter()
        .map(lambda_record)
        .collect()
}

/// The audit retention the functions' settings default to (`WABRIDGE_AUDIT_RETENTION_DAYS`).
pub const AUDIT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(wabridge_core::audit::DEFAULT_AUDIT_RETENTION_DAYS * 86_400);

/// The default content retention, for tests that build a function's settings by hand.
pub const CONTENT_RETENTION: std::time::Duration = std::time::Duration::from_secs(
    wabridge_core::retention::DEFAULT_CONTENT_RETENTION_DAYS * 86_400,
);

/// One `admin` API key (as `WABRIDGE_API_KEY` sets it).
pub fn admin_keys(key: &str) -> std::sync::Arc<wabridge_core::auth::ApiKeys> {
    std::sync::Arc::new(wabridge_core::auth::ApiKeys::admin(Some(key)))
}

/// A name no other test (in this or another process) uses: `prefix-<pid>-<n>-<random>`.
/// Valid as a DynamoDB table, SQS queue and secret name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{n}-{}", std::process::id(), &random[..8])
}

/// Creates a bucket (as the template's `ClaimCheckBucket`, less what moto ignores). Returns its
/// name.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) -> String {
    s3.create_bucket().bucket(name).send().await.unwrap();
    name.to_string()
}

/// The keys of the objects of `bucket` under `prefix`.
pub async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Creates the single table (pk S hash, sk S range, on-demand) with TTL on `expires_at` and the
/// attribution report's index, as the template does. Returns its name.
pub async fn create_table(dynamo: &aws_sdk_dynamodb::Client, name: &str) -> String {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key schema")
    };
    use wabridge_aws::dynamo::attribution::{
        REPORT_AT, REPORT_ATTRIBUTES, REPORT_INDEX, REPORT_PERIOD,
    };
    let report_index = GlobalSecondaryIndex::builder()
        .index_name(REPORT_INDEX)
        .key_schema(key(REPORT_PERIOD, KeyType::Hash))
        .key_schema(key(REPORT_AT, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(REPORT_ATTRIBUTES.map(String::from).to_vec()))
                .build(),
        )
        .build()
        .expect("report index");
    dynamo
        .create_table()
        .table_name(name)
        .attribute_definitions(attr(PK))
        .attribute_definitions(attr(SK))
        .attribute_definitions(attr(REPORT_PERIOD))
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(REPORT_AT)
                .attribute_type(ScalarAttributeType::N)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .global_secondary_indexes(report_index)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table {name}: {e:?}"));
    dynamo
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .expect("ttl spec"),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("enable TTL on {name}: {e:?}"));
    name.to_string()
}

/// A queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct TestQueues {
    pub url: String,
    pub dlq_url: String,
    pub dlq_arn: String,
    pub max_receive_count: u32,
}

/// Creates `<name>-dlq` and `<name>` with a redrive policy moving a message to the DLQ after
/// `max_receive_count` receives, as the template does.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> TestQueues {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create DLQ {name}: {e:?}"))
        .queue_url
        .expect("queue url");
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("DLQ attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("DLQ arn");
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    })
    .to_string();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"))
        .queue_url
        .expect("queue url");
    TestQueues {
        url,
        dlq_url,
        dlq_arn,
        max_receive_count,
    }
}

/// Approximate number of visible + in-flight messages (moto answers exactly).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u32, u32) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let get = |n: &QueueAttributeName| attrs.get(n).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// A few retries of an async check that depends on a server's eventual state, e.g. a message
/// becoming visible after its visibility timeout: a bounded poll, never a bare sleep assertion.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
/// The sender Lambda's app (what its cold start wires) over moto's DynamoDB table and SQS
/// queues, sending through `graph` at 80 messages/s.
pub fn sender_app(
    aws: &Aws,
    table: &str,
    sends: &TestQueues,
    events: &TestQueues,
    graph: wabridge_graph::GraphClient,
) -> sender::App {
    sender::build(
        aws.engine(table),
        sender::Names {
            queue_url: sends.url.clone(),
            dlq_url: sends.dlq_url.clone(),
            events_url: events.url.clone(),
        },
        graph,
        wabridge_core::sends::ratelimit::RateLimiter::for_instances(80.0, 1),
        wabridge_core::retry::RetryPolicy::SENDS,
    )
}

pub mod conversation_day;
pub mod conversation_sla;
pub mod faults;
pub mod gateway;
pub mod multipart;
pub mod oauth;
pub mod prism;
pub mod stores;
