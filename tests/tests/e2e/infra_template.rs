//! The SAM template (infra/template.yaml) checked against the code: every resource of the flow,
//! every output, every env name a function reads (shared/core/src/config.rs is the one list), the
//! secret's keys, least-privilege roles, queues with dead-letter queues, alarms.
//!
//! The template is read with a YAML parser that keeps CloudFormation's short tags (`!Ref`,
//! `!GetAtt`, `!Sub`, ...) and turns them into their long JSON forms, so no Python is needed.
//! Each check returns its problems; the `*_catches_*` tests feed it a broken copy of the
//! template and require the problem to be reported, so the checks can fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use wabridge_core::config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

// ------------------------------------------------------------------ reading the template

/// YAML with CloudFormation tags → JSON with the long forms (`!Ref X` → `{"Ref": "X"}`).
fn yaml_to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml_ng::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: inner }),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (res, attr) = s.split_once('.').unwrap_or((&s, ""));
                        json!({ "Fn::GetAtt": [res, attr] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): inner }),
            }
        }
    }
}

fn load_template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the SAM template is missing)", path.display()));
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("infra/template.yaml: {e}"));
    yaml_to_json(yaml)
}

fn resources(t: &Value) -> &Map<String, Value> {
    t["Resources"].as_object().expect("Resources is a mapping")
}

fn props<'a>(t: &'a Value, id: &str) -> &'a Value {
    &t["Resources"][id]["Properties"]
}

/// A function's property, falling back to `Globals.Function`.
fn fn_prop<'a>(t: &'a Value, id: &str, name: &str) -> &'a Value {
    let own = &props(t, id)[name];
    if own.is_null() {
        &t["Globals"]["Function"][name]
    } else {
        own
    }
}

fn is_ref(v: &Value, id: &str) -> bool {
    v.get("Ref").and_then(Value::as_str) == Some(id)
}

fn is_get_att(v: &Value, id: &str, attr: &str) -> bool {
    v.get("Fn::GetAtt")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() == 2 && a[0] == id && a[1] == attr)
}

/// Logical ids a fragment refers to (Ref, GetAtt, `${X}` / `${X.Attr}` in Sub).
fn refs(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                for (k, arg) in map {
                    match (k.as_str(), arg) {
                        ("Ref", Value::String(s)) => {
                            out.insert(s.clone());
                        }
                        ("Fn::GetAtt", Value::Array(a)) => {
                            if let Some(s) = a.first().and_then(Value::as_str) {
                                out.insert(s.to_string());
                            }
                        }
                        ("Fn::Sub", Value::String(s)) => {
                            for part in s.split("${").skip(1) {
                                if let Some(end) = part.find('}') {
                                    let var = &part[..end];
                                    out.insert(var.split('.').next().unwrap_or(var).to_string());
                                }
                            }
                        }
                        _ => walk(arg, out),
                    }
                }
            }
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// An integer property, resolving `!Ref Parameter` to the parameter's default.
fn int_or_param(t: &Value, v: &Value) -> Option<i64> {
    int(v).or_else(|| {
        let name = v.get("Ref")?.as_str()?;
        int(&t["Parameters"][name]["Default"])
    })
}

// ------------------------------------------------------------------ the contract

/// The Lambdas: logical id, crate folder, and the env names each reads besides the secrets
/// (which come from the secret named by `WABRIDGE_SECRETS_ARN`). Proposed for
/// shared/core/src/config.rs as `INGEST_ENV`, `CRM_SYNC_ENV`, `SENDER_ENV`.
struct Lambda {
    id: &'static str,
    crate_dir: &'static str,
    env: &'static [&'static str],
    /// Queue its SQS event source reads, with its dead-letter queue.
    consumes: Option<(&'static str, &'static str)>,
    /// Queues it sends to (sqs:SendMessage).
    sends_to: &'static [&'static str],
}

const INGEST_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::EVENTS_QUEUE_URL,
    config::SENDS_QUEUE_URL,
    config::WABRIDGE_SECRETS_ARN,
    config::WABRIDGE_MAX_BODY_BYTES,
];
const ATTRIBUTION_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::WABRIDGE_SECRETS_ARN,
    config::META_DATASET_ID,
    config::WHATSAPP_API_URL,
    config::WHATSAPP_API_VERSION,
];
const CRM_SYNC_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::EVENTS_QUEUE_URL,
    config::EVENTS_DLQ_URL,
    config::WABRIDGE_SECRETS_ARN,
    config::CRM_KIND,
    config::CRM_WEBHOOK_URL,
    config::HUBSPOT_API_URL,
];
const SENDER_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::SENDS_QUEUE_URL,
    config::SENDS_DLQ_URL,
    config::EVENTS_QUEUE_URL,
    config::WABRIDGE_SECRETS_ARN,
    config::WHATSAPP_PHONE_NUMBER_ID,
    config::WHATSAPP_API_URL,
    config::WHATSAPP_API_VERSION,
    config::WABRIDGE_SENDS_PER_SECOND,
    config::WABRIDGE_SENDER_INSTANCES,
];

