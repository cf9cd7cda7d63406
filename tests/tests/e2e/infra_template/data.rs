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
