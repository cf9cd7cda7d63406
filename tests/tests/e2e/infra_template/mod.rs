//! The SAM template (infra/template.yaml) checked against the code: every resource of the flow,
//! every output, every env name a function reads (shared/core/src/config/mod.rs is the one list), the
//! secret's keys, least-privilege roles, queues with dead-letter queues, alarms.
//!
//! The template is read with a YAML parser that keeps CloudFormation's short tags (`!Ref`,
//! `!GetAtt`, `!Sub`, ...) and turns them into their long JSON forms, so no Python is needed.
//! Each check returns its problems; the `*_catches_*` tests feed it a broken copy of the
//! template and require the problem to be reported, so the checks can fail.

mod access;
mod alarms;
mod business_alarms;
mod data;
mod destinations;
mod env;
mod functions;
mod queues;
mod self_tests;
mod stack;
mod template_sync;

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use wabridge_core::config;
use wabridge_tests::workspace_root;

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
    let path = workspace_root().join("infra/template.yaml");
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
/// shared/core/src/config/mod.rs as `INGEST_ENV`, `CRM_SYNC_ENV`, `SENDER_ENV`.
struct Lambda {
    id: &'static str,
    crate_dir: &'static str,
    env: &'static [&'static str],
    /// Queue its SQS event source reads, with its dead-letter queue.
    consumes: Option<(&'static str, &'static str)>,
    /// Queues it sends to (sqs:SendMessage).
    sends_to: &'static [&'static str],
    /// What it does with the claim-check bucket's objects (S3 object actions).
    claim_check: &'static [&'static str],
    /// What it does with the media bucket (object actions, and `s3:ListBucket`, without which
    /// S3 answers a missing key with 403).
    media: &'static [&'static str],
}

const INGEST_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::EVENTS_QUEUE_URL,
    config::SENDS_QUEUE_URL,
    config::CLAIM_CHECK_BUCKET,
    config::WABRIDGE_SECRETS_ARN,
    config::WABRIDGE_MAX_BODY_BYTES,
    config::MEDIA_BUCKET,
    // The mapping's catalogues for PATCH /conversations/{id} and /sends' agent.
    config::CRM_KIND,
];
const ATTRIBUTION_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::WABRIDGE_SECRETS_ARN,
    config::META_DATASET_ID,
    config::WHATSAPP_API_URL,
    config::WHATSAPP_API_VERSION,
    // A conversion's outcome goes to crm-sync.
    config::EVENTS_QUEUE_URL,
];
const CRM_SYNC_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::EVENTS_QUEUE_URL,
    config::EVENTS_DLQ_URL,
    config::CLAIM_CHECK_BUCKET,
    config::WABRIDGE_SECRETS_ARN,
    config::CRM_KIND,
    config::CRM_WEBHOOK_URL,
    config::HUBSPOT_API_URL,
    config::MEDIA_QUEUE_URL,
    config::WABRIDGE_FIRST_RESPONSE_SLA_MINUTES,
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
    config::MEDIA_BUCKET,
];

const MEDIA_ENV: &[&str] = &[
    config::WABRIDGE_TABLE,
    config::MEDIA_QUEUE_URL,
    config::MEDIA_DLQ_URL,
    config::EVENTS_QUEUE_URL,
    config::MEDIA_BUCKET,
    config::WABRIDGE_SECRETS_ARN,
    config::WHATSAPP_API_URL,
    config::WHATSAPP_API_VERSION,
    config::WABRIDGE_PUBLIC_URL,
    config::WABRIDGE_CONTENT_RETENTION_DAYS,
];

/// A destination slot's relay function (docs/destinations.md): its own queue, dead letters and
/// the claim-checked events it reads (never deletes: other queues' consumers read them too).
const RELAY_ENV: &[&str] = &[
    config::DESTINATION_NAME,
    config::DESTINATION_KIND,
    config::DESTINATION_URL,
    config::DESTINATION_SECRET_KEY,
    config::DESTINATION_QUEUE_URL,
    config::DESTINATION_DLQ_URL,
    config::CLAIM_CHECK_BUCKET,
    config::WABRIDGE_SECRETS_ARN,
    config::WABRIDGE_RETRY_HORIZON,
    // The delivery log (`wabridge replay`), kept the content retention.
    config::WABRIDGE_TABLE,
    config::WABRIDGE_CONTENT_RETENTION_DAYS,
];

