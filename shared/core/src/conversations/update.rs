//! Changes made to a conversation from outside its messages: an outcome, an agent, tags or a
//! close (`PATCH /conversations/{id}`, `POST /conversations/{id}/tags`,
//! `DELETE /conversations/{id}/tags/{tag}`, the CLI) and a
//! conversion (`POST /conversions` makes the outcome `converted`).
//!
//! Write then queue: the change is written to the store (only if nobody changed the
//! conversation since it was read), then put on the events queue as a `conversation` event
//! (key `v:<id>:<revision>`, [`super::outcome::event`]) so it reaches the CRM like every other
//! change: once, through crm-sync and the effects ledger. A change that changes nothing writes
//! and queues nothing, so when the queue fails after the write (a 503), the CRM gets the change
//! with the conversation's next one. A closed conversation takes every change and stays closed
//! (outcomes and tags are often set after the talk ends).

use std::sync::Arc;

use super::fold::add_tags;
use super::outcome::event;
use super::record::CONVERSIONS_KEPT;
use super::{thread_key, CloseReason, ConversationState, Conversations, Write, ATTEMPTS};
use crate::error::StoreError;
use crate::queue::Queue;

/// What to change; every part is optional and the parts apply together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// An id from the outcome catalogue (checked by the caller).
    pub outcome: Option<String>,
    /// Assigns the conversation: no message's agent takes over afterwards.
    pub agent: Option<String>,
    /// Replaces the tags (checked against the catalogue by the caller).
    pub tags: Option<Vec<String>>,
    /// Adds tags.
    pub add_tags: Vec<String>,
    /// Removes tags (after any added); a tag the conversation lacks changes nothing.
    pub remove_tags: Vec<String>,
    pub close: bool,
    pub conversion: Option<Converted>,
}

/// A conversion that makes the outcome `converted`.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The conversion's `event_id`: applied once per conversation.
    pub event_id: String,
    pub value: f64,
    pub currency: String,
    /// When it happened (Unix ms).
    pub at: i64,
}

/// The outcome a conversion sets.
pub const CONVERTED: &str = "converted";

/// The key a conversion's change is remembered by (`last_event`).
fn conversion_key(event_id: &str) -> String {
    format!("conversion:{event_id}")
}

/// `state` with `change` applied at `at`; `None` when nothing changes.
pub fn apply(state: &ConversationState, change: &Change, at: i64) -> Option<ConversationState> {
    let mut next = state.clone();
    let r = &mut next.record;
    if let Some(outcome) = &change.outcome {
        if r.outcome.as_deref() != Some(outcome) {
            r.outcome = Some(outcome.clone());
            r.outcome_at = Some(at);
            // A value belongs to the conversion that set `converted`.
            r.outcome_value = None;
            r.outcome_currency = None;
        }
    }
    if let Some(agent) = &change.agent {
        if r.agent.as_deref() != Some(agent) {
            r.agent = Some(agent.clone());
            next.agent_at = Some(i64::MIN);
        }
    }
    if let Some(tags) = &change.tags {
        let mut tags = tags.clone();
        tags.sort();
        tags.dedup();
        r.tags = tags;
    }
    add_tags(&mut r.tags, &change.add_tags);
    r.tags.retain(|t| !change.remove_tags.contains(t));
    if change.close && r.is_open() {
        r.closed_at = Some(at.max(r.last_message_at()));
        r.close_reason = Some(CloseReason::Explicit);
    }
    let mut key = None;
    if let Some(c) = &change.conversion {
        if !next.conversions.contains(&c.event_id) {
            let r = &mut next.record;
            r.outcome = Some(CONVERTED.to_string());
            r.outcome_at = Some(c.at);
            r.outcome_value = Some(c.value);
            r.outcome_currency = Some(c.currency.clone());
            next.conversions.push(c.event_id.clone());
            let extra = next.conversions.len().saturating_sub(CONVERSIONS_KEPT);
            next.conversions.drain(..extra);
            key = Some(conversion_key(&c.event_id));
        }
    }
    if next == *state {
        return None;
    }
    next.record.revision += 1;
    let key = key.unwrap_or_else(|| format!("v:{}:{}", next.record.id, next.record.revision));
    next.last_event = Some(key);
    Some(next)
}

