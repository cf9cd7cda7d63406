//! The SLA week of [`wabridge_tests::conversation_sla`] on the AWS engine (DynamoDB items over
//! moto, found through the report index's open partitions; findings on an SQS events queue) to
//! the webhook CRM, which keeps every post: two breaches, each posted once; no conversation
//! change posted twice (the sweep's idle close never repeats the lazy one's); and the
//! conversations report over the table equal to the SQLite one, through the `wabridge` binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wabridge_aws::dynamo::identity::DynamoIdentityStore;
use wabridge_aws::dynamo::ledger::DynamoLedger;
use wabridge_core::mapping::Mapping;
use wabridge_core::sync::CrmSync;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::conversation_day as day;
use wabridge_tests::conversation_sla as sla;
use wabridge_tests::{create_queues, create_table, gateway, require_aws, unique_name};

/// A webhook CRM receiver keeping every body it accepted, with its `webhook-id`.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock()
                    .unwrap()
                    .push((id, serde_json::from_slice::<Value>(&body).unwrap()));
                axum::http::StatusCode::NO_CONTENT
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/crm"), got)
}

#[tokio::test]
async fn an_sla_week_over_dynamodb_posts_each_breach_once_and_reports_like_sqlite() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("sla")).await;
    let queues = create_queues(&aws.sqs, &unique_name("sla-events"), 5).await;
    let (url, got) = receiver().await;
    let engine = aws.engine(&table);
    let conversations = engine.conversations(day::IDLE_MS, Duration::from_secs(30 * 86_400));
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(aws.dynamo.clone(), table.clone())),
        Arc::new(WebhookCrm::new(&url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap()),
        Arc::new(Mapping::example("webhook").unwrap()),
    )
    .with_conversations(conversations.clone());
    let queue = Arc::new(engine.queue(&queues.url, &queues.dlq_url));
    sla::run(&conversations, queue, &sync).await;

    let posted: Vec<(String, Value)> = got.lock().unwrap().clone();
    let bodies: Vec<Value> = posted.iter().map(|(_, b)| b.clone()).collect();
    sla::check_breaches(&bodies);
    sla::check_no_change_twice(&bodies);
    let mut ids: Vec<&String> = posted.iter().map(|(id, _)| id).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "an effect was posted twice");

    // The same week over SQLite: the same figures, in the library and through the binary.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (lsync, lconversations, lqueue, _) = sla::sqlite(&data.join("wabridge.db"));
    sla::run(&lconversations, lqueue, &lsync).await;
    sla::set_outcomes(&conversations).await;
    sla::set_outcomes(&lconversations).await;
    for by in ["origin", "agent", "outcome", "number", "tag"] {
        let dynamo = sla::report(&conversations, by).await;
        assert_eq!(dynamo, sla::report(&lconversations, by).await, "--by {by}");
    }
    sla::check_report(
        &sla::report(&conversations, "origin").await,
        &sla::report(&conversations, "agent").await,
    );
    let args = [
        "report",
        "conversations",
        "--since",
        "2026-12-01",
        "--by",
        "origin",
        "--format",
        "json",
    ];
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let out = gateway::against_aws(&endpoint, &args, &[("WABRIDGE_TABLE", table.as_str())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let local: Value = serde_json::from_str(&gateway::cli_ok(&data, &args, &[])).unwrap();
    assert_eq!(printed, local);
    assert_eq!(printed["rows"].as_array().unwrap().len(), 3, "{printed:#}");
}

/// A bad `--since`, `--by` or `--format` is a CLI error naming the flag, before any store.
#[test]
fn bad_report_options_name_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [("--since", "30x"), ("--by", "team"), ("--format", "xml")] {
        let out = gateway::cli(dir.path(), &["report", "conversations", flag, value], &[]);
        assert!(!out.status.success(), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}
