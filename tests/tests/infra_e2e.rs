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
use wabridge_core::adapters::sqs::SqsQueue;
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
    assert_eq!(value[config::WHATSAPP_APP_SECRET], "");

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
