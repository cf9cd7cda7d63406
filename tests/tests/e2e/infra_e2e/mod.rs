//! End to end against the stack moto's CloudFormation created from infra/template.yaml (deployed
//! by infra/check.sh, or by this test when the outputs file is missing or from another moto).
//! The handlers run in-process with the real AWS SDK against the stack's own table, queues and
//! secret, names taken from the stack's outputs: this test plays the Lambda service's part
//! (the event source mappings exist in the stack but are disabled, see infra/moto_deploy.py).

mod claim_check;
pub(crate) mod crm_receiver;
mod flow;
pub(crate) mod lambda_service;
mod stack;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use wabridge_tests::{workspace_root, Aws};

/// Held by each test that polls the stack's events queue: a poll receives (and counts a
/// receive of) every message on the queue, so two tests polling at once would change each
/// other's receive counts.
static EVENTS_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The stack's outputs file, as infra/moto_deploy.py writes it.
#[derive(Debug, Clone)]
struct Stack {
    name: String,
    outputs: HashMap<String, String>,
    raw: Value,
}

impl Stack {
    /// A function's environment as the stack deployed it.
    fn env_of(&self, function: &str) -> HashMap<String, String> {
        self.raw["FunctionEnvironments"][function]
            .as_object()
            .unwrap_or_else(|| panic!("no deployed environment for {function}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

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
