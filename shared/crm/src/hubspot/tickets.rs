//! Conversations as HubSpot Tickets: one ticket per conversation, associated to the contact and
//! to the Communications of its messages ([`ticket_fields`] says what it shows).
//!
//! Exactly once without search: the ticket's `wabridge_conversation_id` has unique values, so
//! the ticket is upserted by it (`POST /crm/v3/objects/tickets/batch/upsert`) and read by it
//! (`POST /crm/v3/objects/tickets/batch/read` with `idProperty`, batched across events:
//! [`super::ticket_reads`]), both consistent where search lags. A
//! crash between HubSpot's write and the ledger's confirm leaves nothing to find again: the
//! redelivery upserts the same ticket.
//!
//! Highest revision wins: the ticket keeps the revision it was written from
//! (`wabridge_revision`), read once per process and then remembered; a record no newer than it
//! writes nothing (its associations are still made). Writes of one conversation are serialised
//! in the process. Two processes writing one conversation's ticket at the same instant can
//! still leave the older revision; the conversation's next change corrects it.
//!
//! Associations use HubSpot's default association types (v4 batch `associate/default`), which
//! need no type id: ticket → contact once per ticket and process (repeating one is harmless),
//! and the Communications this process logged for the conversation, when its ticket is next
//! written (every message's event writes it right after the message's Communication).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::api::{Client, UpsertInput, UpsertOp};
use super::batch::{BatchAnswer, BatchOp, Batcher};
use super::ticket_fields::{ticket_properties, TicketSettings, Written, CONVERSATION_PROPERTY};
use super::ticket_reads::ReadOp;
use super::{HubSpotCrm, BATCH_MAX, DEFAULT_LINGER};
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{CrmError, Effect};

/// Conversations remembered per process (ticket id, revision, agent); restarts when full.
const TICKETS_MAX: usize = 10_000;
/// Communications waiting for their conversation's ticket, per conversation.
const PENDING_MAX: usize = 64;

/// What this process knows of one conversation's ticket.
#[derive(Debug, Default)]
struct TicketState {
    /// Read from HubSpot (or written) by this process.
    known: bool,
    ticket_id: Option<String>,
    revision: u64,
    agent: Option<String>,
    associated: bool,
}

/// The ticket side of the adapter.
pub(crate) struct Tickets {
    pub settings: TicketSettings,
    upserts: Batcher<UpsertOp>,
    reads: Batcher<ReadOp>,
    to_contacts: Batcher<AssociateOp>,
    communications: Batcher<AssociateOp>,
    states: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TicketState>>>>,
    /// Conversation id → Communications logged for it, not yet associated to its ticket.
    pending: Mutex<HashMap<String, Vec<String>>>,
}

impl Tickets {
    pub fn new(client: &Arc<Client>, settings: TicketSettings) -> Tickets {
        let associate = |from, to| {
            Batcher::new(
                AssociateOp {
                    client: client.clone(),
                    from,
                    to,
                },
                BATCH_MAX,
                DEFAULT_LINGER,
            )
        };
        Tickets {
            settings,
            upserts: Batcher::new(
                UpsertOp {
                    client: client.clone(),
                    object: "tickets",
                    id_property: CONVERSATION_PROPERTY.to_string(),
                },
                BATCH_MAX,
                DEFAULT_LINGER,
            ),
            reads: Batcher::new(
                ReadOp {
                    client: client.clone(),
                },
                BATCH_MAX,
                DEFAULT_LINGER,
            ),
            to_contacts: associate("tickets", "contacts"),
            communications: associate("communications", "tickets"),
            states: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn stats(&self) -> super::batch::BatchStats {
        self.upserts.stats()
    }

    /// Remembers a Communication of a conversation for its ticket's next write.
    pub fn communication_logged(&self, conversation_id: &str, communication_id: String) {
        let mut pending = self.pending.lock().unwrap();
        if pending.len() >= TICKETS_MAX && !pending.contains_key(conversation_id) {
            pending.clear();
        }
        let list = pending.entry(conversation_id.to_string()).or_default();
        if list.len() < PENDING_MAX {
            list.push(communication_id);
        }
    }

    fn state(&self, conversation_id: &str) -> Arc<tokio::sync::Mutex<TicketState>> {
        let mut states = self.states.lock().unwrap();
        if states.len() >= TICKETS_MAX && !states.contains_key(conversation_id) {
            states.clear();
        }
        states
            .entry(conversation_id.to_string())
            .or_default()
            .clone()
    }
}

impl HubSpotCrm {
    /// Writes the conversation's ticket if `record` is newer than what it holds, then makes its
    /// associations.
    pub(super) async fn write_ticket(
        &self,
        effect: &Effect,
        record: &ConversationRecord,
    ) -> Result<(), CrmError> {
        let tickets = &self.tickets;
        let state = tickets.state(&record.id);
        let mut state = state.lock().await;
        if !state.known {
            if let Some((id, revision, agent)) = tickets.reads.submit(record.id.clone()).await? {
                state.ticket_id = Some(id);
                state.revision = revision;
                state.agent = agent;
            }
            state.known = true;
        }
        if state.ticket_id.is_none() || record.revision > state.revision {
            let written = Written {
                exists: state.ticket_id.is_some(),
                agent: state.agent.clone(),
            };
            let (properties, unowned) = ticket_properties(record, &tickets.settings, &written);
            if let Some(agent) = unowned {
                tracing::info!(conversation = %record.id, agent = %agent, "hubspot: the agent has no owner in the mapping's [hubspot.owners]; ticket owner left unset");
            }
            let id = tickets
                .upserts
                .submit(UpsertInput {
                    id: record.id.clone(),
                    properties,
                })
                .await?;
            state.ticket_id = Some(id);
            state.revision = record.revision;
            state.agent = record.agent.clone();
        } else {
            tracing::debug!(conversation = %record.id, revision = record.revision, held = state.revision, "hubspot: the ticket holds this revision or a newer one");
        }
        let ticket = state.ticket_id.clone().unwrap_or_default();
        // An outcome set through the API names no contact: its ticket was associated when a
        // message's event wrote it.
        if !state.associated && effect.contact.is_some() {
            let contact = self.contact_hs_id(effect).await?;
            tickets
                .to_contacts
                .submit((ticket.clone(), contact))
                .await?;
            state.associated = true;
        }
        let waiting = tickets
            .pending
            .lock()
            .unwrap()
            .remove(&record.id)
            .unwrap_or_default();
        let associations = waiting.iter().map(|comm| {
            tickets
                .communications
                .submit((comm.clone(), ticket.clone()))
        });
        let failed = futures::future::join_all(associations)
            .await
            .into_iter()
            .find_map(Result::err);
        if let Some(e) = failed {
            // Put them back for the next write; the ticket itself is written.
            for comm in waiting {
                tickets.communication_logged(&record.id, comm);
            }
            tracing::warn!(conversation = %record.id, error = %e, "hubspot: communications not associated to the ticket yet");
        }
        Ok(())
    }
}

/// Default associations from one object type to another
/// (`POST /crm/v4/associations/{from}/{to}/batch/associate/default`). Inputs are
/// `(from id, to id)`; repeating an association changes nothing.
pub(crate) struct AssociateOp {
    client: Arc<Client>,
    from: &'static str,
    to: &'static str,
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
