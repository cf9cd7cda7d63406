//! Queues with dead-letter queues, and SQS event sources that report partial batch failures
//! with deliberate batch sizes, windows, concurrency and visibility timeouts.

use serde_json::{json, Value};
use wabridge_core::config;
use wabridge_core::retry::BACKSTOP_RECEIVES;

use super::*;

/// Every queue and dead-letter queue of [`QUEUES`]: encrypted, with a retention, redriven to its
/// own DLQ after the backstop, the DLQ keeping messages longer; no queue outside the list.
fn check_queue_pairs(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for (queue, dlq) in QUEUES {
        let mut missing = false;
        for id in [queue, dlq] {
            let q = props(t, id);
            if t["Resources"][id]["Type"] != "AWS::SQS::Queue" {
                p.push(format!("{id}: missing AWS::SQS::Queue"));
                missing = true;
                continue;
            }
            if q["KmsMasterKeyId"].is_null() && q["SqsManagedSseEnabled"] != true {
                p.push(format!("{id}: not encrypted"));
            }
            if int(&q["MessageRetentionPeriod"]).is_none() {
                p.push(format!("{id}: no MessageRetentionPeriod"));
            }
        }
        if missing {
            continue;
        }
        let q = props(t, queue);
        let redrive = &q["RedrivePolicy"];
        if !is_get_att(&redrive["deadLetterTargetArn"], dlq, "Arn") {
            p.push(format!("{queue}: RedrivePolicy must target {dlq}"));
        }
        // The retry horizon decides; maxReceiveCount is the backstop of its arithmetic.
        if int(&redrive["maxReceiveCount"]) != Some(i64::from(BACKSTOP_RECEIVES)) {
            p.push(format!(
                "{queue}: maxReceiveCount must be the backstop, {BACKSTOP_RECEIVES}"
            ));
        }
        let keep = int(&q["MessageRetentionPeriod"]).unwrap_or(0);
        let dlq_keep = int(&props(t, dlq)["MessageRetentionPeriod"]).unwrap_or(0);
        if dlq_keep <= keep {
            p.push(format!(
                "{dlq}: must keep messages longer than {queue} (they keep their enqueue time)"
            ));
        }
    }
    for (id, r) in resources(t) {
        let listed = QUEUES.iter().any(|(q, d)| q == id || d == id);
        if r["Type"] == "AWS::SQS::Queue" && !listed {
            p.push(format!(
                "{id}: a queue outside QUEUES (infra_template/mod.rs) escapes these checks"
            ));
        }
    }
    p
}

/// Every queue has its consumer: a Lambda of [`LAMBDAS`], or a place in [`AWAITING_CONSUMER`]
/// as long as nothing consumes it yet.
fn check_consumers(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for (queue, dlq) in QUEUES {
        let consumer = LAMBDAS
            .iter()
            .find(|l| l.consumes.is_some_and(|c| c.0 == *queue));
        let awaited = AWAITING_CONSUMER.iter().find(|(q, _)| q == queue);
        // Any function's SQS event source on the queue, listed in LAMBDAS or not.
        let sources: Vec<&String> = resources(t)
            .iter()
            .filter(|(_, r)| {
                r["Properties"]["Events"].as_object().is_some_and(|events| {
                    events.values().any(|e| {
                        e["Type"] == "SQS" && is_get_att(&e["Properties"]["Queue"], queue, "Arn")
                    })
                })
            })
            .map(|(id, _)| id)
            .collect();
        match (consumer, awaited) {
            (Some(l), _) if l.consumes != Some((*queue, *dlq)) => p.push(format!(
                "{}: consumes {queue} with a dead-letter queue other than {dlq}",
                l.id
            )),
            (Some(_), Some(_)) => p.push(format!(
                "{queue}: consumed in LAMBDAS and still listed in AWAITING_CONSUMER"
            )),
            (None, Some((_, what))) if !sources.is_empty() => p.push(format!(
                "{queue}: consumed by {sources:?}; add it to LAMBDAS and take it off \
                 AWAITING_CONSUMER (awaiting {what})"
            )),
            (None, Some(_)) => {
                // Its consumer's timeout is not in the template yet: the visibility timeout
                // must have been chosen for it, not left at SQS's default.
                if int(&props(t, queue)["VisibilityTimeout"]).is_none() {
                    p.push(format!(
                        "{queue}: VisibilityTimeout must be set for its coming consumer"
                    ));
                }
            }
            (None, None) => p.push(format!("{queue}: no function consumes it")),
            (Some(_), None) => {}
        }
    }
    for l in LAMBDAS {
        if let Some((queue, _)) = l.consumes {
            if !QUEUES.iter().any(|(q, _)| *q == queue) {
                p.push(format!(
                    "{}: consumes {queue}, which is not in QUEUES",
                    l.id
                ));
            }
        }
    }
    p
}

