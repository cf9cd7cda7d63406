//! The checks themselves: they read CloudFormation's short tags as CloudFormation does, and each
//! catches what it is for (a broken copy of the template must be reported).

use std::collections::BTreeSet;

use serde_json::{json, Value};
use wabridge_core::config;

use super::access::{check_iam, check_url};
use super::alarms::check_alarms;
use super::data::check_data;
use super::env::{check_env, check_secret};
use super::functions::check_functions;
use super::queues::check_queues;
use super::stack::{check_outputs, check_skips};
use super::*;

fn all_checks(t: &Value) -> Vec<String> {
    [
        check_skips(t),
        check_functions(t),
        check_env(t),
        check_secret(t),
        check_data(t),
        check_queues(t),
        check_url(t),
        check_iam(t),
        check_alarms(t),
        check_outputs(t),
    ]
    .concat()
}

// The checks catch what they are for: each mutation below must be reported.

fn mutated(f: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut t = load_template();
    f(&mut t);
    all_checks(&t)
}

fn assert_reports(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {problems:#?}"
    );
}

#[test]
fn checks_catch_a_missing_resource_output_or_env_name() {
    let p = mutated(|t| {
        t["Resources"].as_object_mut().unwrap().remove("EventsDlq");
    });
    assert_reports(&p, "EventsDlq: missing AWS::SQS::Queue");
    let p = mutated(|t| {
        t["Outputs"].as_object_mut().unwrap().remove("WebhookUrl");
    });
    assert_reports(&p, "output WebhookUrl is missing");
    // The media side: each piece is required.
    for (id, problem) in [
        (
            "MediaDeadLetterQueue",
            "MediaDeadLetterQueue: missing AWS::SQS::Queue",
        ),
        ("MediaQueue", "MediaQueue: missing AWS::SQS::Queue"),
        ("MediaBucket", "MediaBucket: missing AWS::S3::Bucket"),
        (
            "MediaBucketPolicy",
            "MediaBucket: a bucket policy must deny requests without TLS",
        ),
    ] {
        let p = mutated(|t| {
            t["Resources"].as_object_mut().unwrap().remove(id);
        });
        assert_reports(&p, problem);
    }
    for output in [
        "MediaBucketName",
        "MediaQueueUrl",
        "MediaDeadLetterQueueUrl",
    ] {
        let p = mutated(|t| {
            t["Outputs"].as_object_mut().unwrap().remove(output);
        });
        assert_reports(&p, &format!("output {output} is missing"));
    }
    let p = mutated(|t| {
        t["Resources"]["CrmSync"]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove(config::EVENTS_DLQ_URL);
    });
    assert_reports(
        &p,
        "CrmSync: env EVENTS_DLQ_URL (read by the function) is not set",
    );
    let p = mutated(|t| {
        t["Resources"]["Sender"]["Properties"]["Environment"]["Variables"]
            ["WHATSAPP_ACCESS_TOKEN"] = json!("EAAB...");
    });
    assert_reports(
        &p,
        "secret WHATSAPP_ACCESS_TOKEN must not be an environment value",
    );
    let p = mutated(|t| {
        t["Resources"]["Ingest"]["Properties"]["Environment"]["Variables"]["WABRIDGE_TABEL"] =
            json!("x");
    });
    assert_reports(
        &p,
        "env WABRIDGE_TABEL is not a name in shared/core/src/config/mod.rs",
    );
    let p = mutated(|t| {
        t["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("SendsDlqAlarm");
    });
    assert_reports(
        &p,
        "no alarm on AWS/SQS ApproximateNumberOfMessagesVisible of SendsDlq",
    );
}

#[test]
fn checks_catch_wildcards_and_grants_a_function_does_not_use() {
    let p = mutated(|t| {
        t["Resources"]["IngestRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Allow", "Action": "sqs:*", "Resource": {"Fn::GetAtt": ["EventsQueue", "Arn"]}}));
    });
    assert_reports(&p, "IngestRole: wildcard action sqs:*");
    let p = mutated(|t| {
        t["Resources"]["IngestRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["EventsQueue", "Arn"]}}));
    });
    assert_reports(
        &p,
        "IngestRole: sqs:ReceiveMessage on EventsQueue is not needed",
    );
    let p = mutated(|t| {
        t["Resources"]["SenderRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}));
    });
    assert_reports(&p, "SenderRole: dynamodb:GetItem on * is not needed");
    let p = mutated(|t| {
        t["Resources"]["CrmSync"]["Properties"]["Events"]["Events"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("FunctionResponseTypes");
    });
    assert_reports(
        &p,
        "CrmSync: FunctionResponseTypes must be [ReportBatchItemFailures]",
    );
    let p = mutated(|t| {
        t["Resources"]["SendsQueue"]["Properties"]["VisibilityTimeout"] = json!(30);
    });
    assert_reports(&p, "SendsQueue: VisibilityTimeout 30 < 6 x 30 s timeout");
    let p = mutated(|t| {
        t["Resources"]["Sender"]["Properties"]["Events"]["Sends"]["Properties"]["ScalingConfig"]
            ["MaximumConcurrency"] = json!(50);
    });
    assert_reports(
        &p,
        "Sender: WABRIDGE_SENDER_INSTANCES must be the event source's MaximumConcurrency",
    );
    let p = mutated(|t| {
        t["Resources"]["Ingest"]["Metadata"]["checkov"]["skip"][0]
            .as_object_mut()
            .unwrap()
            .remove("comment");
    });
    assert_reports(&p, "Ingest: checkov skip CKV_AWS_116 has no justification");
}

#[test]
fn the_checks_read_short_tags_as_cloudformation_does() {
    let yaml = "a: !Ref Table\nb: !GetAtt EventsQueue.Arn\nc: !Sub ${Secret}-x\nd: !If [C, 1, 2]\n";
    let v = yaml_to_json(serde_yaml_ng::from_str(yaml).unwrap());
    assert_eq!(v["a"], json!({"Ref": "Table"}));
    assert_eq!(v["b"], json!({"Fn::GetAtt": ["EventsQueue", "Arn"]}));
    assert_eq!(v["c"], json!({"Fn::Sub": "${Secret}-x"}));
    assert_eq!(v["d"], json!({"Fn::If": ["C", 1, 2]}));
    assert_eq!(
        refs(&v),
        BTreeSet::from(["Table".into(), "EventsQueue".into(), "Secret".into()])
    );
}

/// The media function's grants and settings are checked as every function's: a statement it
/// needs, or the media queue's URL crm-sync enqueues to, missing is reported.
#[test]
fn checks_catch_a_media_grant_or_setting_missing() {
    let p = mutated(|t| {
        let statements = t["Resources"]["MediaFunctionRole"]["Properties"]["Policies"][0]
            ["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap();
        statements.retain(|st| st["Sid"] != "MediaMissingIsNotFound");
    });
    assert_reports(
        &p,
        "MediaFunctionRole: lacks s3:ListBucket on MediaBucket, which MediaFunction needs",
    );
    let p = mutated(|t| {
        t["Resources"]["CrmSync"]["Properties"]["Environment"]["Variables"]
            .as_object_mut()
            .unwrap()
            .remove(config::MEDIA_QUEUE_URL);
    });
    assert_reports(
        &p,
        "CrmSync: env MEDIA_QUEUE_URL (read by the function) is not set",
    );
    let p = mutated(|t| {
        t["Resources"]["IngestRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"Effect": "Allow", "Action": "s3:AbortMultipartUpload",
                "Resource": {"Fn::Sub": "${MediaBucket.Arn}/media/*"}}),
            );
    });
    assert_reports(
        &p,
        "IngestRole: s3:AbortMultipartUpload on MediaBucket is not needed",
    );
}
