//! End to end against the stack moto's CloudFormation created from infra/template.yaml (deployed
//! by infra/check.sh, or by this test when the outputs file is missing or from another moto).
//! The handlers run in-process with the real AWS SDK against the stack's own table, queues and
//! secret, names taken from the stack's outputs: this test plays the Lambda service's part
//! (the event source mappings exist in the stack but are disabled, see infra/moto_deploy.py).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::config;
use wabridge_core::consumer::{settle, Outcome};
use wabridge_core::queue::{OutgoingMessage, Queue};
use wabridge_tests::{require_aws, workspace_root, Aws};

/// The stack's outputs file, as infra/moto_deploy.py writes it.
#[derive(Debug, Clone)]
struct Stack {
    name: String,
    outputs: HashMap<String, String>,
    raw: Value,
}

impl Stack {
    fn output(&self, key: &str) -> &str {
        self.outputs
            .get(key)
            .unwrap_or_else(|| panic!("stack {} has no output {key}", self.name))
    }
}

fn outputs_path() -> PathBuf {
    std::env::var_os("WABRIDGE_STACK_OUTPUTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("infra/.build/stack-outputs.json"))
}

fn read_stack(path: &PathBuf, endpoint: &str) -> Option<Stack> {
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    if raw["EndpointUrl"].as_str()? != endpoint {
        return None; // deployed to another moto (an earlier run)
    }
    let outputs = raw["Outputs"]
        .as_object()?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Some(Stack {
        name: raw["StackName"].as_str()?.to_string(),
        outputs,
        raw,
    })
}

/// Translates and deploys the template to `endpoint` with the venv's tools; panics with their
/// output when that fails (a broken template or deploy script must fail the test).
fn deploy(endpoint: &str) -> Stack {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    let build = root.join("target/infra-e2e");
    std::fs::create_dir_all(&build).expect("target/infra-e2e");
    let cfn = build.join(format!("template-{}.cfn.json", std::process::id()));
    let out = build.join(format!("stack-outputs-{}.json", std::process::id()));
    let run = |args: &[&std::ffi::OsStr]| {
        let started = Instant::now();
        let result = Command::new(&python)
            .args(args)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", wabridge_tests::REGION)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (pip install -r infra/requirements.txt into .venv)",
                    python.display()
                )
            });
        assert!(
            result.status.success(),
            "{args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        eprintln!(
            "{} ({} ms)",
            String::from_utf8_lossy(&result.stdout).trim(),
            started.elapsed().as_millis()
        );
    };
    run(&[
        root.join("infra/translate.py").as_os_str(),
        root.join("infra/template.yaml").as_os_str(),
        cfn.as_os_str(),
    ]);
    run(&[
        root.join("infra/moto_deploy.py").as_os_str(),
        cfn.as_os_str(),
        out.as_os_str(),
    ]);
    read_stack(&out, endpoint).expect("moto_deploy wrote no usable outputs")
}

/// The stack for this moto: the one infra/check.sh deployed, else one deployed now (once per
/// test binary).
fn stack(endpoint: &str) -> Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK
        .get_or_init(|| {
            read_stack(&outputs_path(), endpoint).unwrap_or_else(|| {
                eprintln!(
                    "{} is missing or from another moto: deploying the template now",
                    outputs_path().display()
                );
                deploy(endpoint)
            })
        })
        .clone()
}

async fn queue_attributes(aws: &Aws, url: &str) -> HashMap<String, String> {
    aws.sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect()
}

/// maxReceiveCount of a queue's redrive policy, as deployed.
async fn max_receive_count(aws: &Aws, url: &str) -> u32 {
    let attrs = queue_attributes(aws, url).await;
    let policy: Value = serde_json::from_str(
        attrs
            .get("RedrivePolicy")
            .expect("queue has a RedrivePolicy"),
    )
    .expect("RedrivePolicy is JSON");
    let n = &policy["maxReceiveCount"];
    n.as_u64()
        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
        .expect("maxReceiveCount") as u32
}

