//! The numbers registry on AWS (issue 21, docs/numbers.md "On AWS"), over moto: the registry
//! is written into the stack's table by `wabridge numbers add --table T` (the real binary, its
//! keys checked against the stack's secret), listed with the tokens masked, and read back by
//! crm-sync's registry handler as its cold start does. Two numbers land in two webhook CRMs; an
//! unknown number is dead-lettered, `numbers add` adds it, `dead-letters redrive` sends the
//! letter back, and the handler re-reads the registry and lands it under its label. Items that
//! do not check are refused naming the item, line and field.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::secrets::{SecretSource, Secrets};
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::queue::{OutgoingMessage, Queue};
use wabridge_tests::gateway;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name, Aws};

use super::numbers_aws::{activities, event, receive, receiver, uuid_like, CO, MX, NEW};

const TOKEN_MX: &str = "EAAGmx0123456789abcdefWXYZ";

fn entry(label: &str, id: &str, display: &str, url: &str, key: &str) -> String {
    format!(
        r#"
[[number]]
label = "{label}"
phone_number_id = "{id}"
waba_id = "102290129340398"
display_number = "{display}"
token_key = "WHATSAPP_ACCESS_TOKEN_{key}"
business_hours = {{ timezone = "America/Mexico_City", days = ["mon"], open = "09:00", close = "18:00" }}
[number.crm]
kind = "webhook"
settings = {{ CRM_WEBHOOK_URL = "{url}" }}
secrets = {{ CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_{key}" }}
"#
    )
}

/// The stack's secret: both numbers' tokens and CRM secrets, one key each.
async fn stack_secret(aws: &Aws) -> String {
    let name = unique_name("numbers-secret");
    let values = serde_json::json!({
        "WHATSAPP_APP_SECRET": "app-secret-0123456789abcdef",
        "WHATSAPP_ACCESS_TOKEN_MX": TOKEN_MX,
        "WHATSAPP_ACCESS_TOKEN_CO": "EAAGco0123456789abcdefQRST",
        "CRM_WEBHOOK_SECRET_MX": "whsec_bXgtc2VjcmV0",
        "CRM_WEBHOOK_SECRET_CO": "whsec_Y28tc2VjcmV0",
    });
    aws.secrets
        .create_secret()
        .name(&name)
        .secret_string(values.to_string())
        .send()
        .await
        .unwrap();
    name
}

/// `wabridge ARGS` against moto with the stack's secret; (success, stdout, stderr).
fn wabridge(endpoint: &str, secret: &str, args: &[&str]) -> (bool, String, String) {
    let out = gateway::against_aws(endpoint, args, &[("WABRIDGE_SECRETS_ARN", secret)]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// crm-sync's registry handler as its cold start builds it: the table's registry, the
/// stack's secret by key, re-read on an unknown number at most once per `every`.
async fn app(
    aws: &Aws,
    table: &str,
    secret: &Secrets,
    queue: Arc<SqsQueue>,
    every: Duration,
) -> crm_sync::App {
    let registry = DynamoNumbers::new(aws.dynamo.clone(), table);
    let numbers = registry
        .load()
        .await
        .unwrap()
        .expect("numbers in the table");
    let secret = secret.clone();
    let shared = crm_sync::numbers::Shared {
        secret: Arc::new(move |key: &str| secret.get(key).map(str::to_string)),
        ..super::numbers_aws::shared()
    };
    let reloading =
        crm_sync::registry::Reloading::new(registry, aws.engine(table), shared, numbers, every)
            .unwrap();
    crm_sync::App {
        handler: Arc::new(reloading),
        queue,
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
    }
}

async fn enqueue(queue: &SqsQueue, body: String) {
    let id = uuid_like(&body);
    let message = OutgoingMessage {
        id,
        body,
        delay: None,
    };
    queue.send_batch(&[message]).await.unwrap();
}

#[tokio::test]
async fn numbers_added_by_the_cli_route_crm_sync_and_an_unknown_number_lands_after_redrive() {
    let aws = require_aws!();
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let table = create_table(&aws.dynamo, &unique_name("numbers-reg")).await;
    let queues = create_queues(&aws.sqs, &unique_name("numbers-reg-events"), 5).await;
    let queue = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        queues.url.clone(),
        queues.dlq_url.clone(),
    ));
    let secret_name = stack_secret(&aws).await;
    let secret = Secrets::from_secrets_manager(&aws.secrets, &secret_name)
        .await
        .unwrap();
    let (mx_url, mx) = receiver().await;
    let (co_url, co) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let two = file(
        &dir,
        "numbers.toml",
        &(entry("ventas-mx", MX, "+52 55 5000 1111", &mx_url, "MX")
            + &entry("soporte-co", CO, "+57 601 500 2222", &co_url, "CO")),
    );

    // A key the secret lacks stops the write, naming the file, line and field.
    let missing = file(
        &dir,
        "missing.toml",
        &entry("nuevo-mx", NEW, "+52 55 5000 3333", &mx_url, "AR"),
    );
    let (ok, _, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "add", "--table", &table, "--from", &missing],
    );
    assert!(!ok);
    assert!(
        err.contains("missing.toml: line 3: number `nuevo-mx`: `token_key` names WHATSAPP_ACCESS_TOKEN_AR, which is not in the secret store"),
        "{err}"
    );
    // So does the local gateway's store as a deployment's CRM, and a file that does not parse.
    let local = file(
        &dir,
        "local.toml",
        &entry("nuevo-mx", NEW, "+52 55 5000 3333", &mx_url, "MX")
            .replace("kind = \"webhook\"", "kind = \"local\""),
    );
    let (ok, _, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "add", "--table", &table, "--from", &local],
    );
    assert!(
        !ok && err.contains("line 3: number `nuevo-mx`: `crm.kind` local"),
        "{err}"
    );
    let broken = file(&dir, "broken.toml", "[[number]]\nlabel = \"x\n");
    let (ok, _, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "add", "--table", &table, "--from", &broken],
    );
    assert!(!ok && err.contains("broken.toml: line 2"), "{err}");
    let (ok, out, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "list", "--table", &table],
    );
    assert!(
        ok && out.is_empty() && err.contains("no numbers in table"),
        "{out}{err}"
    );

    let (ok, out, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "add", "--table", &table, "--from", &two],
    );
    assert!(ok, "{err}");
    let written: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        written["written"],
        serde_json::json!(["ventas-mx", "soporte-co"])
    );

    // The listing masks the tokens it reads from the stack's secret.
    let (ok, out, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "list", "--json", "--table", &table],
    );
    assert!(ok, "{err}");
    assert!(!out.contains(TOKEN_MX), "a token in the listing: {out}");
    let rows = gateway::json_lines(&out);
    let mx_row = rows.iter().find(|r| r["label"] == "ventas-mx").unwrap();
    assert_eq!(mx_row["token"], "****WXYZ");
    assert_eq!(mx_row["token_key"], "WHATSAPP_ACCESS_TOKEN_MX");
    assert_eq!(rows.len(), 2);

    // crm-sync reads the table's registry: each number's events land in its own CRM.
    let every = Duration::ZERO;
    let app1 = app(&aws, &table, &secret, queue.clone(), every).await;
    for body in [
        event(MX, "wamid.MX", "5215512345678"),
        event(CO, "wamid.CO", "573001234567"),
        event(NEW, "wamid.NEW", "5215599999999"),
    ] {
        enqueue(&queue, body).await;
    }
    let mut batch = SqsEvent::default();
    batch.records = receive(&aws, &queues.url, 3).await;
    let response = crm_sync::handle(&app1, batch, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        activities(&mx),
        [("wamid.MX".to_string(), "ventas-mx".to_string())]
    );
    assert_eq!(
        activities(&co),
        [("wamid.CO".to_string(), "soporte-co".to_string())]
    );
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("unknown_number: phone_number_id 306540352242922"),
        "{dead:?}"
    );

    // The operator adds the number and redrives; the running handler re-reads the registry.
    let new = file(
        &dir,
        "new.toml",
        &entry("nuevo-mx", NEW, "+52 55 5000 3333", &mx_url, "MX"),
    );
    let (ok, _, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "add", "--table", &table, "--from", &new],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = wabridge(
        &endpoint,
        &secret_name,
        &[
            "dead-letters",
            "redrive",
            "--queue-url",
            &queues.url,
            "--dlq-url",
            &queues.dlq_url,
        ],
    );
    assert!(ok, "{err}");
    let mut again = SqsEvent::default();
    again.records = receive(&aws, &queues.url, 1).await;
    let response = crm_sync::handle(&app1, again, None).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mut landed = activities(&mx);
    landed.sort();
    assert_eq!(
        landed,
        [
            ("wamid.MX".to_string(), "ventas-mx".to_string()),
            ("wamid.NEW".to_string(), "nuevo-mx".to_string()),
        ]
    );
    assert_eq!(activities(&co).len(), 1, "nothing new in the CO CRM");
    assert!(queue.dead_letters(10).await.unwrap().is_empty());

    // `remove` takes a number out; the registry's business hours come with its numbers.
    let (ok, out, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "remove", "--table", &table, "nuevo-mx"],
    );
    assert!(ok && out.contains("\"removed\":\"nuevo-mx\""), "{out}{err}");
    let numbers = DynamoNumbers::new(aws.dynamo.clone(), &table)
        .load()
        .await
        .unwrap()
        .unwrap();
    let labels: Vec<&str> = numbers.all().iter().map(|n| n.label.as_str()).collect();
    assert_eq!(labels, ["soporte-co", "ventas-mx"]);
    assert!(numbers.all().iter().all(|n| n.business_hours.is_some()));
    let (ok, _, err) = wabridge(
        &endpoint,
        &secret_name,
        &["numbers", "remove", "--table", &table, "nuevo-mx"],
    );
    assert!(!ok && err.contains("no number `nuevo-mx`"), "{err}");
}

