//! `wabridge dead-letters list|redrive` against SQS (moto's server), through the real binary:
//! a letter the consumer dead-lettered with a reason and one SQS moved after `maxReceiveCount`
//! receives are listed (id, receive count, reason, masked preview) without being consumed, and
//! redrive moves them back to the source queue, deleting from the DLQ only after the send.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::queue::{OutgoingMessage, Queue};
use wabridge_tests::gateway;
use wabridge_tests::{create_queues, eventually, queue_depth, require_moto, unique_name, Aws};

const PHONE: &str = "5215512345678";
const REASON: &str = "mapping: phone_e164 breaks rule e164";

fn body(tag: &str) -> String {
    json!({"v": 1, "key": format!("wamid.{tag}#message"), "kind": "message",
           "item": {"from": PHONE, "id": format!("wamid.{tag}"), "type": "text",
                    "text": {"body": format!("hola {tag}")}}})
    .to_string()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "wabridge failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dead-letters list --json` over one explicit queue pair.
fn list(endpoint: &str, url: &str, dlq: &str) -> Vec<Value> {
    gateway::json_lines(&ok(gateway::against_aws(
        endpoint,
        &[
            "dead-letters",
            "list",
            "--json",
            "--queue-url",
            url,
            "--dlq-url",
            dlq,
        ],
        &[],
    )))
}

/// Every body currently on `url` (received once with a long visibility, so each is seen once).
async fn drain_bodies(aws: &Aws, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = aws
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        bodies.extend(messages.into_iter().filter_map(|m| m.body));
    }
}

