//! Stack-wide: the outputs an operator needs, and every checkov skip justified inline.

use serde_json::Value;

use super::*;

const OUTPUTS: &[&str] = &[
    "WebhookUrl",
    "SendsUrl",
    "ApiBaseUrl",
    "AttributionUrl",
    "TableName",
    "EventsQueueUrl",
    "EventsDlqUrl",
    "SendsQueueUrl",
    "SendsDlqUrl",
    "ClaimCheckBucketName",
    "MediaBucketName",
    "MediaQueueUrl",
    "MediaDeadLetterQueueUrl",
    "SecretArn",
    "VerifyTokenCommand",
    "AlarmTopicArn",
    "DashboardUrl",
];

pub(super) fn check_outputs(t: &Value) -> Vec<String> {
    OUTPUTS
        .iter()
        .filter(|o| t["Outputs"][**o]["Value"].is_null())
        .map(|o| format!("output {o} is missing"))
        .collect()
}

/// checkov skips are allowed only with a reason written beside them.
pub(super) fn check_skips(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for (id, r) in resources(t) {
        for skip in r["Metadata"]["checkov"]["skip"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let check = skip["id"].as_str().unwrap_or("?");
            if skip["comment"].as_str().is_none_or(|c| c.trim().len() < 20) {
                p.push(format!("{id}: checkov skip {check} has no justification"));
            }
        }
    }
    p
}

#[test]
fn every_checkov_skip_is_justified_inline() {
    assert_clean(check_skips(&load_template()));
}

#[test]
fn outputs_give_the_webhook_url_verify_token_and_resource_names() {
    assert_clean(check_outputs(&load_template()));
}
