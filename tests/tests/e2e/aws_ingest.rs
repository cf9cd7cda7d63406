//! The AWS engine's ingest hand-off through the real AWS SDK against moto's server:
//! DynamoDedupe + SqsQueue under StagedInbox, failure injection, dead letters and redrive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::value::RawValue;
use wabridge_aws::dynamo::dedupe::{DynamoDedupe, MIN_TTL};
use wabridge_aws::dynamo::{now_epoch, EXPIRES_AT, PK, SINGLE_SK, SK};
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::dedupe::{Dedupe, DEFAULT_DEDUPE_TTL};
use wabridge_core::error::StoreError;
use wabridge_core::event::{Event, EventKind, EVENT_VERSION};
use wabridge_core::inbox::{AcceptReport, Inbox, StagedInbox};
use wabridge_core::queue::{Delivery, OutgoingMessage, Queue};
use wabridge_tests::faults::{FailingDedupe, FailingQueue};
use wabridge_tests::{create_queues, create_table, queue_depth, require_aws, unique_name, Aws};

fn event(key: &str) -> Event {
    let item = serde_json::json!({"id": key, "from": "5215512345678", "type": "text",
        "text": {"body": "Hola, ¿tienen envío a Monterrey?"}});
    Event {
        v: EVENT_VERSION,
        key: key.to_string(),
        kind: EventKind::Message,
        field: "messages".into(),
        waba_id: "102290129340398".into(),
        entry_time: None,
        phone_number_id: Some("106540352242922".into()),
        display_phone_number: Some("15550783881".into()),
        contact: None,
        item: RawValue::from_string(item.to_string()).unwrap(),
        received_at: 1_750_000_000_000,
    }
}

fn events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| event(&format!("wamid.{prefix}.{i:04}")))
        .collect()
}

/// Receives until the queue is empty, deleting nothing (messages hidden for 5 minutes).
async fn drain(queue: &SqsQueue) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::from_secs(300)).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// Event keys of deliveries, with how many times each appeared.
fn key_counts(deliveries: &[Delivery]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in deliveries {
        let event = Event::from_json(&d.body).expect("queue body is an Event");
        *counts.entry(event.key).or_insert(0) += 1;
    }
    counts
}

struct Engine {
    aws: Aws,
    table: String,
    dedupe: Arc<DynamoDedupe>,
    queue: Arc<SqsQueue>,
}

async fn engine(aws: Aws, max_receive_count: u32) -> Engine {
    let table = create_table(&aws.dynamo, &unique_name("wabridge")).await;
    let queues = create_queues(&aws.sqs, &unique_name("events"), max_receive_count).await;
    Engine {
        dedupe: Arc::new(DynamoDedupe::new(aws.dynamo.clone(), &table)),
        queue: Arc::new(SqsQueue::new(aws.sqs.clone(), &queues.url, &queues.dlq_url)),
        aws,
        table,
    }
}

