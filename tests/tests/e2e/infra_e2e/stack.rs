//! The stack as moto's CloudFormation created it: its resources match the template, and its
//! redrive policy dead-letters a poison message after the configured receives.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::config;
use wabridge_core::consumer::{settle, Outcome, Settle};
use wabridge_core::queue::{OutgoingMessage, Queue};
use wabridge_core::retry::{RetryPolicy, BACKSTOP_RECEIVES};
use wabridge_tests::require_aws;

use super::*;

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
    // where the API says Enabled): tests/tests/e2e/infra_template/data.rs checks those in
    // the template.

    // Queues: each main queue redrives to its own DLQ; encrypted with the stack's key.
    for (queue, dlq, visibility) in [
        ("EventsQueueUrl", "EventsDlqUrl", 185),
        ("SendsQueueUrl", "SendsDlqUrl", 180),
        ("MediaQueueUrl", "MediaDeadLetterQueueUrl", 725),
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

    // Event sources (crm-sync's, the sender's, the media function's): created by the stack
    // with partial batch failures.
    let mappings = stack.raw["EventSourceMappings"]
        .as_array()
        .expect("mappings");
    assert_eq!(mappings.len(), 3, "{mappings:?}");
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

/// The stack's queues keep a transient failure waiting within the retry horizon: their redrive
/// policy's maxReceiveCount is only the backstop (1,000, the arithmetic in `retry.rs`), and a
/// retry past the horizon is dead-lettered by the consumer, on the deployed queue, with a reason
/// that says so.
#[tokio::test]
async fn a_retry_past_the_horizon_lands_in_the_deployed_dead_letter_queue_with_its_reason() {
    let aws = require_aws!();
    let endpoint = aws.config.endpoint_url().unwrap_or_default().to_string();
    let stack = stack(&endpoint);
    // The sends queue: the events queue belongs to the flow test running beside this one.
    let queue = SqsQueue::new(
        aws.sqs.clone(),
        stack.output("SendsQueueUrl"),
        stack.output("SendsDlqUrl"),
    );
    for url in ["SendsQueueUrl", "EventsQueueUrl"] {
        let max = max_receive_count(&aws, stack.output(url)).await;
        assert_eq!(
            max, BACKSTOP_RECEIVES,
            "{url}: the template's maxReceiveCount"
        );
    }
    let body = format!("{{\"poison\":\"{}\"}}", uuid::Uuid::new_v4());
    queue
        .send_batch(&[OutgoingMessage {
            id: "poison".into(),
            body: body.clone(),
            delay: None,
        }])
        .await
        .expect("enqueue");
    // A horizon of one second, waited out: the consumer's retry becomes a dead letter.
    let how = Settle::new(
        RetryPolicy {
            horizon: Duration::from_secs(1),
        },
        false,
    );
    let mut receives = 0;
    loop {
        let batch = queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        let Some(delivery) = batch.into_iter().find(|d| d.body == body) else {
            panic!("the message left the queue after {receives} receives without a dead letter");
        };
        receives += 1;
        assert!(delivery.enqueued_at.is_some(), "SentTimestamp is read");
        let outcome = Outcome::retry(Duration::ZERO, "HTTP 503 from the CRM");
        let stays = settle(&queue, &delivery, outcome, &how)
            .await
            .expect("settle");
        if !stays {
            break;
        }
        assert!(receives < 50, "still retried after {receives} receives");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = queue.dead_letters(10).await.expect("list dead letters");
    let letter = dead.iter().find(|d| d.body == body).expect("in the DLQ");
    let reason = letter.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("retry horizon of 1s passed")
            && reason.ends_with("HTTP 503 from the CRM"),
        "{reason}"
    );
}