const LAMBDAS: &[Lambda] = &[
    Lambda {
        id: "Ingest",
        crate_dir: "functions/ingest",
        env: INGEST_ENV,
        consumes: None,
        sends_to: &["EventsQueue", "SendsQueue"],
    },
    Lambda {
        id: "Attribution",
        crate_dir: "functions/attribution",
        env: ATTRIBUTION_ENV,
        consumes: None,
        sends_to: &[],
    },
    Lambda {
        id: "CrmSync",
        crate_dir: "functions/crm-sync",
        env: CRM_SYNC_ENV,
        consumes: Some(("EventsQueue", "EventsDlq")),
        // Explicit dead letters (validation failures, CRM rejections) with their reason; the
        // send_result event of a 131050 status back on the events queue.
        sends_to: &["EventsDlq", "EventsQueue"],
    },
    Lambda {
        id: "Sender",
        crate_dir: "functions/sender",
        env: SENDER_ENV,
        consumes: Some(("SendsQueue", "SendsDlq")),
        // Terminal send errors with their reason; send_result events for crm-sync.
        sends_to: &["SendsDlq", "EventsQueue"],
    },
];

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
];

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
    "SecretArn",
    "VerifyTokenCommand",
    "AlarmTopicArn",
    "DashboardUrl",
];

/// Every `pub const NAME: &str = "NAME";` of config.rs: the one list of env names.
fn config_names() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(root().join("shared/core/src/config.rs")).expect("config.rs");
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

// ------------------------------------------------------------------ checks

