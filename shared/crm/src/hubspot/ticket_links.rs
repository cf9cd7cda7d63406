//! How a conversation's ticket is tied to its contact and its Communications.
//!
//! Inline associations (written with the object that is created) cost no round trip of their
//! own, but need HubSpot's association type id, which sources disagree on (ticket → contact is
//! 15 or 16 depending on who you read). So the ids are read from the portal itself, once per
//! process (`GET /crm/v4/associations/{from}/{to}/labels`, the unlabeled `HUBSPOT_DEFINED`
//! type). Until they are known (or when the read fails) the adapter uses default associations
//! (v4 `batch/associate/default`, no type id), one call per batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use super::api::Client;
use super::batch::{BatchAnswer, BatchOp};
use wabridge_core::crm::CrmError;

/// One object type to another (`("tickets", "contacts")`).
type Pair = (&'static str, &'static str);

/// The association type ids this adapter writes inline, read once per process and pair.
pub(crate) struct AssociationTypes {
    client: Arc<Client>,
    cells: Mutex<HashMap<Pair, Arc<OnceCell<Option<u32>>>>>,
}

impl AssociationTypes {
    pub fn new(client: &Arc<Client>) -> AssociationTypes {
        AssociationTypes {
            client: client.clone(),
            cells: Mutex::new(HashMap::new()),
        }
    }

    fn cell(&self, pair: Pair) -> Arc<OnceCell<Option<u32>>> {
        self.cells.lock().unwrap().entry(pair).or_default().clone()
    }

    /// The type of `from` → `to`, read from the portal the first time; `None` when the portal
    /// did not say (or the read failed: the next call asks again).
    pub async fn get(&self, from: &'static str, to: &'static str) -> Option<u32> {
        let path = format!("/crm/v4/associations/{from}/{to}/labels");
        let read = self
            .cell((from, to))
            .get_or_try_init(|| async {
                let answer = self.client.get(&path).await?;
                Ok::<_, CrmError>(answer.as_ref().and_then(default_type_id))
            })
            .await
            .copied();
        read.unwrap_or_else(|e| {
            tracing::warn!(from, to, error = %e, "hubspot: association types not read; default associations instead");
            None
        })
    }

    /// The type of `from` → `to` if it has been read; never waits for a read, so a create on
    /// the hot path (a Communication) is not held by it.
    pub fn known(&self, from: &'static str, to: &'static str) -> Option<u32> {
        self.cell((from, to)).get().copied().flatten()
    }
}

/// The unlabeled HubSpot-defined type of a labels answer (`{"results": [{"category",
/// "typeId", "label"}]}`).
fn default_type_id(answer: &Value) -> Option<u32> {
    answer["results"]
        .as_array()?
        .iter()
        .find(|t| t["category"] == "HUBSPOT_DEFINED" && t["label"].is_null())
        .and_then(|t| t["typeId"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
}

/// An inline association to `to` of HubSpot-defined type `type_id`.
pub(crate) fn inline(to: &str, type_id: u32) -> Value {
    json!({
        "to": {"id": to},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
    })
}

/// Default associations from one object type to another
/// (`POST /crm/v4/associations/{from}/{to}/batch/associate/default`). Inputs are
/// `(from id, to id)`; repeating an association changes nothing.
pub(crate) struct AssociateOp {
    pub client: Arc<Client>,
    pub from: &'static str,
    pub to: &'static str,
}

#[async_trait]
impl BatchOp for AssociateOp {
    type Input = (String, String);
    type Output = ();

    async fn run(&self, inputs: &[(String, String)]) -> BatchAnswer<()> {
        let body = json!({
            "inputs": inputs.iter().map(|(from, to)| json!({"from": {"id": from}, "to": {"id": to}})).collect::<Vec<Value>>()
        });
        let path = format!(
            "/crm/v4/associations/{}/{}/batch/associate/default",
            self.from, self.to
        );
        match self.client.post(&path, &body).await {
            // A per-input error names no input to map it back to: all of them retry.
            Ok(answer) if answer["numErrors"].as_u64().unwrap_or(0) > 0 => {
                BatchAnswer::Whole(CrmError::Transient(format!(
                    "associations {}→{}: {}",
                    self.from, self.to, answer["errors"]
                )))
            }
            Ok(_) => BatchAnswer::Each(inputs.iter().map(|_| Ok(())).collect()),
            Err(e) => BatchAnswer::Whole(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_type_is_the_unlabeled_hubspot_defined_one() {
        let answer = json!({"results": [
            {"category": "USER_DEFINED", "typeId": 40, "label": "Billing"},
            {"category": "HUBSPOT_DEFINED", "typeId": 26, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": 16, "label": null}
        ]});
        assert_eq!(default_type_id(&answer), Some(16));
        assert_eq!(default_type_id(&json!({"results": []})), None);
        assert_eq!(default_type_id(&json!({})), None);
    }
}
