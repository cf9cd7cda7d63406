//! The table: pk/sk keys, on demand, TTL, point-in-time recovery, encryption, and the
//! attribution report's index.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::*;

pub(super) fn check_data(t: &Value) -> Vec<String> {
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
    p.extend(check_claim_check_bucket(t));
    p.extend(check_media_bucket(t));
    p
}

/// What every bucket of the stack is: KMS with the stack's key and a bucket key, every public
/// access blocked, ACLs off (the bucket owner owns every object), no versioning (deleted data
/// must be gone), and a bucket policy denying requests without TLS.
fn check_private_bucket(t: &Value, id: &str) -> Vec<String> {
    let mut p = vec![];
    if t["Resources"][id]["Type"] != "AWS::S3::Bucket" {
        return vec![format!("{id}: missing AWS::S3::Bucket")];
    }
    let b = props(t, id);
    let rule = &b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    let sse = &rule["ServerSideEncryptionByDefault"];
    if sse["SSEAlgorithm"] != "aws:kms" || !refs(&sse["KMSMasterKeyID"]).contains("Key") {
        p.push(format!(
            "{id}: must be encrypted with aws:kms and the stack's Key"
        ));
    }
    // One KMS request per bucket key period, not one per object.
    if rule["BucketKeyEnabled"] != true {
        p.push(format!("{id}: BucketKeyEnabled must be true"));
    }
    let block = &b["PublicAccessBlockConfiguration"];
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        if block[flag] != true {
            p.push(format!("{id}: {flag} must be true"));
        }
    }
    if b["OwnershipControls"]["Rules"] != json!([{"ObjectOwnership": "BucketOwnerEnforced"}]) {
        p.push(format!("{id}: ObjectOwnership must be BucketOwnerEnforced"));
    }
    if b["VersioningConfiguration"]["Status"] == "Enabled" {
        p.push(format!("{id}: versioning would keep deleted data"));
    }
    let tls_only = resources(t).values().any(|r| {
        r["Type"] == "AWS::S3::BucketPolicy"
            && is_ref(&r["Properties"]["Bucket"], id)
            && r["Properties"]["PolicyDocument"]["Statement"]
                .as_array()
                .is_some_and(|a| {
                    a.iter().any(|st| {
                        st["Effect"] == "Deny"
                            && st["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                    })
                })
    });
    if !tls_only {
        p.push(format!(
            "{id}: a bucket policy must deny requests without TLS"
        ));
    }
    p
}

/// The enabled lifecycle rule of `bucket` with exactly this prefix (`None`: the whole bucket).
fn lifecycle_rule<'a>(t: &'a Value, bucket: &str, prefix: Option<&str>) -> Option<&'a Value> {
    props(t, bucket)["LifecycleConfiguration"]["Rules"]
        .as_array()?
        .iter()
        .find(|r| r["Status"] == "Enabled" && r["Prefix"].as_str() == prefix)
}

/// The claim-check bucket: private (above), and objects expiring when the events DLQ's
/// messages do.
fn check_claim_check_bucket(t: &Value) -> Vec<String> {
    let id = "ClaimCheckBucket";
    let mut p = check_private_bucket(t, id);
    if t["Resources"][id]["Type"] != "AWS::S3::Bucket" {
        return p;
    }
    let dlq_days = int(&props(t, "EventsDlq")["MessageRetentionPeriod"]).map(|s| s / 86_400);
    let expiry = lifecycle_rule(t, id, None).and_then(|r| int(&r["ExpirationInDays"]));
    if expiry.is_none() || expiry != dlq_days {
        p.push(format!(
            "{id}: a lifecycle rule must expire every object after the events DLQ's retention \
             ({dlq_days:?} days), found {expiry:?}"
        ));
    }
    // The queue takes every message ingest leaves on it (events up to the claim-check threshold,
    // with their JSON), and its DLQ takes whatever the queue holds.
    let size = |q: &str| int(&props(t, q)["MaximumMessageSize"]).unwrap_or(1_048_576);
    let threshold = wabridge_core::claim_check::CLAIM_CHECK_BYTES as i64;
    if size("EventsQueue") < threshold + 16 * 1024 {
        p.push(format!(
            "EventsQueue: MaximumMessageSize {} leaves no room over the claim-check threshold {threshold}",
            size("EventsQueue")
        ));
    }
    if size("EventsDlq") < size("EventsQueue") {
        p.push("EventsDlq: MaximumMessageSize must be at least the events queue's".into());
    }
    p
}

