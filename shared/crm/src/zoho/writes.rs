//! Record writes batched across events: the upserts of one module on one set of
//! `duplicate_check_fields` (`POST /crm/v8/{module}/upsert`), and the inserts of one module
//! (`POST /crm/v8/Notes`, `POST /crm/v8/Deals`), up to 100 records a call, Zoho's maximum.
//!
//! Zoho answers each record in `data[]`, in order (`{"code":"SUCCESS","action":"insert",
//! "details":{"id"},"status":"success"}` or `{"code":"INVALID_DATA","details":{"api_name",
//! "json_path"},"status":"error"}`): 200 or 201 when all landed, 207 Multi-Status when some did,
//! 400 when none did. Each record's answer goes to its own event; an answer for the call as a
//! whole (429, 5xx, 401, a 400 naming no record) to all of them (`crate::batch`).

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::api::Client;
use crate::batch::{BatchAnswer, BatchOp};
use crate::classify_status;
use wabridge_core::crm::CrmError;

/// What a write did to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub id: String,
    /// Whether Zoho inserted it (an upsert that matched no record, or an insert).
    pub inserted: bool,
}

/// The writes to one endpoint: an upsert on `checks`, or a plain insert when `checks` is empty.
pub(crate) struct WriteOp {
    client: Arc<Client>,
    /// `/Contacts/upsert`, `/Notes`.
    path: String,
    checks: Vec<String>,
}

impl WriteOp {
    pub fn new(client: Arc<Client>, path: &str, checks: &[String]) -> WriteOp {
        WriteOp {
            client,
            path: path.into(),
            checks: checks.to_vec(),
        }
    }
}

/// One record's answer in the error classes.
fn result(r: &Value) -> Result<Written, CrmError> {
    if r["status"] == "success" {
        return match r["details"]["id"].as_str() {
            Some(id) => Ok(Written {
                id: id.to_string(),
                // Inserts answer without an `action`; upserts say which they did.
                inserted: r["action"].as_str().is_none_or(|a| a == "insert"),
            }),
            None => Err(CrmError::Transient(
                "Zoho answered a record without its id".into(),
            )),
        };
    }
    // The record's fault (`INVALID_DATA`, `MANDATORY_NOT_FOUND`, `DUPLICATE_DATA`), as a
    // 400 for it alone would have said.
    Err(classify_status(400, None, &r.to_string()))
}

#[async_trait]
impl BatchOp for WriteOp {
    type Input = Map<String, Value>;
    type Output = Written;

    /// The batch is taken when a call could start: it holds every record that arrived while
    /// the org's calls in flight held it back.
    async fn gate(&self) {
        self.client.ready().await
    }

    async fn run(&self, inputs: &[Map<String, Value>]) -> BatchAnswer<Written> {
        let mut body = json!({ "data": inputs });
        if !self.checks.is_empty() {
            body["duplicate_check_fields"] = json!(self.checks);
        }
        match self
            .client
            .write_records(Method::POST, &self.path, &body, inputs.len())
            .await
        {
            Ok(results) => BatchAnswer::Each(results.iter().map(result).collect()),
            Err(e) => BatchAnswer::Whole(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_answers_are_classified() {
        let upserted = json!({"code": "SUCCESS", "action": "update", "duplicate_field": "WhatsApp_ID",
            "details": {"id": "5725767000000000001"}, "message": "record updated", "status": "success"});
        assert_eq!(
            result(&upserted),
            Ok(Written {
                id: "5725767000000000001".into(),
                inserted: false
            })
        );
        let note = json!({"code": "SUCCESS", "details": {"id": "5725767000000000002"},
            "message": "record added", "status": "success"});
        assert_eq!(result(&note).map(|w| w.inserted), Ok(true));
        let bad = json!({"code": "INVALID_DATA", "details": {"api_name": "Mobile",
            "json_path": "$.data[3].Mobile"}, "message": "invalid data: +5215512345678", "status": "error"});
        assert!(
            matches!(result(&bad), Err(CrmError::Rejected(m)) if m.contains("INVALID_DATA") && !m.contains("5512345678"))
        );
        let no_id = json!({"code": "SUCCESS", "details": {}, "status": "success"});
        assert!(matches!(result(&no_id), Err(CrmError::Transient(_))));
    }
}