fn check_functions(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let members = std::fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
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
        let manifest = std::fs::read_to_string(root().join(l.crate_dir).join("Cargo.toml"))
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

fn check_env(t: &Value) -> Vec<String> {
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
        for name in names_read_by_crate(&root().join(l.crate_dir), &known) {
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
                    "{}: env {name} is not a name in shared/core/src/config.rs",
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
        // A queue it uses must reach it by the URL env name of config.rs.
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

fn check_secret(t: &Value) -> Vec<String> {
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

fn check_data(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let table = props(t, "Table");
    if t["Resources"]["Table"]["Type"] != "AWS::DynamoDB::Table" {
        return vec!["Table: missing AWS::DynamoDB::Table".into()];
    }
    let keys = json!([
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"}
    ]);
    if table["KeySchema"] != keys {
        p.push("Table: KeySchema must be pk HASH, sk RANGE".into());
    }
    for (name, ty) in [("pk", "S"), ("sk", "S")] {
        let ok = table["AttributeDefinitions"].as_array().is_some_and(|a| {
            a.iter()
                .any(|d| d["AttributeName"] == name && d["AttributeType"] == ty)
        });
        if !ok {
            p.push(format!("Table: attribute {name} must be {ty}"));
        }
    }
    if table["BillingMode"] != "PAY_PER_REQUEST" {
        p.push("Table: BillingMode must be PAY_PER_REQUEST".into());
    }
    if table["TimeToLiveSpecification"]
        != json!({"AttributeName": wabridge_aws::dynamo::EXPIRES_AT, "Enabled": true})
    {
        p.push("Table: TTL must be enabled on expires_at".into());
    }
    if table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] != true {
        p.push("Table: point-in-time recovery must be on".into());
    }
    if table["SSESpecification"]["SSEEnabled"] != true {
        p.push("Table: SSE must be on".into());
    }
    p.extend(check_report_index(table));
    p
}

/// The attribution report's index as the DynamoDB adapter reads it.
fn check_report_index(table: &Value) -> Vec<String> {
    use wabridge_aws::dynamo::attribution::{
        REPORT_AT, REPORT_ATTRIBUTES, REPORT_INDEX, REPORT_PERIOD,
    };
    let mut p = vec![];
    for (name, ty) in [(REPORT_PERIOD, "S"), (REPORT_AT, "N")] {
        let ok = table["AttributeDefinitions"].as_array().is_some_and(|a| {
            a.iter()
                .any(|d| d["AttributeName"] == name && d["AttributeType"] == ty)
        });
        if !ok {
            p.push(format!("Table: attribute {name} must be {ty}"));
        }
    }
    let index = table["GlobalSecondaryIndexes"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["IndexName"] == REPORT_INDEX));
    let Some(index) = index else {
        p.push(format!("Table: no global secondary index {REPORT_INDEX}"));
        return p;
    };
    let keys = json!([
        {"AttributeName": REPORT_PERIOD, "KeyType": "HASH"},
        {"AttributeName": REPORT_AT, "KeyType": "RANGE"}
    ]);
    if index["KeySchema"] != keys {
        p.push(format!(
            "{REPORT_INDEX}: KeySchema must be {REPORT_PERIOD} HASH, {REPORT_AT} RANGE"
        ));
    }
    let projected: BTreeSet<&str> = index["Projection"]["NonKeyAttributes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let all = index["Projection"]["ProjectionType"] == "ALL";
    if !all && !REPORT_ATTRIBUTES.iter().all(|a| projected.contains(a)) {
        p.push(format!(
            "{REPORT_INDEX}: must project {}",
            REPORT_ATTRIBUTES.join(", ")
        ));
    }
    p
}

fn check_queues(t: &Value) -> Vec<String> {
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
        if !int(&redrive["maxReceiveCount"]).is_some_and(|n| (2..=20).contains(&n)) {
            p.push(format!("{queue}: maxReceiveCount must be set (2..=20)"));
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

/// The functions behind a public Function URL: ingest (Meta, CRM workflows) and attribution.
const URL_FUNCTIONS: &[&str] = &["Ingest", "Attribution"];

fn check_url(t: &Value) -> Vec<String> {
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

fn check_iam(t: &Value) -> Vec<String> {
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
                    || a == "dynamodb:Scan"
                {
                    p.push(format!(
                        "{role_id}: {a} on the table is more than item access"
                    ));
                }
            }
            want.insert("Table".into(), table.clone());
        } else {
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

/// (namespace, metric, resource the dimension names) of each alarm.
fn alarms(t: &Value) -> Vec<(String, String, String, bool)> {
    resources(t)
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| {
            let pr = &r["Properties"];
            let target = pr["Dimensions"]
                .as_array()
                .and_then(|d| d.first())
                .map(|d| refs(&d["Value"]).into_iter().next().unwrap_or_default())
                .unwrap_or_default();
            let notifies = pr["AlarmActions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| is_ref(x, "AlarmTopic")));
            (
                pr["Namespace"].as_str().unwrap_or("").to_string(),
                pr["MetricName"].as_str().unwrap_or("").to_string(),
                target,
                notifies,
            )
        })
        .collect()
}

fn check_alarms(t: &Value) -> Vec<String> {
    let mut p = vec![];
    if t["Resources"]["AlarmTopic"]["Type"] != "AWS::SNS::Topic" {
        p.push("AlarmTopic: missing AWS::SNS::Topic".into());
    }
    let have = alarms(t);
    let mut want = vec![
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "EventsDlq"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "SendsDlq"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "EventsQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "SendsQueue"),
    ];
    for l in LAMBDAS {
        want.push(("AWS/Lambda", "Errors", l.id));
        want.push(("AWS/Lambda", "Throttles", l.id));
    }
    for (ns, metric, target) in want {
        match have
            .iter()
            .find(|a| a.0 == ns && a.1 == metric && a.2 == target)
        {
            None => p.push(format!("no alarm on {ns} {metric} of {target}")),
            Some(a) if !a.3 => p.push(format!("alarm on {metric} of {target} notifies no one")),
            _ => {}
        }
    }
    if t["Resources"]["Dashboard"]["Type"] != "AWS::CloudWatch::Dashboard" {
        p.push("Dashboard: missing AWS::CloudWatch::Dashboard".into());
    }
    p
}

fn check_outputs(t: &Value) -> Vec<String> {
    OUTPUTS
        .iter()
        .filter(|o| t["Outputs"][**o]["Value"].is_null())
        .map(|o| format!("output {o} is missing"))
        .collect()
}

/// checkov skips are allowed only with a reason written beside them.
fn check_skips(t: &Value) -> Vec<String> {
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

fn assert_clean(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "infra/template.yaml:\n  {}",
        problems.join("\n  ")
    );
}

// ------------------------------------------------------------------ tests

#[test]
fn functions_are_cargo_lambda_builds_of_the_workspace_crates() {
    assert_clean(check_functions(&load_template()));
}

#[test]
fn every_env_name_a_function_reads_is_set_and_no_secret_is_plain() {
    assert_clean(check_env(&load_template()));
}

#[test]
fn the_secret_holds_exactly_the_secret_names() {
    assert_clean(check_secret(&load_template()));
}

#[test]
fn table_is_on_demand_with_ttl_pitr_and_encryption() {
    assert_clean(check_data(&load_template()));
}

#[test]
fn the_report_index_check_catches_a_missing_or_short_index() {
    let template = load_template();
    let table = &template["Resources"]["Table"]["Properties"];
    assert_clean(check_report_index(table));
    let mut short = table.clone();
    short["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"] = json!(["utm_source"]);
    assert!(!check_report_index(&short).is_empty());
    let mut none = table.clone();
    none.as_object_mut()
        .unwrap()
        .remove("GlobalSecondaryIndexes");
    assert!(!check_report_index(&none).is_empty());
}

#[test]
fn queues_have_dead_letters_and_consumers_report_partial_failures() {
    assert_clean(check_queues(&load_template()));
}

#[test]
fn ingest_is_reachable_through_a_function_url() {
    assert_clean(check_url(&load_template()));
}

#[test]
fn roles_grant_only_what_each_function_uses() {
    assert_clean(check_iam(&load_template()));
}

#[test]
fn alarms_cover_dead_letters_backlog_errors_and_throttles() {
    assert_clean(check_alarms(&load_template()));
}

#[test]
fn every_checkov_skip_is_justified_inline() {
    assert_clean(check_skips(&load_template()));
}

#[test]
fn outputs_give_the_webhook_url_verify_token_and_resource_names() {
    assert_clean(check_outputs(&load_template()));
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
        "env WABRIDGE_TABEL is not a name in shared/core/src/config.rs",
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
