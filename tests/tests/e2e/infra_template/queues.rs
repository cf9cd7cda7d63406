//! Queues with dead-letter queues, and SQS event sources that report partial batch failures
//! with deliberate batch sizes, windows, concurrency and visibility timeouts.

use serde_json::{json, Value};
use wabridge_core::config;
use wabridge_core::retry::BACKSTOP_RECEIVES;

use super::*;

pub(super) fn check_queues(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for l in LAMBDAS {
        let Some((queue, dlq)) = l.consumes else {
            continue;
        };
        for id in [queue, dlq] {
            let q = props(t, id);
            if t["Resources"][id]["Type"] != "AWS::SQS::Queue" {
                p.push(format!("{id}: missing AWS::SQS::Queue"));
                continue;
            }
            if q["KmsMasterKeyId"].is_null() && q["SqsManagedSseEnabled"] != true {
                p.push(format!("{id}: not encrypted"));
            }
            if int(&q["MessageRetentionPeriod"]).is_none() {
                p.push(format!("{id}: no MessageRetentionPeriod"));
            }
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