pub(super) fn check_queues(t: &Value) -> Vec<String> {
    let mut p = check_queue_pairs(t);
    p.extend(check_consumers(t));
    for l in LAMBDAS {
        let Some((queue, _)) = l.consumes else {
            continue;
        };
        let q = props(t, queue);
        // The event source: partial batch failures, deliberate batch size, window, concurrency.
        let events = props(t, l.id)["Events"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Some(source) = events
            .values()
            .find(|e| e["Type"] == "SQS" && is_get_att(&e["Properties"]["Queue"], queue, "Arn"))
        else {
            p.push(format!("{}: no SQS event source on {queue}", l.id));
            continue;
        };
        let sp = &source["Properties"];
        if sp["FunctionResponseTypes"] != json!(["ReportBatchItemFailures"]) {
            p.push(format!(
                "{}: FunctionResponseTypes must be [ReportBatchItemFailures]",
                l.id
            ));
        }
        for name in ["BatchSize", "MaximumBatchingWindowInSeconds"] {
            if int(&sp[name]).is_none() {
                p.push(format!("{}: {name} must be set deliberately", l.id));
            }
        }
        if int_or_param(t, &sp["ScalingConfig"]["MaximumConcurrency"]).is_none_or(|n| n < 2) {
            p.push(format!(
                "{}: ScalingConfig.MaximumConcurrency must be set (>= 2)",
                l.id
            ));
        }
        // The sender's instances split the number's rate: the count they divide by must be the
        // event source's bound on concurrent instances.
        if l.env.contains(&config::WABRIDGE_SENDER_INSTANCES) {
            let instances =
                &props(t, l.id)["Environment"]["Variables"][config::WABRIDGE_SENDER_INSTANCES];
            if *instances != sp["ScalingConfig"]["MaximumConcurrency"] {
                p.push(format!(
                    "{}: WABRIDGE_SENDER_INSTANCES must be the event source's MaximumConcurrency",
                    l.id
                ));
            }
        }
        let timeout = int(fn_prop(t, l.id, "Timeout")).unwrap_or(3);
        let window = int(&sp["MaximumBatchingWindowInSeconds"]).unwrap_or(0);
        let visibility = int(&q["VisibilityTimeout"]).unwrap_or(30);
        if visibility < 6 * timeout + window {
            p.push(format!(
                "{queue}: VisibilityTimeout {visibility} < 6 x {timeout} s timeout + {window} s window"
            ));
        }
    }
    p
}

#[test]
fn queues_have_dead_letters_and_consumers_report_partial_failures() {
    assert_clean(check_queues(&load_template()));
}

#[test]
fn the_queue_checks_catch_an_unchecked_queue_or_a_queue_without_consumer() {
    let template = load_template();
    let mut extra = template.clone();
    extra["Resources"]["StrayQueue"] = json!({"Type": "AWS::SQS::Queue", "Properties": {}});
    let p = check_queues(&extra);
    assert!(
        p.iter()
            .any(|p| p.starts_with("StrayQueue: a queue outside QUEUES")),
        "{p:?}"
    );

    let mut unconsumed = template.clone();
    unconsumed["Resources"]["Sender"]["Properties"]["Events"]
        .as_object_mut()
        .unwrap()
        .remove("Sends");
    let p = check_queues(&unconsumed);
    assert!(
        p.iter()
            .any(|p| p == "Sender: no SQS event source on SendsQueue"),
        "{p:?}"
    );

    // The media queue's consumer is the media function: without its event source, or with the
    // visibility timeout left at SQS's default, the queue is reported.
    let mut unconsumed_media = template.clone();
    unconsumed_media["Resources"]["MediaFunction"]["Properties"]["Events"]
        .as_object_mut()
        .unwrap()
        .remove("Jobs");
    let p = check_queues(&unconsumed_media);
    assert!(
        p.iter()
            .any(|p| p == "MediaFunction: no SQS event source on MediaQueue"),
        "{p:?}"
    );

    let mut default_visibility = template.clone();
    default_visibility["Resources"]["MediaQueue"]["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("VisibilityTimeout");
    let p = check_queues(&default_visibility);
    assert!(
        p.iter()
            .any(|p| p == "MediaQueue: VisibilityTimeout 30 < 6 x 120 s timeout + 5 s window"),
        "{p:?}"
    );

    let mut no_redrive = template;
    no_redrive["Resources"]["MediaQueue"]["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("RedrivePolicy");
    let p = check_queues(&no_redrive);
    assert!(
        p.iter()
            .any(|p| p == "MediaQueue: RedrivePolicy must target MediaDeadLetterQueue"),
        "{p:?}"
    );
}
