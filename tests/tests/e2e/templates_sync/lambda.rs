//! The sender Lambda's schedule: on AWS the sender function syncs the DynamoDB registry.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::templates::TemplateStatus;

use super::*;

/// On AWS the sender function syncs the registry when its hourly schedule invokes it with
/// `{"wabridge": "template_sync"}` (`infra/template.yaml`): the DynamoDB registry (moto) learns
/// every template, a second run changes nothing, the same function still serves SQS batches, an
/// unknown event is a failed invocation naming what came (never a panic), Meta failing fails the
/// invocation (Lambda retries it) and keeps what the registry knew, and without a WABA id the
/// sync answers "disabled" and asks Meta nothing.
#[tokio::test]
async fn the_sender_lambda_syncs_the_dynamodb_registry_on_its_schedule() {
    let aws = wabridge_tests::require_aws!();
    let graph = GraphServer::start(two_pages()).await;
    let table =
        wabridge_tests::create_table(&aws.dynamo, &wabridge_tests::unique_name("tpl")).await;
    let sends_q =
        wabridge_tests::create_queues(&aws.sqs, &wabridge_tests::unique_name("tpl-sends"), 5).await;
    let events_q =
        wabridge_tests::create_queues(&aws.sqs, &wabridge_tests::unique_name("tpl-events"), 5)
            .await;
    let build = || {
        wabridge_tests::sender_app(
            &aws,
            &table,
            &sends_q,
            &events_q,
            wabridge_graph::GraphClient::new(wabridge_core::sends::graph::GraphConfig {
                base_url: graph.url.clone(),
                version: "v23.0".into(),
                phone_number_id: "106540352242922".into(),
                access_token: TOKEN.into(),
                timeout: Duration::from_secs(5),
            }),
        )
    };
    // The Lambda test event of the schedule (what infra/template.yaml's TemplateSync sends).
    let file = wabridge_tests::workspace_root().join("events/lambda/sender-template-sync.json");
    let scheduled_event: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .expect("events/lambda/sender-template-sync.json is JSON");
    assert_eq!(scheduled_event["wabridge"], sender::TEMPLATE_SYNC_INPUT);
    let template =
        std::fs::read_to_string(wabridge_tests::workspace_root().join("infra/template.yaml"))
            .unwrap();
    let inputs: Vec<Value> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Input: '")?.strip_suffix('\''))
        .map(|j| serde_json::from_str::<Value>(j).unwrap())
        // Other schedules (the conversation sweep) name their own input.
        .filter(|input| input.get("wabridge").is_some())
        .collect();
    assert_eq!(
        inputs,
        std::slice::from_ref(&scheduled_event),
        "the schedule in infra/template.yaml"
    );
    let scheduled = || scheduled_event.clone();

    let off = build();
    let disabled = sender::invoke(&off, scheduled(), None).await.unwrap();
    assert_eq!(disabled["template_sync"], "disabled", "{disabled}");
    assert!(
        disabled["reason"]
            .as_str()
            .unwrap()
            .contains("WHATSAPP_BUSINESS_ACCOUNT_ID"),
        "{disabled}"
    );
    assert!(graph.seen().is_empty(), "no WABA id: Meta is not asked");

    let app = build().with_template_sync(graph.config());
    let out = sender::invoke(&app, scheduled(), None).await.unwrap();
    assert_eq!(out["template_sync"]["pages"], 2, "{out}");
    assert_eq!(out["template_sync"]["templates"], 4, "{out}");
    let get = |name: &'static str, lang: &'static str| {
        let registry = app.templates.implicit();
        async move { registry.get(name, lang).await.unwrap() }
    };
    let order = get("order_confirmation", "es_MX").await.expect("synced");
    assert_eq!(order.body_parameters, Some(3));
    assert_eq!(order.category.as_deref(), Some("UTILITY"));
    let cart = get("cart_reminder", "es_MX").await.expect("synced");
    assert_eq!(cart.status, Some(TemplateStatus::new("PAUSED")));
    assert_eq!(
        get("promo_named", "pt_BR")
            .await
            .unwrap()
            .category
            .as_deref(),
        Some("MARKETING")
    );

    // The next hour: the same templates, nothing else.
    let again = sender::invoke(&app, scheduled(), None).await.unwrap();
    assert_eq!(again["template_sync"]["templates"], 4);
    let order_again = get("order_confirmation", "es_MX").await.unwrap();
    assert_eq!(
        (
            order_again.status,
            order_again.category,
            order_again.body_parameters
        ),
        (order.status, order.category, order.body_parameters)
    );
    assert!(
        order_again.status_at >= order.status_at,
        "observed again, not older"
    );

    // Still the sends queue's consumer.
    let batch = sender::invoke(&app, json!({"Records": []}), None)
        .await
        .unwrap();
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");
    let e = sender::invoke(
        &app,
        json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, sender::InvokeError::Unrecognised(_)), "{e}");
    assert!(e.to_string().contains("detail-type"), "{e}");

    // Meta down: the run fails, what the registry knew stays.
    let down = GraphServer::start(Arc::new(|_| {
        (
            503,
            r#"{"error":{"message":"Service temporarily unavailable","type":"OAuthException","code":2}}"#
                .into(),
        )
    }))
    .await;
    let failing = build().with_template_sync(down.config());
    let e = sender::invoke(&failing, scheduled(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, sender::InvokeError::TemplateSync(_)), "{e}");
    assert_eq!(
        get("cart_reminder", "es_MX").await.unwrap().status,
        Some(TemplateStatus::new("PAUSED"))
    );
}