#[tokio::test]
async fn an_instance_rereads_the_registry_at_most_once_per_bound() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("numbers-bound")).await;
    let queues = create_queues(&aws.sqs, &unique_name("numbers-bound-events"), 5).await;
    let queue = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        queues.url.clone(),
        queues.dlq_url.clone(),
    ));
    let (url, got) = receiver().await;
    let split = |text: String| {
        wabridge_core::numbers::items::split("numbers.toml", text.as_bytes()).unwrap()
    };
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    let first = split(entry("ventas-mx", MX, "+52 55 5000 1111", &url, "MX"));
    registry.put(None, &first.entries).await.unwrap();
    let secret = Secrets::from_map(
        [(
            "CRM_WEBHOOK_SECRET_MX".to_string(),
            "whsec_bXgtc2VjcmV0".to_string(),
        )]
        .into(),
        SecretSource::Environment,
    );
    let app = app(
        &aws,
        &table,
        &secret,
        queue.clone(),
        Duration::from_secs(3600),
    )
    .await;
    let added = split(entry("nuevo-mx", NEW, "+52 55 5000 3333", &url, "MX"));
    registry.put(None, &added.entries).await.unwrap();
    enqueue(&queue, event(NEW, "wamid.NEW2", "5215599999999")).await;
    let mut batch = SqsEvent::default();
    batch.records = receive(&aws, &queues.url, 1).await;
    let logs = wabridge_tests::LogBuffer::default();
    let subscriber = wabridge_core::telemetry::lambda_subscriber(logs.clone(), None);
    let guard = tracing::subscriber::set_default(subscriber);
    crm_sync::handle(&app, batch, None).await;
    drop(guard);
    assert!(activities(&got).is_empty(), "re-read within the bound");
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1);
    // The line the template's UnknownNumber metric counts (infra/template.yaml), with the
    // unrouted phone_number_id its per-id metric takes as the `Unrouted` dimension.
    let text = logs.text();
    assert!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["fields"]["metric"] == "unknown_number" && v["fields"]["unrouted"] == NEW),
        "{text}"
    );
    assert!(
        !text.contains("5215599999999"),
        "a customer's number in the log: {text}"
    );
}

#[tokio::test]
async fn registry_items_that_do_not_check_are_refused_naming_the_item_and_field() {
    let aws = require_aws!();
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let table = create_table(&aws.dynamo, &unique_name("numbers-bad")).await;
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    let split = wabridge_core::numbers::items::split(
        "numbers.toml",
        entry(
            "ventas-mx",
            MX,
            "+52 55 5000 1111",
            "https://crm.example/x",
            "MX",
        )
        .as_bytes(),
    )
    .unwrap();
    let mut bad = split.entries.clone();
    // As if edited by hand in the console: an id that is not Meta's.
    bad[0].text = bad[0].text.replace(MX, "10654-MX");
    registry.put(None, &bad).await.unwrap();
    let err = registry.load().await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("table {table}, item `ventas-mx`: line "))
            && err.contains("`phone_number_id` must be Meta's id"),
        "{err}"
    );
    let (ok, _, err) = wabridge(&endpoint, "unused", &["numbers", "list", "--table", &table]);
    assert!(
        !ok && err.contains("item `ventas-mx`") && err.contains("phone_number_id"),
        "{err}"
    );
}