#[tokio::test]
async fn sqs_dead_letters_are_listed_and_redriven_through_the_binary() {
    let endpoint = require_moto!();
    let aws = Aws::connect(&endpoint).await;
    let events = create_queues(&aws.sqs, &unique_name("dl-cli-events"), 1).await;
    let sends = create_queues(&aws.sqs, &unique_name("dl-cli-sends"), 1).await;
    let queue = SqsQueue::new(aws.sqs.clone(), &events.url, &events.dlq_url);
    let send = |tag: &str| OutgoingMessage {
        id: tag.into(),
        body: body(tag),
        delay: None,
    };

    // A: the consumer dead-letters it with the rule that failed.
    queue.send_batch(&[send("A")]).await.unwrap();
    let got = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    queue.dead_letter(&got[0], REASON).await.unwrap();
    // B: received maxReceiveCount (1) times without success; SQS's redrive policy moves it.
    queue.send_batch(&[send("B")]).await.unwrap();
    eventually(
        "SQS moves B to the DLQ",
        Duration::from_secs(20),
        || async {
            let _ = queue.receive(10, Duration::ZERO).await.unwrap();
            (queue_depth(&aws.sqs, &events.dlq_url).await.0 == 2).then_some(())
        },
    )
    .await;
    // S: a dead letter of the sends queue.
    let sends_queue = SqsQueue::new(aws.sqs.clone(), &sends.url, &sends.dlq_url);
    sends_queue.send_batch(&[send("S")]).await.unwrap();
    let got = sends_queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    sends_queue
        .dead_letter(&got[0], "graph: 131026 undeliverable")
        .await
        .unwrap();

    // list --json: both, with reason (or none when SQS moved it), count and a masked preview.
    let lines = list(&endpoint, &events.url, &events.dlq_url);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let by_tag = |lines: &[Value], tag: &str| -> Value {
        lines
            .iter()
            .find(|l| l["body"]["key"] == format!("wamid.{tag}#message"))
            .unwrap_or_else(|| panic!("{tag} listed: {lines:#?}"))
            .clone()
    };
    let a = by_tag(&lines, "A");
    let b = by_tag(&lines, "B");
    assert_eq!(a["queue"], "events");
    assert_eq!(a["reason"], REASON);
    assert_eq!(a["receive_count"], 1);
    assert!(a["dead_lettered_at"].as_i64().unwrap() > 0);
    assert_eq!(b["reason"], Value::Null, "moved by SQS, not by us: {b}");
    assert!(b["receive_count"].as_u64().unwrap() >= 1, "{b}");
    assert_eq!(serde_json::to_string(&a["body"]).unwrap(), body("A"));
    for l in [&a, &b] {
        let preview = l["preview"].as_str().unwrap();
        assert!(!preview.contains(PHONE), "phone masked: {preview}");
        assert!(preview.contains("521********78"), "{preview}");
    }
    let (a_id, b_id) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    assert_ne!(a_id, b_id);

    // Listing consumed nothing: the same two again, and the table shows them too.
    let again = list(&endpoint, &events.url, &events.dlq_url);
    let mut ids: Vec<&str> = again.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![a_id.as_str(), b_id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let table = ok(gateway::against_aws(
        &endpoint,
        &[
            "dead-letters",
            "list",
            "--queue-url",
            &events.url,
            "--dlq-url",
            &events.dlq_url,
        ],
        &[],
    ));
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} in the table: {table}"))
            .to_string()
    };
    assert!(row(&a_id).contains(REASON), "{table}");
    assert!(row(&b_id).contains("(too many receives)"), "{table}");
    assert!(!table.contains(PHONE), "{table}");

    // The stack's env names select SQS too: all pairs, or one with --queue.
    let env = [
        ("EVENTS_QUEUE_URL", events.url.as_str()),
        ("EVENTS_DLQ_URL", events.dlq_url.as_str()),
        ("SENDS_QUEUE_URL", sends.url.as_str()),
        ("SENDS_DLQ_URL", sends.dlq_url.as_str()),
    ];
    let all = gateway::json_lines(&ok(gateway::against_aws(
        &endpoint,
        &["dead-letters", "list", "--json"],
        &env,
    )));
    let mut queues: Vec<&str> = all.iter().map(|l| l["queue"].as_str().unwrap()).collect();
    queues.sort();
    assert_eq!(queues, ["events", "events", "sends"], "{all:#?}");
    let only_sends = gateway::json_lines(&ok(gateway::against_aws(
        &endpoint,
        &["dead-letters", "list", "--json", "--queue", "sends"],
        &env,
    )));
    assert_eq!(only_sends.len(), 1);
    assert_eq!(only_sends[0]["reason"], "graph: 131026 undeliverable");

    // An unknown id is an error that moves nothing.
    let out = gateway::against_aws(
        &endpoint,
        &["dead-letters", "redrive", "--id", "no-such-id"],
        &env,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-id"));
    assert_eq!(queue_depth(&aws.sqs, &events.dlq_url).await.0, 2);

    // Redrive A alone: back on the source queue with its exact body, gone from the DLQ.
    let out = ok(gateway::against_aws(
        &endpoint,
        &[
            "dead-letters",
            "redrive",
            "--id",
            &a_id,
            "--queue-url",
            &events.url,
            "--dlq-url",
            &events.dlq_url,
        ],
        &[],
    ));
    assert!(out.contains("redrove 1"), "{out}");
    assert_eq!(drain_bodies(&aws, &events.url).await, vec![body("A")]);
    let left = list(&endpoint, &events.url, &events.dlq_url);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], b_id.as_str());

    // The send back fails (no such source queue): the letter stays in the DLQ.
    let missing = format!("{}-gone", events.url);
    let out = gateway::against_aws(
        &endpoint,
        &[
            "dead-letters",
            "redrive",
            "--queue-url",
            &missing,
            "--dlq-url",
            &events.dlq_url,
        ],
        &[],
    );
    assert!(!out.status.success(), "a failed send fails the redrive");
    let left = list(&endpoint, &events.url, &events.dlq_url);
    assert_eq!(left.len(), 1, "nothing lost when the send fails");
    assert_eq!(left[0]["id"], b_id.as_str());

    // Redrive the rest of the events pair through the env names.
    let out = ok(gateway::against_aws(
        &endpoint,
        &["dead-letters", "redrive", "--queue", "events"],
        &env,
    ));
    assert!(out.contains("redrove 1"), "{out}");
    assert_eq!(drain_bodies(&aws, &events.url).await, vec![body("B")]);
    assert!(list(&endpoint, &events.url, &events.dlq_url).is_empty());
    // The sends pair was not touched.
    assert_eq!(queue_depth(&aws.sqs, &sends.dlq_url).await.0, 1);
}

#[test]
fn sqs_mode_needs_both_urls() {
    let out = gateway::command(&[])
        .args(["dead-letters", "list", "--dlq-url", "http://127.0.0.1:1/q"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--queue-url"), "{err}");
}