#[tokio::test]
async fn dedupe_marks_and_sees_keys_across_batch_chunks() {
    let aws = require_aws!();
    let e = engine(aws, 3).await;
    // 250 keys: three BatchGetItem chunks, ten BatchWriteItem chunks; duplicates in the input.
    let owned: Vec<String> = (0..250).map(|i| format!("wamid.chunk.{i}")).collect();
    let mut keys: Vec<&str> = owned.iter().map(String::as_str).collect();
    keys.push(owned[7].as_str());

    let seen = e.dedupe.seen(&keys).await.unwrap();
    assert_eq!(seen.len(), keys.len());
    assert!(seen.iter().all(|s| !s), "nothing marked yet");

    e.dedupe
        .mark(&keys[..120], DEFAULT_DEDUPE_TTL)
        .await
        .unwrap();
    let seen = e.dedupe.seen(&keys).await.unwrap();
    for (i, s) in seen.iter().enumerate().take(250) {
        assert_eq!(*s, i < 120, "key {i}");
    }
    assert!(seen[250], "the repeated key 7 is seen too");

    // Marking again is idempotent; a too-short TTL is raised to Meta's 7-day retry window.
    e.dedupe.mark(&keys, Duration::from_secs(60)).await.unwrap();
    assert!(e.dedupe.seen(&keys).await.unwrap().iter().all(|s| *s));

    let item = e
        .aws
        .dynamo
        .get_item()
        .table_name(&e.table)
        .key(PK, AttributeValue::S("dedupe#wamid.chunk.200".into()))
        .key(SK, AttributeValue::S(SINGLE_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("dedupe item stored under dedupe#<key>");
    let expires_at: i64 = item[EXPIRES_AT].as_n().unwrap().parse().unwrap();
    assert!(
        expires_at >= now_epoch() + MIN_TTL.as_secs() as i64 - 5,
        "TTL at least 7 days"
    );
    assert!(MIN_TTL >= Duration::from_secs(7 * 24 * 3600));
}

#[tokio::test]
async fn expired_but_undeleted_dedupe_items_count_as_unseen() {
    let aws = require_aws!();
    let e = engine(aws, 3).await;
    // DynamoDB deletes expired items lazily: write one whose TTL passed.
    e.aws
        .dynamo
        .put_item()
        .table_name(&e.table)
        .item(PK, AttributeValue::S("dedupe#wamid.old".into()))
        .item(SK, AttributeValue::S(SINGLE_SK.into()))
        .item(
            EXPIRES_AT,
            AttributeValue::N((now_epoch() - 10).to_string()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(e.dedupe.seen(&["wamid.old"]).await.unwrap(), vec![false]);
    e.dedupe
        .mark(&["wamid.old"], DEFAULT_DEDUPE_TTL)
        .await
        .unwrap();
    assert_eq!(e.dedupe.seen(&["wamid.old"]).await.unwrap(), vec![true]);
}

#[tokio::test]
async fn staged_inbox_enqueues_each_event_once_across_redeliveries() {
    let aws = require_aws!();
    let e = engine(aws, 3).await;
    let inbox = StagedInbox::new(e.dedupe.clone(), e.queue.clone(), DEFAULT_DEDUPE_TTL);
    let batch = events("once", 23);

    let report = inbox.accept(batch.clone()).await.unwrap();
    assert_eq!(
        report,
        AcceptReport {
            accepted: 23,
            duplicates: 0
        }
    );
    // Meta retries the same delivery: acknowledged, nothing enqueued again.
    let report = inbox.accept(batch.clone()).await.unwrap();
    assert_eq!(
        report,
        AcceptReport {
            accepted: 0,
            duplicates: 23
        }
    );
    // A later delivery overlapping the first (Meta batches differently on retry).
    let mut overlap = events("once", 25);
    overlap.drain(..20);
    let report = inbox.accept(overlap).await.unwrap();
    assert_eq!(
        report,
        AcceptReport {
            accepted: 2,
            duplicates: 3
        }
    );

    let deliveries = drain(&e.queue).await;
    let counts = key_counts(&deliveries);
    assert_eq!(deliveries.len(), 25, "every event exactly once");
    assert_eq!(counts.len(), 25);
    let first = Event::from_json(&deliveries[0].body).unwrap();
    assert_eq!(first.waba_id, "102290129340398");
    assert!(
        first.item.get().contains("Monterrey"),
        "raw item travels unchanged"
    );
    assert_eq!(deliveries[0].receive_count, 1);
}

#[tokio::test]
async fn a_partial_queue_failure_loses_nothing_on_retry() {
    let aws = require_aws!();
    let e = engine(aws, 3).await;
    let queue = Arc::new(FailingQueue::new(e.queue.clone(), 1, 7));
    let inbox = StagedInbox::new(e.dedupe.clone(), queue.clone(), DEFAULT_DEDUPE_TTL);
    let batch = events("partial", 18);
    let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();

    // First delivery: 7 of 18 reach the queue, then the queue fails: accept errors, so ingest
    // answers 503 and Meta retries. Nothing is marked seen: the retry must enqueue again.
    let err = inbox.accept(batch.clone()).await.unwrap_err();
    assert!(
        err.is_retryable(),
        "a queue outage is retryable (503), got {err:?}"
    );
    assert!(e.dedupe.seen(&keys).await.unwrap().iter().all(|s| !s));

    // Meta's retry: everything enqueued and marked.
    let report = inbox.accept(batch.clone()).await.unwrap();
    assert_eq!(report.accepted, 18);
    assert!(e.dedupe.seen(&keys).await.unwrap().iter().all(|s| *s));

    // No event lost: every key on the queue at least once; the 7 taken before the failure are
    // there twice (the consumers' ledger absorbs them), nothing else is.
    let counts = key_counts(&drain(&e.queue).await);
    for key in &keys {
        assert!(counts.contains_key(*key), "{key} lost");
    }
    assert_eq!(counts.values().filter(|c| **c == 2).count(), 7);
    assert_eq!(counts.values().sum::<usize>(), 25);

    // A third delivery of the same POST is a pure duplicate.
    let report = inbox.accept(batch).await.unwrap();
    assert_eq!(
        report,
        AcceptReport {
            accepted: 0,
            duplicates: 18
        }
    );
    assert_eq!(queue_depth(&e.aws.sqs, e.queue.queue_url()).await.0, 0);
}

#[tokio::test]
async fn a_dedupe_failure_after_enqueue_loses_nothing_on_retry() {
    let aws = require_aws!();
    let e = engine(aws, 3).await;
    let dedupe = Arc::new(FailingDedupe::new(e.dedupe.clone(), 1));
    let inbox = StagedInbox::new(dedupe, e.queue.clone(), DEFAULT_DEDUPE_TTL);
    let batch = events("mark", 12);
    let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();

    let err = inbox.accept(batch.clone()).await.unwrap_err();
    assert!(err.is_retryable());
    let report = inbox.accept(batch.clone()).await.unwrap();
    assert_eq!(
        report.accepted, 12,
        "not marked, so the retry enqueues again"
    );
    assert!(e.dedupe.seen(&keys).await.unwrap().iter().all(|s| *s));
    let counts = key_counts(&drain(&e.queue).await);
    assert_eq!(counts.len(), 12);
    assert!(
        counts.values().all(|c| *c == 2),
        "at least once: each twice here"
    );
}

#[tokio::test]
async fn a_poison_message_moves_to_the_dead_letter_queue_after_max_receives() {
    let aws = require_aws!();
    let e = engine(aws, 2).await;
    let inbox = StagedInbox::new(e.dedupe.clone(), e.queue.clone(), DEFAULT_DEDUPE_TTL);
    inbox.accept(events("poison", 1)).await.unwrap();

    // A consumer that keeps failing: received, put back at once, twice.
    for expected in 1..=2u32 {
        let got = e.queue.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, expected);
        e.queue
            .retry_later(&got[0].receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    // Third receive: over maxReceiveCount, SQS moves it to the DLQ instead of delivering it.
    assert!(e
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    let dead = e.queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].reason, None,
        "moved by the redrive policy, not by a consumer"
    );
    assert_eq!(dead[0].receive_count, 2);
    assert_eq!(
        Event::from_json(&dead[0].body).unwrap().key,
        "wamid.poison.0000"
    );
}

#[tokio::test]
async fn dead_letters_carry_a_reason_are_listed_without_consuming_and_redrive() {
    let aws = require_aws!();
    let e = engine(aws, 5).await;
    let inbox = StagedInbox::new(e.dedupe.clone(), e.queue.clone(), DEFAULT_DEDUPE_TTL);
    inbox.accept(events("dlq", 3)).await.unwrap();
    let mut got = drain(&e.queue).await;
    got.sort_by_key(|d| Event::from_json(&d.body).unwrap().key);
    assert_eq!(got.len(), 3);
    e.queue
        .dead_letter(&got[0], "phone number is not E.164: 12")
        .await
        .unwrap();
    e.queue
        .dead_letter(&got[1], "CRM answered 400: invalid email")
        .await
        .unwrap();
    e.queue.delete(&got[2].receipt).await.unwrap();
    assert_eq!(
        queue_depth(&e.aws.sqs, e.queue.queue_url()).await,
        (0, 0),
        "moved, not copied"
    );

    let mut listed = e.queue.dead_letters(10).await.unwrap();
    listed.sort_by_key(|d| d.body.clone());
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].reason.as_deref(),
        Some("phone number is not E.164: 12")
    );
    assert_eq!(
        listed[1].reason.as_deref(),
        Some("CRM answered 400: invalid email")
    );
    assert_eq!(listed[0].receive_count, 1);
    assert!(listed[0].dead_lettered_at.unwrap() > 1_700_000_000_000);
    assert_eq!(listed[0].body, got[0].body, "body kept exactly");

    // Listing consumed nothing: the messages are visible again and list the same.
    assert_eq!(
        queue_depth(&e.aws.sqs, e.queue.dlq_url().unwrap()).await,
        (2, 0)
    );
    assert_eq!(e.queue.dead_letters(10).await.unwrap().len(), 2);
    assert_eq!(
        e.queue.dead_letters(1).await.unwrap().len(),
        1,
        "limit honoured"
    );

    // Redrive one by id, then the rest.
    assert_eq!(e.queue.redrive(Some(&listed[1].id)).await.unwrap(), 1);
    assert_eq!(e.queue.redrive(Some("no-such-id")).await.unwrap(), 0);
    let left = e.queue.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, listed[0].id);
    let back = drain(&e.queue).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, listed[1].body);

    assert_eq!(e.queue.redrive(None).await.unwrap(), 1);
    assert!(e.queue.dead_letters(10).await.unwrap().is_empty());
    let back = drain(&e.queue).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, listed[0].body);
}