#[tokio::test]
async fn the_stack_moto_created_matches_the_template() {
    let aws = require_aws!();
    let endpoint = aws.config.endpoint_url().unwrap_or_default().to_string();
    let started = Instant::now();
    let stack = stack(&endpoint);

    // Table: the pk/sk keys every adapter uses.
    let table = aws
        .dynamo
        .describe_table()
        .table_name(stack.output("TableName"))
        .send()
        .await
        .expect("the stack's table exists")
        .table
        .expect("table description");
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
    );
    // moto's CloudFormation ignores the table's BillingMode, TimeToLiveSpecification,
    // PointInTimeRecoverySpecification and SSESpecification (CloudFormation spells SSEEnabled
    // where the API says Enabled): tests/tests/infra_template.rs checks those in the template.

    // Queues: each main queue redrives to its own DLQ; encrypted with the stack's key.
    for (queue, dlq, visibility) in [
        ("EventsQueueUrl", "EventsDlqUrl", 185),
        ("SendsQueueUrl", "SendsDlqUrl", 180),
    ] {
        let attrs = queue_attributes(&aws, stack.output(queue)).await;
        let dlq_attrs = queue_attributes(&aws, stack.output(dlq)).await;
        let policy: Value = serde_json::from_str(&attrs["RedrivePolicy"]).unwrap();
        assert_eq!(
            policy["deadLetterTargetArn"].as_str(),
            Some(dlq_attrs["QueueArn"].as_str()),
            "{queue} redrives to {dlq}"
        );
        assert_eq!(
            attrs["VisibilityTimeout"],
            visibility.to_string(),
            "{queue}"
        );
        assert!(attrs.contains_key("KmsMasterKeyId"), "{queue} encrypted");
        assert!(dlq_attrs.contains_key("KmsMasterKeyId"), "{dlq} encrypted");
        let keep: u64 = attrs["MessageRetentionPeriod"].parse().unwrap();
        let dlq_keep: u64 = dlq_attrs["MessageRetentionPeriod"].parse().unwrap();
        assert!(dlq_keep > keep, "{dlq} keeps messages longer than {queue}");
    }

    // The secret: exactly the secret names, the verify token generated, nothing else filled in.
    let secret = aws
        .secrets
        .get_secret_value()
        .secret_id(stack.output("SecretArn"))
        .send()
        .await
        .expect("the stack's secret exists");
    let value: serde_json::Map<String, Value> =
        serde_json::from_str(secret.secret_string().expect("a JSON secret string")).unwrap();
    let names: BTreeSet<&str> = value.keys().map(String::as_str).collect();
    assert_eq!(names, config::SECRET_NAMES.iter().copied().collect());
    let token = value[config::WHATSAPP_VERIFY_TOKEN].as_str().unwrap();
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()));

    // Event sources: created by the stack with partial batch failures.
    let mappings = stack.raw["EventSourceMappings"]
        .as_array()
        .expect("mappings");
    assert_eq!(mappings.len(), 2, "{mappings:?}");
    for m in mappings {
        assert_eq!(
            m["FunctionResponseTypes"],
            serde_json::json!(["ReportBatchItemFailures"])
        );
        assert!(m["ScalingConfig"]["MaximumConcurrency"].as_u64().unwrap() >= 2);
    }
    // Outputs a devops engineer pastes into Meta's dashboard.
    assert!(stack.output("WebhookUrl").ends_with("/webhook"));
    assert!(stack
        .output("VerifyTokenCommand")
        .contains(stack.output("SecretArn")));
    eprintln!(
        "stack {} checked in {} ms",
        stack.name,
        started.elapsed().as_millis()
    );
}

/// A message whose handling fails every time (here: the handler always asks for a retry, as
/// crm-sync does while the CRM answers 5xx) is moved to the dead-letter queue by SQS itself
/// once it was received maxReceiveCount times: the redrive policy the stack deployed.
#[tokio::test]
async fn a_poison_message_lands_in_the_dead_letter_queue_after_the_configured_receives() {
    let aws = require_aws!();
    let endpoint = aws.config.endpoint_url().unwrap_or_default().to_string();
    let stack = stack(&endpoint);
    let started = Instant::now();
    // The sends queue: the events queue belongs to the flow test running beside this one.
    let queue = SqsQueue::new(
        aws.sqs.clone(),
        stack.output("SendsQueueUrl"),
        stack.output("SendsDlqUrl"),
    );
    let max = max_receive_count(&aws, stack.output("SendsQueueUrl")).await;
    assert_eq!(max, 5, "the template's maxReceiveCount");
    let body = format!("{{\"poison\":\"{}\"}}", uuid::Uuid::new_v4());
    queue
        .send_batch(&[OutgoingMessage {
            id: "poison".into(),
            body: body.clone(),
            delay: None,
        }])
        .await
        .expect("enqueue");

    let mut receives = 0;
    for _ in 0..(max * 4) {
        let batch = queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        let Some(delivery) = batch.into_iter().find(|d| d.body == body) else {
            break;
        };
        receives += 1;
        assert_eq!(delivery.receive_count, receives);
        // Reported as a batch item failure: back on the queue at once.
        let outcome = Outcome::RetryAfter(Duration::ZERO);
        assert!(settle(&queue, &delivery, &outcome, false)
            .await
            .expect("settle"));
    }
    assert_eq!(receives, max, "received exactly maxReceiveCount times");
    let dead = queue.dead_letters(10).await.expect("list dead letters");
    assert!(
        dead.iter().any(|d| d.body == body),
        "the poison message is in the DLQ: {dead:?}"
    );
    eprintln!(
        "poison message dead-lettered after {receives} receives in {} ms",
        started.elapsed().as_millis()
    );
}

