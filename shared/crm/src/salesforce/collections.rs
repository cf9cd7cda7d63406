//! Upserts by External ID through sObject Collections:
//! `PATCH /composite/sobjects/{Object}/{Field}` with `{"allOrNone": false, "records": [...]}`,
//! each record carrying `attributes.type` and the External ID field. Up to 200 records a call,
//! counted as ONE call of the org's allocation; Salesforce answers 200 with one `UpsertResult`
//! per record, in order (`{"id","success","errors":[{"statusCode","message","fields"}],
//! "created"}`), or 400 for a malformed request (the batcher then sends each record alone).

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::api::Client;
use crate::batch::{BatchAnswer, BatchOp};
use crate::classify_status;
use wabridge_core::crm::CrmError;

/// Record errors that are the org's set-up (field-level security, sharing), not the record:
/// events wait for someone to grant the access.
const ACCESS_ERRORS: &[&str] = &[
    "INSUFFICIENT_ACCESS_OR_READONLY",
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
];

/// What an upsert did to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upserted {
    pub id: String,
    pub created: bool,
}

pub(crate) struct UpsertOp {
    client: Arc<Client>,
    object: String,
    field: String,
}

impl UpsertOp {
    pub fn new(client: Arc<Client>, object: &str, field: &str) -> UpsertOp {
        UpsertOp {
            client,
            object: object.into(),
            field: field.into(),
        }
    }
}

/// One record's result in the error classes.
fn result(r: &Value) -> Result<Upserted, CrmError> {
    if r["success"] == true {
        return match r["id"].as_str() {
            Some(id) => Ok(Upserted {
                id: id.to_string(),
                created: r["created"] == true,
            }),
            None => Err(CrmError::Transient("upsert answered without an id".into())),
        };
    }
    let errors = r["errors"].to_string();
    let code = r["errors"][0]["statusCode"].as_str().unwrap_or_default();
    if ACCESS_ERRORS.contains(&code) {
        return Err(classify_status(403, None, &errors));
    }
    if code == "UNABLE_TO_LOCK_ROW" {
        // Another process writes the same record (one conversation's Case) at this instant.
        return Err(CrmError::Transient(
            "record locked (UNABLE_TO_LOCK_ROW)".into(),
        ));
    }
    // The record's fault (`REQUIRED_FIELD_MISSING`, `STRING_TOO_LONG`, `DUPLICATE_VALUE`…),
    // as a 400 would have said.
    Err(classify_status(400, None, &errors))
}

#[async_trait]
impl BatchOp for UpsertOp {
    type Input = Map<String, Value>;
    type Output = Upserted;

    async fn run(&self, inputs: &[Map<String, Value>]) -> BatchAnswer<Upserted> {
        let records: Vec<Value> = inputs
            .iter()
            .map(|fields| {
                let mut record = Map::new();
                record.insert("attributes".into(), json!({"type": self.object}));
                record.extend(fields.clone());
                Value::Object(record)
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let path = format!("/composite/sobjects/{}/{}", self.object, self.field);
        match self.client.call(Method::PATCH, &path, Some(&body)).await {
            Ok(Value::Array(results)) => BatchAnswer::Each(results.iter().map(result).collect()),
            Ok(other) => BatchAnswer::Whole(CrmError::Transient(format!(
                "sObject Collections answered {} instead of a result list",
                if other.is_null() {
                    "nothing"
                } else {
                    "an object"
                }
            ))),
            Err(e) => BatchAnswer::Whole(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_results_are_classified() {
        let ok = json!({"id": "003R000000ABCDEF", "success": true, "errors": [], "created": true});
        assert_eq!(
            result(&ok),
            Ok(Upserted {
                id: "003R000000ABCDEF".into(),
                created: true
            })
        );
        let bad = json!({"success": false, "errors": [{"statusCode": "STRING_TOO_LONG",
            "message": "Mobile: data value too large: +5215512345678", "fields": ["MobilePhone"]}]});
        assert!(
            matches!(result(&bad), Err(CrmError::Rejected(m)) if m.contains("STRING_TOO_LONG") && !m.contains("5512345678"))
        );
        let fls = json!({"success": false, "errors": [{"statusCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
            "message": "Unable to create/update fields: WhatsApp_Id__c", "fields": ["WhatsApp_Id__c"]}]});
        assert!(matches!(result(&fls), Err(CrmError::Unauthorized(_))));
        let locked = json!({"success": false, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW",
            "message": "unable to obtain exclusive access to this record", "fields": []}]});
        assert!(matches!(result(&locked), Err(CrmError::Transient(_))));
    }
}