/// The destination slots of the template; each is checked as every function and queue is, and
/// [`destinations`] checks the slots are copies of the first.
const DESTINATION_SLOTS: &[&str] = &["Destination1", "Destination2", "Destination3"];

macro_rules! relay_slot {
    ($id:literal, $queue:literal, $dlq:literal) => {
        Lambda {
            id: $id,
            crate_dir: "functions/relay",
            env: RELAY_ENV,
            consumes: Some(($queue, $dlq)),
            sends_to: &[$dlq],
            claim_check: &["s3:GetObject"],
            media: &[],
        }
    };
}

/// Functions that keep no state: no table grant (every other function needs one; the relay
/// functions log their deliveries for `wabridge replay`).
const WITHOUT_TABLE: &[&str] = &[];

/// Topics a function publishes to (sns:Publish).
const PUBLISHES: &[(&str, &str)] = &[("Ingest", "EventsTopic")];

const LAMBDAS: &[Lambda] = &[
    Lambda {
        id: "Ingest",
        crate_dir: "functions/ingest",
        env: INGEST_ENV,
        consumes: None,
        sends_to: &["EventsQueue", "SendsQueue"],
        // Writes events too large for SQS.
        claim_check: &["s3:PutObject"],
        // Presigns GET /media's redirects and uploads' PUTs with its own role; checks uploads
        // and copies them to their content address; erasures delete files.
        media: &[
            "s3:ListBucket",
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
        ],
    },
    Lambda {
        id: "Attribution",
        crate_dir: "functions/attribution",
        env: ATTRIBUTION_ENV,
        consumes: None,
        // A conversion's `converted` outcome, for crm-sync.
        sends_to: &["EventsQueue"],
        claim_check: &[],
        media: &[],
    },
    Lambda {
        id: "CrmSync",
        crate_dir: "functions/crm-sync",
        env: CRM_SYNC_ENV,
        consumes: Some(("EventsQueue", "EventsDlq")),
        // Explicit dead letters (validation failures, CRM rejections) with their reason; the
        // send_result event of a 131050 status back on the events queue; media jobs.
        sends_to: &["EventsDlq", "EventsQueue", "MediaQueue"],
        // Reads them back, tombstones and deletes them once done.
        claim_check: &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        media: &[],
    },
    Lambda {
        id: "Sender",
        crate_dir: "functions/sender",
        env: SENDER_ENV,
        consumes: Some(("SendsQueue", "SendsDlq")),
        // Terminal send errors with their reason; send_result events for crm-sync.
        sends_to: &["SendsDlq", "EventsQueue"],
        claim_check: &[],
        // Reads media sends' files; ListBucket so a missing key is 404, not 403.
        media: &["s3:GetObject", "s3:ListBucket"],
    },
    Lambda {
        id: "MediaFunction",
        crate_dir: "functions/media",
        env: MEDIA_ENV,
        consumes: Some(("MediaQueue", "MediaDeadLetterQueue")),
        // Quarantined files with their reason; media_result events for crm-sync.
        sends_to: &["MediaDeadLetterQueue", "EventsQueue"],
        claim_check: &[],
        // Multipart uploads, copies to the content address, removal of what it left pending.
        media: &[
            "s3:ListBucket",
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
        ],
    },
    relay_slot!("Destination1", "Destination1Queue", "Destination1Dlq"),
    relay_slot!("Destination2", "Destination2Queue", "Destination2Dlq"),
    relay_slot!("Destination3", "Destination3Queue", "Destination3Dlq"),
];

/// Every queue of the stack with its dead-letter queue. Each needs a consumer in [`LAMBDAS`]
/// unless it is listed in [`AWAITING_CONSUMER`].
const QUEUES: &[(&str, &str)] = &[
    ("EventsQueue", "EventsDlq"),
    ("SendsQueue", "SendsDlq"),
    ("MediaQueue", "MediaDeadLetterQueue"),
    ("Destination1Queue", "Destination1Dlq"),
    ("Destination2Queue", "Destination2Dlq"),
    ("Destination3Queue", "Destination3Dlq"),
];

/// Queues the template declares before their consumer lands, with where it comes from. The
/// queue is checked as every other (dead letters, encryption, alarms); a queue listed here that
/// gains a consumer must leave the list, so the consumer's checks apply. (MediaQueue waited
/// here until the media function landed.)
const AWAITING_CONSUMER: &[(&str, &str)] = &[];

fn assert_clean(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "infra/template.yaml:\n  {}",
        problems.join("\n  ")
    );
}
