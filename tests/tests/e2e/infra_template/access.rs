//! Who may reach what: the public Function URLs and their permissions, and least-privilege
//! roles (per function, exactly the actions it uses on exactly the resources it uses).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::*;

/// The functions behind a public Function URL: ingest (Meta, CRM workflows) and attribution.
const URL_FUNCTIONS: &[&str] = &["Ingest", "Attribution"];

pub(super) fn check_url(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for function in URL_FUNCTIONS {
        let url_id = format!("{function}Url");
        let url = &t["Resources"][&url_id];
        if url["Type"] != "AWS::Lambda::Url"
            || !is_get_att(&url["Properties"]["TargetFunctionArn"], function, "Arn")
        {
            p.push(format!(
                "{url_id}: a Function URL targeting {function} is required"
            ));
        }
        let perms: Vec<&Value> = resources(t)
            .values()
            .filter(|r| {
                r["Type"] == "AWS::Lambda::Permission"
                    && is_ref(&r["Properties"]["FunctionName"], function)
            })
            .collect();
        let has = |action: &str| perms.iter().any(|r| r["Properties"]["Action"] == action);
        if !has("lambda:InvokeFunctionUrl") || !has("lambda:InvokeFunction") {
            p.push(format!(
                "{url_id}: public Function URLs need InvokeFunctionUrl and InvokeFunction permissions"
            ));
        }
        if perms.iter().any(|r| {
            r["Properties"]["Action"] == "lambda:InvokeFunction"
                && r["Properties"]["InvokedViaFunctionUrl"] != true
        }) {
            p.push(format!(
                "{url_id}: InvokeFunction for everyone must be limited to calls via the URL"
            ));
        }
    }
    p
}

/// Least privilege: per function, exactly these actions on exactly these resources.
fn expected_grants(l: &Lambda) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |resource: &str, actions: &[&str]| {
        g.entry(resource.to_string())
            .or_default()
            .extend(actions.iter().map(|a| a.to_string()));
    };
    add(
        &format!("{}LogGroup", l.id),
        &["logs:CreateLogStream", "logs:PutLogEvents"],
    );
    add("*", &["xray:PutTraceSegments", "xray:PutTelemetryRecords"]);
    add("Secret", &["secretsmanager:GetSecretValue"]);
    add("Key", &["kms:Decrypt", "kms:GenerateDataKey"]);
    for queue in l.sends_to {
        add(queue, &["sqs:SendMessage"]);
    }
    if !l.claim_check.is_empty() {
        add("ClaimCheckBucket", l.claim_check);
    }
    if !l.media.is_empty() {
        add("MediaBucket", l.media);
    }
    for (id, topic) in PUBLISHES {
        if *id == l.id {
            add(topic, &["sns:Publish"]);
        }
    }
    if let Some((queue, _)) = l.consumes {
        add(
            queue,
            &[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
        );
    }
    g
}

pub(super) fn check_iam(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for l in LAMBDAS {
        let role_id = format!("{}Role", l.id);
        let role = props(t, &role_id);
        if t["Resources"][&role_id]["Type"] != "AWS::IAM::Role" {
            p.push(format!("{role_id}: missing AWS::IAM::Role"));
            continue;
        }
        if role["ManagedPolicyArns"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            p.push(format!(
                "{role_id}: managed policies grant more than the function uses"
            ));
        }
        let trust = &role["AssumeRolePolicyDocument"]["Statement"];
        if trust
            != &json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}])
        {
            p.push(format!("{role_id}: only Lambda may assume it"));
        }
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for policy in role["Policies"].as_array().cloned().unwrap_or_default() {
            for st in policy["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if st["Effect"] != "Allow" {
                    continue;
                }
                if !st["NotAction"].is_null() || !st["NotResource"].is_null() {
                    p.push(format!("{role_id}: NotAction/NotResource grant too much"));
                }
                let actions = strings(&st["Action"]);
                for a in &actions {
                    if a.contains('*') {
                        p.push(format!("{role_id}: wildcard action {a}"));
                    }
                }
                let targets: Vec<Value> = match &st["Resource"] {
                    Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                for target in targets {
                    let key = if target == "*" {
                        "*".to_string()
                    } else {
                        let r = refs(&target);
                        if r.len() != 1 {
                            p.push(format!(
                                "{role_id}: resource {target} must name one resource of the stack"
                            ));
                            continue;
                        }
                        r.into_iter().next().unwrap_or_default()
                    };
                    granted
                        .entry(key)
                        .or_default()
                        .extend(actions.iter().cloned());
                }
            }
        }
        let mut want = expected_grants(l);
        // DynamoDB: the function's own data-plane actions on the table, nothing else.
        if let Some(table) = granted.get("Table") {
            for a in table {
                if !a.starts_with("dynamodb:")
                    || a.contains("Table")
                    || a.contains("Backup")
                    // Only the erasure (ingest's DELETE /contacts) scans: the table has no
                    // index by person.
                    || (a == "dynamodb:Scan" && role_id != "IngestRole")
                {
                    p.push(format!(
                        "{role_id}: {a} on the table is more than item access"
                    ));
                }
            }
            want.insert("Table".into(), table.clone());
        } else if !WITHOUT_TABLE.contains(&l.crate_dir) {
            p.push(format!("{role_id}: no access to the table it needs"));
        }
        for (resource, actions) in &granted {
            match want.get(resource) {
                None => p.push(format!(
                    "{role_id}: grants {actions:?} on {resource}, which {} does not use",
                    l.id
                )),
                Some(w) => {
                    for a in actions.difference(w) {
                        p.push(format!("{role_id}: {a} on {resource} is not needed"));
                    }
                }
            }
        }
        for (resource, actions) in &want {
            let have = granted.get(resource).cloned().unwrap_or_default();
            for a in actions.difference(&have) {
                p.push(format!(
                    "{role_id}: lacks {a} on {resource}, which {} needs",
                    l.id
                ));
            }
        }
    }
    p
}

#[test]
fn ingest_is_reachable_through_a_function_url() {
    assert_clean(check_url(&load_template()));
}

#[test]
fn roles_grant_only_what_each_function_uses() {
    assert_clean(check_iam(&load_template()));
}
