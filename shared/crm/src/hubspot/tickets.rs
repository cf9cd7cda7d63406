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
//! Few round trips per event ([`super::ticket_links`]). A conversation's record does not wait
//! for the event's contact (`Crm::waits_for_contact`): its ticket is written beside the
//! contact's upsert. The opening revision is *created* (one call; a ticket that exists makes
//! HubSpot refuse the create, and the write then reads and upserts it like any other), with its
//! contact association inline when this process knows the contact's id, else tied to the
//! contact (v4 `associate/default`) once the contact's upsert in flight answers. The event's
//! Communications wait for the ticket's id from the write in flight (at most [`TICKET_WAIT`])
//! and carry their association to it inline, so an opening costs the round trips of a later
//! message. A Communication logged without its ticket (none in flight, or the wait ran out) is
//! associated at the ticket's next write, while that write runs. Writes that are not the
//! opening revision read the ticket first (once per conversation and process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::cache::InFlight;

use super::api::{Client, CreateInput, CreateOp, UpsertInput, UpsertOp};
use super::batch::Batcher;
use super::ticket_fields::{ticket_properties, TicketSettings, Written, CONVERSATION_PROPERTY};
use super::ticket_links::{inline, AssociateOp, AssociationTypes};
use super::ticket_reads::ReadOp;
use super::{HubSpotCrm, BATCH_MAX, DEFAULT_LINGER};
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{CrmError, Effect};

