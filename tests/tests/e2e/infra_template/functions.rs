//! Each function is a cargo-lambda build of its workspace crate (arm64, provided.al2023), with
//! its own role and its own KMS-encrypted log group.

use serde_json::{json, Value};

use super::*;

pub(super) fn check_functions(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let members = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap_or_default();
    for l in LAMBDAS {
        let r = &t["Resources"][l.id];
        if r["Type"] != "AWS::Serverless::Function" {
            p.push(format!("{}: missing AWS::Serverless::Function", l.id));
            continue;
        }
        for (name, want) in [
            ("Runtime", json!("provided.al2023")),
            ("Handler", json!("bootstrap")),
            ("Architectures", json!(["arm64"])),
        ] {
            if *fn_prop(t, l.id, name) != want {
                p.push(format!("{}: {name} must be {want}", l.id));
            }
        }
        if r["Metadata"]["BuildMethod"] != "rust-cargolambda" {
            p.push(format!(
                "{}: Metadata.BuildMethod must be rust-cargolambda",
                l.id
            ));
        }
        let want_uri = format!("../{}", l.crate_dir);
        if props(t, l.id)["CodeUri"] != want_uri.as_str() {
            p.push(format!("{}: CodeUri must be {want_uri}", l.id));
        }
        if !members.contains(&format!("\"{}\"", l.crate_dir)) {
            p.push(format!(
                "{}: {} is not a workspace member",
                l.id, l.crate_dir
            ));
        }
        // The binary sam build asks cargo-lambda for must be one the crate builds.
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or("");
        let manifest =
            std::fs::read_to_string(workspace_root().join(l.crate_dir).join("Cargo.toml"))
                .unwrap_or_default();
        let builds_it = manifest.lines().any(|line| {
            let line = line.trim();
            line.starts_with("name")
                && line.split('=').nth(1).map(|v| v.trim().trim_matches('"')) == Some(binary)
        });
        if binary.is_empty() || !builds_it {
            p.push(format!(
                "{}: BuildProperties.Binary {binary:?} is not a binary of {}/Cargo.toml",
                l.id, l.crate_dir
            ));
        }
        // Its own role, and its own log group named after it.
        let role = &props(t, l.id)["Role"];
        let role_id = format!("{}Role", l.id);
        if !is_get_att(role, &role_id, "Arn") {
            p.push(format!("{}: Role must be !GetAtt {role_id}.Arn", l.id));
        }
        let log_id = format!("{}LogGroup", l.id);
        let log = props(t, &log_id);
        if log.is_null() {
            p.push(format!("{}: no log group {log_id}", l.id));
        } else {
            let name = log["LogGroupName"]["Fn::Sub"].as_str().unwrap_or("");
            let fn_name = props(t, l.id)["FunctionName"]["Fn::Sub"]
                .as_str()
                .unwrap_or("?");
            if name != format!("/aws/lambda/{fn_name}") {
                p.push(format!(
                    "{log_id}: LogGroupName must be /aws/lambda/<FunctionName>"
                ));
            }
            if log["RetentionInDays"].is_null() {
                p.push(format!("{log_id}: no RetentionInDays"));
            }
            if log["KmsKeyId"].is_null() {
                p.push(format!("{log_id}: not KMS-encrypted"));
            }
        }
    }
    p
}

#[test]
fn functions_are_cargo_lambda_builds_of_the_workspace_crates() {
    assert_clean(check_functions(&load_template()));
}

/// The conversation sweep: crm-sync on a schedule with the input it recognises
/// (`crm_sync::is_sweep`), allowed to Query the report index's open partitions and nothing more.
pub(super) fn check_sweep(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let sweep = &props(t, "CrmSync")["Events"]["Sweep"];
    if sweep["Type"] != "Schedule" {
        p.push("CrmSync: no Sweep schedule".into());
    }
    let input: Value =
        serde_json::from_str(sweep["Properties"]["Input"].as_str().unwrap_or("null"))
            .unwrap_or_default();
    if input != json!({"sweep": true}) {
        p.push(format!(
            "CrmSync: the Sweep schedule's input must be {{\"sweep\": true}}, got {input}"
        ));
    }
    let schedule = sweep["Properties"]["Schedule"].as_str().unwrap_or_default();
    if !schedule.starts_with("rate(") {
        p.push(format!(
            "CrmSync: the Sweep schedule must be a rate, got {schedule:?}"
        ));
    }
    let statements: Vec<Value> = props(t, "CrmSyncRole")["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|policy| {
            policy["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let query = statements
        .iter()
        .filter(|s| strings(&s["Action"]).iter().any(|a| a == "dynamodb:Query"))
        .collect::<Vec<_>>();
    let on_index = |s: &&Value| s["Resource"] == json!({"Fn::Sub": "${Table.Arn}/index/report"});
    // The numbers registry's partition, and no other of the table (docs/numbers.md).
    let on_registry = |s: &&Value| {
        s["Resource"] == json!({"Fn::GetAtt": ["Table", "Arn"]})
            && s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                == json!(["numbers#*"])
    };
    if !query.iter().any(on_index) || !query.iter().all(|s| on_index(s) || on_registry(s)) {
        p.push(
            "CrmSyncRole: dynamodb:Query only on ${Table.Arn}/index/report and the numbers# partition"
                .into(),
        );
    }
    p
}

#[test]
fn the_sweep_schedules_crm_sync_with_query_on_the_report_index_only() {
    let t = load_template();
    assert_clean(check_sweep(&t));
    let mut broken = t.clone();
    broken["Resources"]["CrmSync"]["Properties"]["Events"]
        .as_object_mut()
        .unwrap()
        .remove("Sweep");
    assert!(!check_sweep(&broken).is_empty());
}