#[test]
fn the_claim_check_bucket_check_catches_public_unencrypted_or_long_lived_buckets() {
    let template = load_template();
    assert_clean(check_claim_check_bucket(&template));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t["Resources"]["ClaimCheckBucket"]["Properties"]);
        check_claim_check_bucket(&t)
    };
    let public =
        broken(&|b| b["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = json!(false));
    assert!(
        public.iter().any(|p| p.contains("BlockPublicPolicy")),
        "{public:?}"
    );
    let plain = broken(&|b| {
        b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            ["ServerSideEncryptionByDefault"] = json!({"SSEAlgorithm": "AES256"})
    });
    assert!(plain.iter().any(|p| p.contains("aws:kms")), "{plain:?}");
    let long = broken(&|b| b["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] = json!(90));
    assert!(long.iter().any(|p| p.contains("lifecycle")), "{long:?}");
    let versioned = broken(&|b| b["VersioningConfiguration"] = json!({"Status": "Enabled"}));
    assert!(
        versioned.iter().any(|p| p.contains("versioning")),
        "{versioned:?}"
    );
    let mut small = template.clone();
    small["Resources"]["EventsQueue"]["Properties"]["MaximumMessageSize"] = json!(65536);
    let small = check_claim_check_bucket(&small);
    assert!(small.iter().any(|p| p.contains("threshold")), "{small:?}");
}

/// The media bucket (docs/media.md): private (above); a stored file (`media/<sha256>`) expires
/// after the content retention, what an interrupted download left (the store's pending prefix,
/// an upload never completed) after a day.
fn check_media_bucket(t: &Value) -> Vec<String> {
    use wabridge_aws::s3_media::PENDING_PREFIX;
    let id = "MediaBucket";
    let mut p = check_private_bucket(t, id);
    if t["Resources"][id]["Type"] != "AWS::S3::Bucket" {
        return p;
    }
    let stored = lifecycle_rule(t, id, Some("media/"));
    if !stored.is_some_and(|r| is_ref(&r["ExpirationInDays"], "ContentRetentionDays")) {
        p.push(format!(
            "{id}: a lifecycle rule must expire media/ after ContentRetentionDays"
        ));
    }
    let pending = lifecycle_rule(t, id, Some(PENDING_PREFIX));
    if pending.and_then(|r| int(&r["ExpirationInDays"])) != Some(1) {
        p.push(format!(
            "{id}: a lifecycle rule must expire {PENDING_PREFIX} after 1 day"
        ));
    }
    // Uploads are started under the pending prefix: a rule on it or on the whole bucket.
    let aborts = [None, Some("media/"), Some(PENDING_PREFIX)]
        .into_iter()
        .filter_map(|prefix| lifecycle_rule(t, id, prefix))
        .any(|r| int(&r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]) == Some(1));
    if !aborts {
        p.push(format!(
            "{id}: a lifecycle rule must abort incomplete multipart uploads after 1 day"
        ));
    }
    p
}

#[test]
fn the_media_bucket_check_catches_public_unencrypted_or_unexpiring_buckets() {
    let template = load_template();
    assert_clean(check_media_bucket(&template));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut t = template.clone();
        f(&mut t["Resources"]["MediaBucket"]["Properties"]);
        check_media_bucket(&t)
    };
    let reports = |problems: Vec<String>, needle: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "expected {needle:?} in {problems:?}"
        );
    };
    reports(
        broken(&|b| b["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] = json!(false)),
        "MediaBucket: RestrictPublicBuckets must be true",
    );
    reports(
        broken(&|b| {
            b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                ["ServerSideEncryptionByDefault"] = json!({"SSEAlgorithm": "AES256"})
        }),
        "aws:kms",
    );
    reports(
        broken(&|b| {
            b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                .as_object_mut()
                .unwrap()
                .remove("BucketKeyEnabled");
        }),
        "BucketKeyEnabled",
    );
    reports(
        broken(&|b| {
            b.as_object_mut().unwrap().remove("OwnershipControls");
        }),
        "BucketOwnerEnforced",
    );
    reports(
        broken(&|b| b["VersioningConfiguration"] = json!({"Status": "Enabled"})),
        "versioning",
    );
    reports(
        broken(&|b| b["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] = json!(3650)),
        "expire media/ after ContentRetentionDays",
    );
    reports(
        broken(&|b| b["LifecycleConfiguration"]["Rules"][1]["Prefix"] = json!("pending/")),
        "expire media/.pending/ after 1 day",
    );
    reports(
        broken(&|b| {
            b["LifecycleConfiguration"]["Rules"]
                .as_array_mut()
                .unwrap()
                .retain(|r| r["AbortIncompleteMultipartUpload"].is_null())
        }),
        "abort incomplete multipart uploads",
    );
    reports(
        broken(&|b| {
            b.as_object_mut().unwrap().remove("LifecycleConfiguration");
        }),
        "expire media/ after ContentRetentionDays",
    );
    let mut open = template.clone();
    open["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("MediaBucketPolicy");
    reports(check_media_bucket(&open), "deny requests without TLS");
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
