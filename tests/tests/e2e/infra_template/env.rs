//! Every env name a function reads is set and is a name of shared/core/src/config/mod.rs; no secret
//! is an environment value or a parameter; the secret holds exactly the secret names.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};
use wabridge_core::config;

use super::*;

/// Env names a function may read that the template leaves unset on purpose: they name files
/// (a mapping or attribution config) a deployment would have to package with the function;
/// unset, the built-in defaults apply.
const OPTIONAL_ON_AWS: &[&str] = &[config::WABRIDGE_MAPPING, config::WABRIDGE_ATTRIBUTION];

/// Which env name holds which queue's URL.
const QUEUE_ENV: &[(&str, &str)] = &[
    (config::EVENTS_QUEUE_URL, "EventsQueue"),
    (config::EVENTS_DLQ_URL, "EventsDlq"),
    (config::SENDS_QUEUE_URL, "SendsQueue"),
    (config::SENDS_DLQ_URL, "SendsDlq"),
    (config::MEDIA_QUEUE_URL, "MediaQueue"),
    (config::MEDIA_DLQ_URL, "MediaDeadLetterQueue"),
    (config::DESTINATION_QUEUE_URL, "Destination1Queue"),
    (config::DESTINATION_DLQ_URL, "Destination1Dlq"),
    (config::DESTINATION_QUEUE_URL, "Destination2Queue"),
    (config::DESTINATION_DLQ_URL, "Destination2Dlq"),
    (config::DESTINATION_QUEUE_URL, "Destination3Queue"),
    (config::DESTINATION_DLQ_URL, "Destination3Dlq"),
];

/// Every `pub const NAME: &str = "NAME";` of config/mod.rs: the one list of env names.
fn config_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join("shared/core/src/config/mod.rs"))
        .expect("config/mod.rs");
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": &str = \"")?;
            let value = rest.strip_suffix("\";")?;
            (name == value).then(|| value.to_string())
        })
        .collect()
}

/// Env names a function crate's own sources read through `config::NAME`.
fn names_read_by_crate(dir: &Path, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.join("src")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for part in text.split("config::").skip(1) {
                    let name: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if known.contains(&name) {
                        found.insert(name);
                    }
                }
            }
        }
    }
    found
}

pub(super) fn check_env(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let known = config_names();
    let secrets: BTreeSet<&str> = config::SECRET_NAMES.iter().copied().collect();
    for l in LAMBDAS {
        let vars = props(t, l.id)["Environment"]["Variables"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for name in l.env {
            if !vars.contains_key(*name) {
                p.push(format!(
                    "{}: env {name} (read by the function) is not set",
                    l.id
                ));
            }
        }
        // Names the crate's own code reads must be set too (or be deliberately optional).
        for name in names_read_by_crate(&workspace_root().join(l.crate_dir), &known) {
            if !vars.contains_key(&name)
                && !secrets.contains(name.as_str())
                && !OPTIONAL_ON_AWS.contains(&name.as_str())
            {
                p.push(format!(
                    "{}: {} reads config::{name}, which the template does not set",
                    l.id, l.crate_dir
                ));
            }
        }
        for (name, value) in &vars {
            if !known.contains(name) {
                p.push(format!(
                    "{}: env {name} is not a name in shared/core/src/config/mod.rs",
                    l.id
                ));
            }
            if secrets.contains(name.as_str()) {
                p.push(format!(
                    "{}: secret {name} must not be an environment value (it belongs in the secret)",
                    l.id
                ));
            }
            if value.is_string() && !value.as_str().unwrap_or("").is_empty() {
                // Literal values are fine for non-secrets; references must resolve to resources
                // or parameters of this template.
            }
            for r in refs(value) {
                if t["Resources"].get(&r).is_none()
                    && t["Parameters"].get(&r).is_none()
                    && !r.starts_with("AWS::")
                {
                    p.push(format!("{}: env {name} refers to unknown {r}", l.id));
                }
            }
        }
        // A queue it uses must reach it by the URL env name of config/mod.rs.
        let used = l.sends_to.iter().chain(l.consumes.iter().map(|(q, _)| q));
        for queue in used {
            let (env, _) = QUEUE_ENV
                .iter()
                .find(|(_, q)| q == queue)
                .expect("known queue");
            if !vars.get(*env).is_some_and(|v| is_ref(v, queue)) {
                p.push(format!(
                    "{}: uses {queue} but {env} is not !Ref {queue}",
                    l.id
                ));
            }
        }
        if !is_ref(
            &vars
                .get(config::WABRIDGE_SECRETS_ARN)
                .cloned()
                .unwrap_or_default(),
            "Secret",
        ) {
            p.push(format!(
                "{}: WABRIDGE_SECRETS_ARN must be !Ref Secret",
                l.id
            ));
        }
    }
    // No parameter may carry a secret.
    if let Some(params) = t["Parameters"].as_object() {
        for (name, param) in params {
            let desc = param["Description"].as_str().unwrap_or("");
            for s in config::SECRET_NAMES {
                if desc.contains(s) && !desc.contains("secret") {
                    p.push(format!("parameter {name} looks like it carries {s}"));
                }
            }
            let lower = name.to_lowercase();
            if ["token", "secret", "apikey", "password"]
                .iter()
                .any(|w| lower.contains(w))
            {
                p.push(format!(
                    "parameter {name} looks like a secret: secrets go in the Secret"
                ));
            }
        }
    }
    p
}

pub(super) fn check_secret(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let s = &t["Resources"]["Secret"];
    if s["Type"] != "AWS::SecretsManager::Secret" {
        return vec!["Secret: missing AWS::SecretsManager::Secret".into()];
    }
    let gen = &s["Properties"]["GenerateSecretString"];
    let template: Map<String, Value> =
        serde_json::from_str(gen["SecretStringTemplate"].as_str().unwrap_or("{}"))
            .unwrap_or_default();
    let mut keys: BTreeSet<String> = template.keys().cloned().collect();
    if let Some(k) = gen["GenerateStringKey"].as_str() {
        keys.insert(k.to_string());
    }
    let want: BTreeSet<String> = config::SECRET_NAMES.iter().map(|s| s.to_string()).collect();
    if keys != want {
        p.push(format!(
            "Secret: keys {keys:?} differ from config::SECRET_NAMES {want:?}"
        ));
    }
    if template
        .values()
        .any(|v| v.as_str().is_some_and(|v| !v.is_empty()))
    {
        p.push("Secret: the template must not hold secret values".into());
    }
    if gen["GenerateStringKey"] != config::WHATSAPP_VERIFY_TOKEN {
        p.push("Secret: WHATSAPP_VERIFY_TOKEN should be generated".into());
    }
    if s["Properties"]["KmsKeyId"].is_null() {
        p.push("Secret: not encrypted with the stack's key".into());
    }
    p
}

#[test]
fn every_env_name_a_function_reads_is_set_and_no_secret_is_plain() {
    assert_clean(check_env(&load_template()));
}

#[test]
fn the_secret_holds_exactly_the_secret_names() {
    assert_clean(check_secret(&load_template()));
}
