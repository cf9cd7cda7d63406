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