impl Conversations {
    /// Applies `change` to conversation `id` (`at`: now); `None` when there is no such
    /// conversation, else the conversation and whether it changed.
    pub async fn update(
        &self,
        id: &str,
        change: &Change,
        at: i64,
    ) -> Result<Option<(ConversationState, bool)>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(state) = self.store.get(id).await? else {
                return Ok(None);
            };
            let Some(next) = apply(&state, change, at) else {
                return Ok(Some((state, false)));
            };
            let write = Write {
                thread: thread_key(&state.record.contact_id, &state.record.number),
                conversations: vec![(Some(state.record.revision), next.clone())],
                head: None,
                mark: None,
            };
            if self.store.save(&write).await? {
                return Ok(Some((next, true)));
            }
        }
        Err(StoreError::unavailable(format!(
            "conversation {id}: {ATTEMPTS} concurrent writes in a row"
        )))
    }

    /// Closes a conversation now (`at`); `None` when there is no such conversation. Closing a
    /// closed one changes nothing.
    pub async fn close(&self, id: &str, at: i64) -> Result<Option<ConversationState>, StoreError> {
        let change = Change {
            close: true,
            ..Change::default()
        };
        Ok(self.update(id, &change, at).await?.map(|(state, _)| state))
    }
}

/// Which conversation a conversion is about: the one named, else the latest on the contact's
/// thread with `number`, else the contact's latest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub contact_id: String,
    pub number: Option<String>,
    pub conversation_id: Option<String>,
}

/// Conversation changes from outside crm-sync: written, then queued for the CRM.
#[derive(Clone)]
pub struct ConversationUpdates {
    conversations: Conversations,
    events: Arc<dyn Queue>,
}

impl ConversationUpdates {
    pub fn new(conversations: Conversations, events: Arc<dyn Queue>) -> Self {
        ConversationUpdates {
            conversations,
            events,
        }
    }

    /// Applies `change` to `id` now; `None` when there is no such conversation.
    pub async fn apply(
        &self,
        id: &str,
        change: &Change,
    ) -> Result<Option<ConversationState>, StoreError> {
        let Some((state, changed)) = self
            .conversations
            .update(id, change, crate::clock::now_ms())
            .await?
        else {
            return Ok(None);
        };
        if changed {
            self.queue(&state).await?;
        }
        Ok(Some(state))
    }

    /// Makes the target's outcome `converted` with the conversion's value; `None` when the
    /// contact has no such conversation. Once per conversion: the same `event_id` again
    /// changes and queues nothing (a queued copy would wait out the ledger's lease behind the
    /// first), so a change whose queueing failed reaches the CRM with the next one.
    pub async fn converted(
        &self,
        target: &Target,
        conversion: &Converted,
    ) -> Result<Option<ConversationState>, StoreError> {
        let store = self.conversations.store();
        let id = match &target.conversation_id {
            Some(id) => store
                .get(id)
                .await?
                .filter(|s| s.record.contact_id == target.contact_id)
                .map(|s| s.record.id),
            None => store
                .latest(&target.contact_id, target.number.as_deref())
                .await?
                .map(|s| s.record.id),
        };
        let Some(id) = id else {
            return Ok(None);
        };
        let change = Change {
            conversion: Some(conversion.clone()),
            ..Change::default()
        };
        self.apply(&id, &change).await
    }

    async fn queue(&self, state: &ConversationState) -> Result<(), StoreError> {
        self.events
            .send_batch(&[event(&state.record).to_message()])
            .await
    }
}
