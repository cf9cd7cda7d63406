//! Conversations (issue 20): a thread between one contact and one business number, opened by
//! its first message (the customer's, or one the business sends) and closed after
//! `WABRIDGE_CONVERSATION_IDLE_HOURS` without a message, or explicitly.
//!
//! crm-sync turns every new message into an [`Observation`] (inbound messages, echoes, and the
//! statuses of the business's messages: a status is the only word wabridge gets of a message
//! sent through the Cloud API), folds it into the thread's state ([`fold`], the ordering rules)
//! and sends the changed conversations to the CRM as `conversation` records, each an effect of
//! the event through the effects ledger. The state lives in a [`ConversationStore`] (SQLite
//! table, DynamoDB items), written only when nobody changed it since it was read, so
//! concurrent deliveries of one thread fold one after the other.
//!
//! An idle conversation is closed when the thread's next message comes (lazily): its
//! `closed_at` is then its last message + the idle time, whatever the arrival time.

pub mod fold;
pub mod outcome;
pub mod record;
pub mod report;
pub mod route;
pub mod sla;
pub mod sweep;
pub mod tags;
pub mod update;

use std::sync::Arc;

use async_trait::async_trait;

pub use fold::{Folded, Observation};
pub use record::{CloseReason, ConversationRecord, ConversationState, MessageMark, Origin, Party};

use crate::config::{ConfigError, Settings, WABRIDGE_CONVERSATION_IDLE_HOURS};
use crate::error::StoreError;

/// Default of [`WABRIDGE_CONVERSATION_IDLE_HOURS`]: Meta's customer service window.
pub const DEFAULT_IDLE_HOURS: u32 = 24;

/// [`WABRIDGE_CONVERSATION_IDLE_HOURS`] through `lookup`: whole hours from 1 to 720, in ms.
pub fn idle_ms(lookup: impl Fn(&str) -> Option<String>) -> Result<i64, ConfigError> {
    let hours = Settings::new(lookup).number(
        WABRIDGE_CONVERSATION_IDLE_HOURS,
        DEFAULT_IDLE_HOURS,
        "a whole number of hours from 1 to 720",
        |h| (1..=720).contains(h),
    )?;
    Ok(i64::from(hours) * 3_600_000)
}

/// The thread of a contact on a number: the key of its latest conversation.
pub fn thread_key(contact_id: &str, number: &str) -> String {
    format!("{contact_id}|{number}")
}

/// What a store read for one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The conversation of the message's mark when it has one, else the thread's latest.
    pub conversation: Option<ConversationState>,
    pub mark: Option<MessageMark>,
    /// The thread's latest conversation id as read (the condition of a new head).
    pub head: Option<String>,
}

/// One atomic write of a fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub thread: String,
    /// Each conversation with the revision it must still have (`None`: must not exist).
    pub conversations: Vec<(Option<u64>, ConversationState)>,
    /// `(expected, new)`: the thread's latest conversation becomes `new` if it is `expected`.
    pub head: Option<(Option<String>, String)>,
    pub mark: Option<MessageMark>,
}

#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The state [`fold`] needs for `message_id` on `thread`.
    async fn load(&self, thread: &str, message_id: &str) -> Result<Loaded, StoreError>;
    /// Writes everything or nothing; `false` when a condition failed (someone else wrote).
    async fn save(&self, write: &Write) -> Result<bool, StoreError>;
    async fn get(&self, id: &str) -> Result<Option<ConversationState>, StoreError>;
    /// Every open conversation: the sweep's work, without a table scan (an index of open
    /// ones on both engines).
    async fn open(&self) -> Result<Vec<ConversationState>, StoreError>;
    /// Every conversation opened at or after `since` (Unix ms), open or closed: the report's.
    async fn opened_since(&self, since: i64) -> Result<Vec<ConversationRecord>, StoreError>;
    /// The latest conversation of the contact's thread on `number`, or without a number the
    /// one the contact opened last (conversions find theirs so).
    async fn latest(
        &self,
        contact_id: &str,
        number: Option<&str>,
    ) -> Result<Option<ConversationState>, StoreError>;
}

/// Conversations over a store.
#[derive(Clone)]
pub struct Conversations {
    store: Arc<dyn ConversationStore>,
    idle_ms: i64,
}

/// Attempts at a fold when other deliveries of the thread keep writing first.
const ATTEMPTS: u32 = 5;

impl Conversations {
    pub fn new(store: Arc<dyn ConversationStore>, idle_ms: i64) -> Conversations {
        Conversations { store, idle_ms }
    }

    pub fn store(&self) -> &Arc<dyn ConversationStore> {
        &self.store
    }

    /// `WABRIDGE_CONVERSATION_IDLE_HOURS` in ms.
    pub fn idle_ms(&self) -> i64 {
        self.idle_ms
    }

    /// Folds one message in; returns what changed and the message's conversation. Idempotent:
    /// a message seen before changes nothing. When the event itself made the conversation's
    /// latest change, the conversation is returned again, so a delivery that died after the
    /// write completes its effects.
    pub async fn observe(&self, obs: &Observation) -> Result<Folded, StoreError> {
        let thread = thread_key(&obs.contact_id, &obs.number);
        for _ in 0..ATTEMPTS {
            let loaded = self.store.load(&thread, &obs.message_id).await?;
            let folded = fold::fold(
                loaded.conversation.as_ref(),
                loaded.mark.as_ref(),
                obs,
                self.idle_ms,
                new_id,
            );
            if folded.changes.is_empty() && folded.mark.is_none() {
                return Ok(match (&loaded.conversation, &folded.conversation_id) {
                    (Some(state), Some(id))
                        if &state.record.id == id
                            && state.last_event.as_deref() == Some(obs.event_key.as_str()) =>
                    {
                        Folded {
                            changes: vec![(Some(state.record.revision), state.clone())],
                            ..folded
                        }
                    }
                    _ => folded,
                });
            }
            let write = Write {
                thread: thread.clone(),
                conversations: folded.changes.clone(),
                head: folded
                    .new_head
                    .clone()
                    .map(|new| (loaded.head.clone(), new)),
                mark: folded.mark.clone(),
            };
            if self.store.save(&write).await? {
                return Ok(folded);
            }
        }
        Err(StoreError::unavailable(format!(
            "conversation of thread {}: {ATTEMPTS} concurrent writes in a row",
            crate::redact::key(&thread)
        )))
    }
}

impl Conversations {
    /// The conversation something that is not a message of the thread (a call, an edit or a
    /// revoke) belongs to, read only: the conversation `message_id` was counted in when it has
    /// a mark, else the thread's latest one if it covers `at` (opened by then, and not closed
    /// nor idle before it).
    pub async fn conversation_at(
        &self,
        contact_id: &str,
        number: &str,
        message_id: &str,
        at: i64,
    ) -> Result<Option<String>, StoreError> {
        let loaded = self
            .store
            .load(&thread_key(contact_id, number), message_id)
            .await?;
        if let Some(mark) = loaded.mark {
            return Ok(Some(mark.conversation_id));
        }
        Ok(loaded.conversation.and_then(|state| {
            let r = state.record;
            let end = r
                .closed_at
                .unwrap_or_else(|| r.last_message_at().saturating_add(self.idle_ms));
            (r.opened_at <= at && at <= end).then_some(r.id)
        }))
    }
}

/// A new conversation id.
pub fn new_id() -> String {
    format!("cnv_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests;