/// Conversations remembered per process (ticket id, revision, agent); restarts when full.
const TICKETS_MAX: usize = 10_000;
/// Communications waiting for their conversation's ticket, per conversation.
const PENDING_MAX: usize = 64;
/// Longest a Communication waits for its conversation's ticket id from a write in flight;
/// past it, it is created without the ticket and tied at the ticket's next write.
pub(crate) const TICKET_WAIT: Duration = Duration::from_secs(2);

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
    creates: Batcher<CreateOp>,
    reads: Batcher<ReadOp>,
    to_contacts: Batcher<AssociateOp>,
    communications: Batcher<AssociateOp>,
    states: Mutex<HashMap<String, Arc<tokio::sync::Mutex<TicketState>>>>,
    /// Conversation id → Communications logged for it, not yet associated to its ticket.
    pending: Mutex<HashMap<String, Vec<String>>>,
    /// Conversation id → its ticket's id, for Communications to carry inline.
    ids: Mutex<HashMap<String, String>>,
    /// Writes in flight of tickets whose id this process does not know yet, by conversation.
    learning: InFlight<String>,
    pub types: AssociationTypes,
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
            creates: Batcher::new(
                CreateOp {
                    client: client.clone(),
                    object: "tickets",
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
            ids: Mutex::new(HashMap::new()),
            learning: InFlight::default(),
            types: AssociationTypes::new(client),
        }
    }

    /// Ticket writes: creates and upserts together.
    pub fn stats(&self) -> super::batch::BatchStats {
        let (upserts, creates) = (self.upserts.stats(), self.creates.stats());
        super::batch::BatchStats {
            calls: upserts.calls + creates.calls,
            inputs: upserts.inputs + creates.inputs,
            largest: upserts.largest.max(creates.largest),
        }
    }

    /// The ticket of `conversation_id` and the type of a Communication's association to it,
    /// when both are known in this process, or the ticket's id is on its way (a write of it
    /// in flight: the event's own ticket, written beside its contact), for [`TICKET_WAIT`].
    pub async fn inline_for(&self, conversation_id: &str) -> Option<(String, u32)> {
        let known = self.ids.lock().unwrap().get(conversation_id).cloned();
        let ticket = match known {
            Some(id) => id,
            None => tokio::time::timeout(TICKET_WAIT, self.learning.wait(conversation_id))
                .await
                .ok()
                .flatten()?,
        };
        // Read by the ticket's first write in this process (never waited for here).
        let type_id = self.types.known("communications", "tickets")?;
        Some((ticket, type_id))
    }

    /// The ticket of `conversation_id` and the type of an association from `from` to it, for
    /// an engagement created once (a call): remembered, else read (batched). `None` when the
    /// conversation has no ticket yet or the portal did not say the type.
    pub async fn link_for(
        &self,
        from: &'static str,
        conversation_id: &str,
    ) -> Result<Option<(String, u32)>, CrmError> {
        let Some(type_id) = self.types.get(from, "tickets").await else {
            return Ok(None);
        };
        let known = self.ids.lock().unwrap().get(conversation_id).cloned();
        let ticket = match known {
            Some(id) => Some(id),
            None => {
                let held = self.reads.submit(conversation_id.to_string()).await?;
                let id = held.map(|(id, ..)| id);
                if let Some(id) = &id {
                    self.remember_id(conversation_id, id);
                }
                id
            }
        };
        Ok(ticket.map(|t| (t, type_id)))
    }

    fn remember_id(&self, conversation_id: &str, ticket: &str) {
        let mut ids = self.ids.lock().unwrap();
        if ids.len() >= TICKETS_MAX && !ids.contains_key(conversation_id) {
            ids.clear();
        }
        ids.insert(conversation_id.to_string(), ticket.to_string());
    }

    fn take_pending(&self, conversation_id: &str) -> Vec<String> {
        self.pending
            .lock()
            .unwrap()
            .remove(conversation_id)
            .unwrap_or_default()
    }

    /// Associates `communications` to `ticket`; on failure they wait for the next write.
    async fn associate_communications(
        &self,
        conversation_id: &str,
        communications: Vec<String>,
        ticket: &str,
    ) {
        let associations = communications.iter().map(|comm| {
            self.communications
                .submit((comm.clone(), ticket.to_string()))
        });
        let failed = futures::future::join_all(associations)
            .await
            .into_iter()
            .find_map(Result::err);
        if let Some(e) = failed {
            for comm in communications {
                self.communication_logged(conversation_id, comm);
            }
            tracing::warn!(conversation = %conversation_id, error = %e, "hubspot: communications not associated to the ticket yet");
        }
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
        // The event's Communications may wait for the id this write learns (`inline_for`).
        let unknown = !tickets.ids.lock().unwrap().contains_key(&record.id);
        let mut learning = unknown.then(|| tickets.learning.start(&record.id));
        let mut learned = |ticket: &Option<String>| {
            // Landed once, and only with an id: waiters keep waiting until then.
            let Some(id) = ticket else { return };
            if let Some(landing) = learning.take() {
                tickets.remember_id(&record.id, id);
                landing.land(Some(id.clone()));
            }
        };
        let state = tickets.state(&record.id);
        let mut state = state.lock().await;
        // An earlier write of the conversation may have learned it meanwhile.
        learned(&state.ticket_id);
        if !state.known && record.revision == 1 {
            self.create_ticket(effect, record, &mut state).await?;
            learned(&state.ticket_id);
        }
        if !state.known {
            if let Some((id, revision, agent)) = tickets.reads.submit(record.id.clone()).await? {
                state.ticket_id = Some(id);
                state.revision = revision;
                state.agent = agent;
            }
            state.known = true;
            learned(&state.ticket_id);
        }
        let upsert = if state.ticket_id.is_none() || record.revision > state.revision {
            let written = Written {
                exists: state.ticket_id.is_some(),
                agent: state.agent.clone(),
            };
            Some(UpsertInput {
                id: record.id.clone(),
                properties: self.ticket_properties(record, &written),
            })
        } else {
            tracing::debug!(conversation = %record.id, revision = record.revision, held = state.revision, "hubspot: the ticket holds this revision or a newer one");
            None
        };
        // Communications waiting for a ticket that exists are tied to it while it is written.
        let waiting = tickets.take_pending(&record.id);
        let early = state.ticket_id.clone().filter(|_| !waiting.is_empty());
        let (written, ()) = futures::join!(
            async {
                match upsert {
                    Some(input) => tickets.upserts.submit(input).await.map(Some),
                    None => Ok(None),
                }
            },
            async {
                if let Some(ticket) = &early {
                    tickets
                        .associate_communications(&record.id, waiting.clone(), ticket)
                        .await;
                }
            }
        );
        let late = if early.is_none() { waiting } else { Vec::new() };
        let id = match written {
            Ok(id) => id,
            Err(e) => {
                for comm in late {
                    tickets.communication_logged(&record.id, comm);
                }
                return Err(e);
            }
        };
        if let Some(id) = id {
            state.ticket_id = Some(id);
            state.revision = record.revision;
            state.agent = record.agent.clone();
        }
        learned(&state.ticket_id);
        let ticket = state.ticket_id.clone().unwrap_or_default();
        tickets.remember_id(&record.id, &ticket);
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
        if !late.is_empty() {
            tickets
                .associate_communications(&record.id, late, &ticket)
                .await;
        }
        Ok(())
    }

    /// Creates the ticket of a conversation's opening revision, when the portal's association
    /// type is known: with its contact association inline when this process knows the
    /// contact's id, else without (a new contact, upserted beside this write) and tied to it
    /// once the contact's upsert answers (`write_ticket`). A refusal (the ticket exists: a
    /// redelivery, another process) leaves `state` unknown, so the write reads and upserts.
    async fn create_ticket(
        &self,
        effect: &Effect,
        record: &ConversationRecord,
        state: &mut TicketState,
    ) -> Result<(), CrmError> {
        let tickets = &self.tickets;
        if effect.contact.is_none() {
            return Ok(());
        }
        let (type_id, _) = futures::join!(
            tickets.types.get("tickets", "contacts"),
            tickets.types.get("communications", "tickets")
        );
        let Some(type_id) = type_id else {
            return Ok(());
        };
        let contact = self.known_contact_hs_id(effect).await?;
        let written = Written {
            exists: false,
            agent: None,
        };
        let input = CreateInput {
            properties: self.ticket_properties(record, &written),
            associations: match &contact {
                Some(contact) => json!([inline(contact, type_id)]),
                None => json!([]),
            },
        };
        match tickets.creates.submit(input).await {
            Ok(id) => {
                state.known = true;
                state.ticket_id = Some(id);
                state.revision = record.revision;
                state.agent = record.agent.clone();
                state.associated = contact.is_some();
                Ok(())
            }
            Err(CrmError::Rejected(reason)) => {
                tracing::debug!(conversation = %record.id, %reason, "hubspot: ticket not created (it exists?); reading it");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn ticket_properties(
        &self,
        record: &ConversationRecord,
        written: &Written,
    ) -> serde_json::Map<String, serde_json::Value> {
        let (properties, unowned) = ticket_properties(record, &self.tickets.settings, written);
        if let Some(agent) = unowned {
            tracing::info!(conversation = %record.id, agent = %agent, "hubspot: the agent has no owner in the mapping's [hubspot.owners]; ticket owner left unset");
        }
        properties
    }
}
