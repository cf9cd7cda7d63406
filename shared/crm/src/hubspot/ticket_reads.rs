//! Batched reads of conversation tickets by their unique `wabridge_conversation_id`
//! (`POST /crm/v3/objects/tickets/batch/read` with `idProperty`): the first write of each
//! conversation in a process reads what the ticket holds (its revision), and a burst of new
//! conversations makes one read call per batch instead of one per conversation. Like the
//! single read by a unique property, it is consistent where search lags.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use wabridge_core::crm::CrmError;

use super::api::Client;
use super::batch::{BatchAnswer, BatchOp};
use super::ticket_fields::{AGENT_PROPERTY, CONVERSATION_PROPERTY, REVISION_PROPERTY};

/// What a ticket holds: HubSpot's id, the revision it was written from, its agent.
pub(crate) type Held = Option<(String, u64, Option<String>)>;

pub(crate) struct ReadOp {
    pub client: Arc<Client>,
}

#[async_trait]
impl BatchOp for ReadOp {
    /// Conversation ids.
    type Input = String;
    type Output = Held;

    async fn run(&self, inputs: &[String]) -> BatchAnswer<Held> {
        let body = json!({
            "idProperty": CONVERSATION_PROPERTY,
            "properties": [CONVERSATION_PROPERTY, REVISION_PROPERTY, AGENT_PROPERTY],
            "inputs": inputs.iter().map(|id| json!({"id": id})).collect::<Vec<Value>>(),
        });
        let answer = match self
            .client
            .post("/crm/v3/objects/tickets/batch/read", &body)
            .await
        {
            Ok(answer) => answer,
            Err(e) => return BatchAnswer::Whole(e),
        };
        // Missing tickets come back as a 207 with OBJECT_NOT_FOUND errors; any other error
        // leaves us not knowing what a ticket holds, so the whole read retries.
        let errors = answer["errors"].as_array().cloned().unwrap_or_default();
        if let Some(e) = errors
            .iter()
            .find(|e| e["category"].as_str() != Some("OBJECT_NOT_FOUND"))
        {
            return BatchAnswer::Whole(CrmError::Transient(format!("ticket batch read: {e}")));
        }
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        BatchAnswer::Each(
            inputs
                .iter()
                .map(|wanted| {
                    let Some(ticket) = results.iter().find(|t| {
                        t["properties"][CONVERSATION_PROPERTY].as_str() == Some(wanted.as_str())
                    }) else {
                        return Ok(None);
                    };
                    let Some(id) = ticket["id"].as_str() else {
                        return Err(CrmError::Transient(format!(
                            "ticket read without an id: {ticket}"
                        )));
                    };
                    let p = &ticket["properties"];
                    let revision = p[REVISION_PROPERTY]
                        .as_str()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    let agent = p[AGENT_PROPERTY]
                        .as_str()
                        .filter(|a| !a.is_empty())
                        .map(String::from);
                    Ok(Some((id.to_string(), revision, agent)))
                })
                .collect(),
        )
    }
}