#[tokio::test]
async fn large_batches_are_split_by_count_and_size() {
    let aws = require_aws!();
    let e = engine(aws, 3).await;
    let mut messages: Vec<OutgoingMessage> = (0..23)
        .map(|i| OutgoingMessage {
            id: format!("k{i}"),
            body: format!("small {i}"),
            delay: None,
        })
        .collect();
    for i in 0..4 {
        // Four bodies of 100 KiB: no SQS batch may carry more than two of them.
        messages.push(OutgoingMessage {
            id: format!("big{i}"),
            body: format!("{i}{}", "x".repeat(100 * 1024)),
            delay: None,
        });
    }
    e.queue.send_batch(&messages).await.unwrap();
    let got = drain(&e.queue).await;
    assert_eq!(got.len(), 27);
    assert_eq!(got.iter().filter(|d| d.body.len() > 100 * 1024).count(), 4);
}

#[tokio::test]
async fn retry_later_hides_a_message_for_the_delay() {
    let aws = require_aws!();
    let e = engine(aws, 5).await;
    e.queue
        .send_batch(&[OutgoingMessage {
            id: "a".into(),
            body: "later".into(),
            delay: None,
        }])
        .await
        .unwrap();
    let got = e.queue.receive(1, Duration::from_secs(30)).await.unwrap();
    e.queue
        .retry_later(&got[0].receipt, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(e
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queue_depth(&e.aws.sqs, e.queue.queue_url()).await, (0, 1));
    e.queue
        .retry_later(&got[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = e.queue.receive(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again[0].receive_count, 2);
    e.queue.delete(&again[0].receipt).await.unwrap();
    assert_eq!(queue_depth(&e.aws.sqs, e.queue.queue_url()).await, (0, 0));
}

#[tokio::test]
async fn sdk_errors_map_to_store_errors() {
    let aws = require_aws!();
    // A table or queue that does not exist: not retryable.
    let dedupe = DynamoDedupe::new(aws.dynamo.clone(), "no-such-table");
    assert!(matches!(
        dedupe.seen(&["k"]).await,
        Err(StoreError::NotFound(_))
    ));
    let queue = SqsQueue::new(
        aws.sqs.clone(),
        format!("{}/123456789012/no-such-queue", moto_base()),
        format!("{}/123456789012/no-such-dlq", moto_base()),
    );
    let err = queue
        .send_batch(&[OutgoingMessage {
            id: "k".into(),
            body: "b".into(),
            delay: None,
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // Nothing listening: a connection failure is retryable (ingest answers 503).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = Aws::connect(&format!("http://127.0.0.1:{port}")).await;
    let dedupe = DynamoDedupe::new(down.dynamo.clone(), "t");
    let err = dedupe.seen(&["k"]).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let queue = SqsQueue::new(
        down.sqs.clone(),
        "http://127.0.0.1:1/q",
        "http://127.0.0.1:1/d",
    );
    let err = queue.receive(1, Duration::from_secs(1)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    // A producer-only queue (ingest) has no dead-letter queue to touch.
    let producer = SqsQueue::producer(aws.sqs.clone(), format!("{}/123456789012/q", moto_base()));
    assert!(matches!(
        producer.dead_letters(1).await,
        Err(StoreError::NotFound(_))
    ));
}

fn moto_base() -> String {
    wabridge_tests::moto_endpoint().expect("moto running")
}