// ------------------------------------------------------------------ the flow through the stack

/// One request the CRM receiver got.
#[derive(Debug, Clone)]
struct CrmCall {
    headers: HashMap<String, String>,
    body: String,
}

/// A local HTTP server standing in for the business's CRM endpoint (`CRM_WEBHOOK_URL`): records
/// every POST and answers the status currently set.
struct CrmReceiver {
    url: String,
    calls: std::sync::Arc<std::sync::Mutex<Vec<CrmCall>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl CrmReceiver {
    async fn start() -> CrmReceiver {
        use std::sync::atomic::{AtomicU16, Ordering};
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/crm", listener.local_addr().unwrap());
        let calls: Arc<Mutex<Vec<CrmCall>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (c, s) = (calls.clone(), status.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (c, s) = (c.clone(), s.clone());
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = HashMap::new();
                        loop {
                            let mut h = String::new();
                            reader.read_line(&mut h).await.unwrap_or(0);
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; len.min(1 << 20)];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        c.lock().unwrap().push(CrmCall {
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let code = s.load(Ordering::SeqCst);
                        let answer = format!(
                            "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
                        );
                        if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CrmReceiver { url, calls, status }
    }

    fn calls(&self) -> Vec<CrmCall> {
        self.calls.lock().unwrap().clone()
    }

    fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A lambda_http request as a Function URL delivers it.
fn lambda_request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(if body.is_empty() {
            lambda_http::Body::Empty
        } else {
            lambda_http::Body::Binary(body.to_vec())
        })
        .unwrap()
}

async fn call_ingest(api: &wabridge_core::api::Api, req: lambda_http::Request) -> (u16, String) {
    let resp = ingest::handle(api, req).await.unwrap();
    let status = resp.status().as_u16();
    let body = match resp.into_body() {
        lambda_http::Body::Text(t) => t,
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    (status, body)
}

/// The whole flow against the stack, with the handlers wired from each function's environment
/// as the stack deployed it and the secret as an operator fills it in:
/// a signed webhook in (ingest's Lambda handler: Api over StagedInbox(DynamoDedupe, SqsQueue)),
/// one event on the events queue (a retried POST adds none), crm-sync's Lambda handler (SQS
/// batch in, partial batch failures out) lands the contact and activity at the `webhook` CRM
/// (Standard Webhooks signatures), a redelivery changes nothing, and an event the CRM keeps
/// refusing with 503 is dead-lettered by SQS after maxReceiveCount receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_flows_through_the_stack_to_the_crm() {
    use std::sync::Arc;
    use wabridge_aws::dynamo::identity::DynamoIdentityStore;
    use wabridge_aws::dynamo::ledger::DynamoLedger;
    use wabridge_aws::secrets::Secrets;
    use wabridge_core::mapping::Mapping;
    use wabridge_core::signature::{self, AppSecret};
    use wabridge_core::sync::CrmSync;
    use wabridge_crm::webhook::{secret_key, sign};

    let aws = require_aws!();
    let endpoint = aws.config.endpoint_url().unwrap_or_default().to_string();
    let stack = stack(&endpoint);
    let started = Instant::now();
    let env_of = |function: &str| -> HashMap<String, String> {
        stack.raw["FunctionEnvironments"][function]
            .as_object()
            .unwrap_or_else(|| panic!("no deployed environment for {function}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };

    // The operator fills in the secret (put-secret-value, keeping the generated verify token);
    // a cold start reads it once.
    let arn = stack.output("SecretArn").to_string();
    let current = aws
        .secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    let mut value: serde_json::Map<String, Value> =
        serde_json::from_str(current.secret_string().unwrap()).unwrap();
    let app_secret = format!("app-{}", uuid::Uuid::new_v4().simple());
    let crm_secret = format!("crm-{}", uuid::Uuid::new_v4().simple());
    value.insert(
        config::WHATSAPP_APP_SECRET.into(),
        app_secret.clone().into(),
    );
    value.insert(config::CRM_WEBHOOK_SECRET.into(), crm_secret.clone().into());
    aws.secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(Value::Object(value).to_string())
        .send()
        .await
        .unwrap();

    // ingest, wired like its cold start from its deployed environment + the secret.
    let ingest_env = env_of("Ingest");
    assert_eq!(ingest_env[config::WABRIDGE_SECRETS_ARN], arn);
    let secrets =
        Secrets::from_secrets_manager(&aws.secrets, &ingest_env[config::WABRIDGE_SECRETS_ARN])
            .await
            .expect("the secret loads");
    let lookup = |name: &str| -> Option<String> {
        if config::SECRET_NAMES.contains(&name) {
            secrets.get(name).map(str::to_string)
        } else {
            ingest_env.get(name).cloned()
        }
    };
    let settings = ingest::Settings::from_lookup(lookup).expect("ingest's settings from the stack");
    let api = ingest::build_api(&aws.config, settings);

    // Meta's verification handshake with the generated token.
    let token = secrets
        .get(config::WHATSAPP_VERIFY_TOKEN)
        .unwrap()
        .to_string();
    let (status, body) = call_ingest(
        &api,
        lambda_request(
            "GET",
            &format!("/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=31337"),
            &[],
            b"",
        ),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "31337"));

    // A signed webhook, unique to this run.
    let wamid = format!("wamid.E2E{}", uuid::Uuid::new_v4().simple());
    let payload = std::fs::read_to_string(workspace_root().join("events/webhooks/text_es_mx.json"))
        .expect("events/webhooks/text_es_mx.json")
        .replace("wamid.HBgNNjI4QjQ5RDk2RENERTk3QTQzMERENEY1", &wamid);
    assert!(payload.contains(&wamid));
    let secret = AppSecret::new(app_secret.as_bytes().to_vec()).unwrap();
    let sig = signature::sign(&secret, payload.as_bytes());
    let post = |sig: String| {
        lambda_request(
            "POST",
            "/webhook",
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", sig.as_str()),
            ],
            payload.as_bytes(),
        )
    };
    let (status, body) = call_ingest(&api, post("sha256=".to_string() + &"0".repeat(64))).await;
    assert_eq!(status, 401, "forged signature: {body}");
    let (status, body) = call_ingest(&api, post(sig.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call_ingest(&api, post(sig.clone())).await;
    assert_eq!(status, 200, "Meta's retry is acknowledged: {body}");
    eprintln!(
        "ingest answered in {} ms so far",
        started.elapsed().as_millis()
    );

    // crm-sync's Lambda handler, wired like its cold start from its deployed environment and
    // the secret; the operator pointed the CrmWebhookUrl parameter at the receiver (its
    // default is empty). This test then plays the Lambda service: poll, invoke, delete.
    let crm_env = env_of("CrmSync");
    assert_eq!(crm_env[config::CRM_KIND], "webhook");
    assert_eq!(crm_env[config::WABRIDGE_SECRETS_ARN], arn);
    let receiver = CrmReceiver::start().await;
    let crm_lookup = |name: &str| -> Option<String> {
        if name == config::CRM_WEBHOOK_URL {
            return Some(receiver.url.clone());
        }
        if config::SECRET_NAMES.contains(&name) {
            secrets.get(name).map(str::to_string)
        } else {
            crm_env.get(name).cloned().filter(|v| !v.is_empty())
        }
    };
    let mapping = Mapping::example(&crm_env[config::CRM_KIND]).unwrap();
    let crm = wabridge_crm::from_lookup(&mapping, None, crm_lookup)
        .expect("the webhook CRM from the stack");
    let table = crm_env[config::WABRIDGE_TABLE].clone();
    let events_url = crm_env[config::EVENTS_QUEUE_URL].clone();
    let events = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        events_url.clone(),
        crm_env[config::EVENTS_DLQ_URL].clone(),
    ));
    let app = crm_sync::App {
        handler: Arc::new(CrmSync::new(
            Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
            Arc::new(DynamoLedger::new(aws.dynamo.clone(), table)),
            crm,
            Arc::new(mapping),
        )),
        queue: events.clone(),
    };

    let first = lambda_poll(&aws, &events_url, &wamid, &app)
        .await
        .expect("the event is on the queue");
    assert_eq!(first.receive_count, 1);
    assert!(!first.failed, "handled and deleted");
    assert!(
        lambda_poll(&aws, &events_url, &wamid, &app).await.is_none(),
        "one event per message: the retried POST enqueued nothing"
    );

    let calls = receiver.calls();
    let bodies: Vec<Value> = calls
        .iter()
        .map(|c| serde_json::from_str::<Value>(&c.body).unwrap())
        .collect();
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(kinds.contains(&"contact"), "{kinds:?}");
    assert!(kinds.contains(&"activity"), "{kinds:?}");
    let key = secret_key(&crm_secret).unwrap();
    for call in &calls {
        let id = &call.headers["webhook-id"];
        let ts: i64 = call.headers["webhook-timestamp"].parse().unwrap();
        assert_eq!(
            call.headers["webhook-signature"],
            sign(&key, id, ts, &call.body)
        );
    }
    let activity = bodies.iter().find(|v| v["kind"] == "activity").unwrap();
    assert!(activity.to_string().contains(&wamid), "{activity}");

    // The same event delivered again (SQS delivers at least once; ingest may enqueue twice after
    // a crash between enqueue and dedupe mark) changes nothing at the CRM.
    aws.sqs
        .send_message()
        .queue_url(&events_url)
        .message_body(&first.body)
        .send()
        .await
        .unwrap();
    let again = lambda_poll(&aws, &events_url, &wamid, &app)
        .await
        .expect("redelivered");
    assert!(!again.failed);
    assert_eq!(
        receiver.calls().len(),
        calls.len(),
        "effects ledger: nothing twice"
    );
    eprintln!(
        "webhook -> queue -> CRM ({} records) in {} ms",
        calls.len(),
        started.elapsed().as_millis()
    );

    // Poison: the CRM answers 503 to everything; the handler reports the message as a batch
    // item failure each time, and SQS dead-letters it after maxReceiveCount receives. The
    // handler's backoff delay is fast-forwarded by making the message visible at once (the
    // test does not wait minutes).
    receiver.answer(503);
    let poison_wamid = format!("wamid.POISON{}", uuid::Uuid::new_v4().simple());
    let poison = payload.replace(&wamid, &poison_wamid);
    let (status, _) = call_ingest(
        &api,
        lambda_request(
            "POST",
            "/webhook",
            &[(
                "x-hub-signature-256",
                signature::sign(&secret, poison.as_bytes()).as_str(),
            )],
            poison.as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let max = max_receive_count(&aws, &events_url).await;
    let mut receives = 0;
    while let Some(polled) = lambda_poll(&aws, &events_url, &poison_wamid, &app).await {
        receives += 1;
        assert!(receives <= max, "received more than maxReceiveCount times");
        assert_eq!(polled.receive_count, receives);
        assert!(polled.failed, "reported as a batch item failure");
        aws.sqs
            .change_message_visibility()
            .queue_url(&events_url)
            .receipt_handle(&polled.receipt)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(receives, max);
    let dead = events.dead_letters(10).await.unwrap();
    assert!(
        dead.iter().any(|d| d.body.contains(&poison_wamid)),
        "the poison event is in the events DLQ"
    );
    eprintln!(
        "flow through the moto stack done in {} ms ({receives} receives before the DLQ)",
        started.elapsed().as_millis()
    );
}

/// One message the Lambda service handed to the function.
struct Polled {
    receive_count: u32,
    failed: bool,
    receipt: String,
    body: String,
}

/// What the Lambda service does for an SQS event source mapping: receive a batch (with the
/// queue's visibility timeout and the receive count attribute), invoke the function with it as
/// an `SqsEvent`, delete the messages not reported in `batchItemFailures`. Only the message
/// containing `needle` is handed over (others on the queue are released untouched); `None`
/// when it is not (or no longer) on the queue.
async fn lambda_poll(
    aws: &Aws,
    queue_url: &str,
    needle: &str,
    app: &crm_sync::App,
) -> Option<Polled> {
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    for _ in 0..20 {
        let out = aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        let mut ours = None;
        for m in messages {
            if ours.is_none() && m.body().unwrap_or_default().contains(needle) {
                ours = Some(m);
            } else if let Some(receipt) = m.receipt_handle() {
                let _ = aws
                    .sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
        let Some(m) = ours else { continue };
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.attributes = m
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let receive_count = record.attributes["ApproximateReceiveCount"]
            .parse()
            .unwrap();
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let response = crm_sync::handle(app, event).await;
        let id = m.message_id.clone().unwrap_or_default();
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == id);
        let receipt = m.receipt_handle.clone().unwrap_or_default();
        if !failed {
            aws.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(&receipt)
                .send()
                .await
                .expect("the Lambda service deletes what succeeded");
        }
        return Some(Polled {
            receive_count,
            failed,
            receipt,
            body: m.body.unwrap_or_default(),
        });
    }
    None
}
