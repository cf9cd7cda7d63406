//! Outcomes and `PATCH /conversations/{id}`: how a conversation ended for the business
//! (`resolved`, `converted`, …), from the mapping's `[outcomes] ids`.
//!
//! The change is written to the conversation store, then put on the events queue as a
//! `conversation` event (key `v:<id>:<revision>`), so it reaches the CRM like every other
//! change: once, through crm-sync and the effects ledger. Setting the outcome a conversation
//! already has writes and queues nothing (a queued duplicate would wait out the ledger's lease
//! behind the first). So when the queue fails after the write (a 503), the CRM gets the outcome
//! with the conversation's next change. A closed conversation takes an outcome too (outcomes
//! are often set after the talk ends); it stays closed.

use std::sync::Arc;

use serde::Deserialize;

use super::{ConversationRecord, Conversations};
use crate::auth::{ApiKeys, Scope};
use crate::event::{Event, EventKind};
use crate::http::{ApiError, Method, Request, Response};
use crate::queue::Queue;

/// `[outcomes]` of the mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeCatalogue {
    pub ids: Vec<String>,
}

impl Default for OutcomeCatalogue {
    /// The examples, when the mapping names none.
    fn default() -> Self {
        OutcomeCatalogue {
            ids: ["resolved", "converted", "lost", "spam"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The body of `PATCH /conversations/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    outcome: String,
}

/// `PATCH /conversations/{id}` (API key with the `sends` scope: the tools that write to
/// customers close their conversations).
pub struct ConversationsRoute {
    conversations: Conversations,
    outcomes: OutcomeCatalogue,
    keys: Arc<ApiKeys>,
    events: Arc<dyn Queue>,
}

impl ConversationsRoute {
    pub fn new(
        conversations: Conversations,
        outcomes: OutcomeCatalogue,
        keys: Arc<ApiKeys>,
        events: Arc<dyn Queue>,
    ) -> Self {
        ConversationsRoute {
            conversations,
            outcomes,
            keys,
            events,
        }
    }

    pub async fn handle(&self, req: &Request, id: &str) -> Result<Response, ApiError> {
        if req.method != Method::Patch {
            return Err(ApiError::MethodNotAllowed(req.path.clone()));
        }
        self.keys
            .authorize(req, Scope::Sends, "PATCH /conversations/{id}")?;
        let body: PatchBody = serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("the body must be {{\"outcome\": \"<id>\"}}: {e}"),
            )
        })?;
        let outcome = body.outcome.trim();
        if !self.outcomes.ids.iter().any(|o| o == outcome) {
            return Err(ApiError::Unprocessable {
                code: "unknown_outcome",
                message: format!(
                    "outcome {:?} is not in the mapping's outcome catalogue ([outcomes] ids: {})",
                    outcome.chars().take(64).collect::<String>(),
                    self.outcomes.ids.join(", ")
                ),
            });
        }
        let (state, changed) = self
            .conversations
            .set_outcome(id, outcome, crate::clock::now_ms())
            .await?
            .ok_or_else(|| ApiError::NoSuch(format!("no conversation with id {id}")))?;
        if changed {
            self.events
                .send_batch(&[event(&state.record).to_message()])
                .await?;
        }
        Ok(Response::json(200, &state.record))
    }
}

/// The event that carries a conversation changed through the API to crm-sync.
pub fn event(record: &ConversationRecord) -> Event {
    let key = format!("v:{}:{}", record.id, record.revision);
    Event::own(key, EventKind::Conversation, "conversation", record)
}
