//! The ordering rules: how one message changes its thread's conversations, whatever the order
//! and however often messages arrive. Pure: the store loads, [`fold`] decides, the store saves.
//!
//! - A message seen before (its [`MessageMark`]) counts nothing again; an earlier time for it
//!   (a `sent` status after `delivered`) only moves its times earlier.
//! - A new message goes to the thread's conversation (the latest) unless:
//!   - that one is open and the message is more than the idle time after its last message:
//!     it closes (`idle`, at last message + idle time) and the message opens a new one;
//!   - that one is closed and the message is after the close: a new one opens;
//!   - the message is older than that conversation's opening by more than the idle time: it
//!     belongs to an earlier conversation, which is not looked up. It is counted nowhere
//!     (logged by the caller).
//! - A late message inside a closed conversation is counted there, without reopening it.
//! - A new message's tags (from the mapping's rules) join its conversation's; a message seen
//!   before adds none again.
//! - Times only move one way: `opened_at` and `first_*` earlier, `last_*` later, so a late
//!   event never moves `first_response_at` later.

use super::record::{
    ConversationRecord, ConversationState, MessageMark, Origin, Party, EARLY_OUTBOUND_KEPT,
};
use crate::records::Direction;

/// One message as the conversation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The event that carries the message (the last to change a conversation is kept).
    pub event_key: String,
    pub contact_id: String,
    pub number: String,
    pub display_number: Option<String>,
    pub message_id: String,
    pub direction: Direction,
    /// When Meta says it was sent (Unix ms).
    pub at: i64,
    /// Outbound: who wrote it.
    pub agent: Option<String>,
    /// What this message would make the origin of a conversation it opens.
    pub origin: Origin,
    pub meta_conversation_id: Option<String>,
    pub pricing_category: Option<String>,
    pub pricing_type: Option<String>,
    /// Inbound: the tags the mapping's rules give it (sorted, unique).
    pub tags: Vec<String>,
}

/// What [`fold`] decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Folded {
    /// Changed conversations, each with the revision it had when loaded (`None`: new). A
    /// conversation closed for idleness comes before the one the message opened.
    pub changes: Vec<(Option<u64>, ConversationState)>,
    /// The thread's conversation is now this new one.
    pub new_head: Option<String>,
    /// The message's mark to write (new or moved earlier).
    pub mark: Option<MessageMark>,
    /// The message's conversation; `None` for a message older than anything kept.
    pub conversation_id: Option<String>,
}

/// Folds `obs` into `loaded` (the conversation of its mark when it has one, else the thread's
/// latest). `new_id` names a conversation this message opens.
pub fn fold(
    loaded: Option<&ConversationState>,
    mark: Option<&MessageMark>,
    obs: &Observation,
    idle_ms: i64,
    new_id: impl FnOnce() -> String,
) -> Folded {
    if let Some(mark) = mark {
        return refold(loaded, mark, obs);
    }
    let open_new = |changes: Vec<(Option<u64>, ConversationState)>| {
        let state = open(new_id(), obs);
        let id = state.record.id.clone();
        let mut changes = changes;
        changes.push((None, state));
        Folded {
            changes,
            new_head: Some(id.clone()),
            mark: Some(mark_of(obs, &id)),
            conversation_id: Some(id),
        }
    };
    let Some(head) = loaded else {
        return open_new(Vec::new());
    };
    let r = &head.record;
    if obs.at < r.opened_at.saturating_sub(idle_ms) {
        return Folded::default();
    }
    match r.closed_at {
        None if obs.at > r.last_message_at().saturating_add(idle_ms) => {
            let mut closed = head.clone();
            closed.record.closed_at = Some(r.last_message_at().saturating_add(idle_ms));
            closed.record.close_reason = Some(super::record::CloseReason::Idle);
            closed.record.revision += 1;
            closed.last_event = Some(obs.event_key.clone());
            open_new(vec![(Some(r.revision), closed)])
        }
        Some(closed_at) if obs.at > closed_at => open_new(Vec::new()),
        _ => {
            let mut state = head.clone();
            add(&mut state, obs);
            state.record.revision += 1;
            state.last_event = Some(obs.event_key.clone());
            Folded {
                changes: vec![(Some(r.revision), state)],
                new_head: None,
                mark: Some(mark_of(obs, &r.id)),
                conversation_id: Some(r.id.clone()),
            }
        }
    }
}

/// A message counted before: only an earlier time and Meta's ids can change anything.
fn refold(loaded: Option<&ConversationState>, mark: &MessageMark, obs: &Observation) -> Folded {
    let mut folded = Folded {
        conversation_id: Some(mark.conversation_id.clone()),
        ..Folded::default()
    };
    let Some(state) = loaded.filter(|s| s.record.id == mark.conversation_id) else {
        return folded;
    };
    let mut next = state.clone();
    if obs.at < mark.at {
        place(&mut next, obs);
        folded.mark = Some(MessageMark {
            at: obs.at,
            ..mark.clone()
        });
    }
    meta(&mut next.record, obs);
    if next != *state {
        next.record.revision += 1;
        next.last_event = Some(obs.event_key.clone());
        folded.changes.push((Some(state.record.revision), next));
    }
    folded
}

fn mark_of(obs: &Observation, conversation_id: &str) -> MessageMark {
    MessageMark {
        message_id: obs.message_id.clone(),
        conversation_id: conversation_id.to_string(),
        at: obs.at,
    }
}

/// A conversation opened by `obs`.
fn open(id: String, obs: &Observation) -> ConversationState {
    let mut state = ConversationState {
        record: ConversationRecord {
            id,
            contact_id: obs.contact_id.clone(),
            number: obs.number.clone(),
            display_number: obs.display_number.clone(),
            opened_at: obs.at,
            opened_by: Some(party(obs.direction)),
            origin: Some(obs.origin),
            ..ConversationRecord::default()
        },
        ..ConversationState::default()
    };
    add(&mut state, obs);
    state.record.revision = 1;
    state.last_event = Some(obs.event_key.clone());
    state
}

fn party(direction: Direction) -> Party {
    match direction {
        Direction::Inbound => Party::Customer,
        Direction::Outbound => Party::Business,
    }
}

/// Counts a new message and places it in time.
fn add(state: &mut ConversationState, obs: &Observation) {
    match obs.direction {
        Direction::Inbound => state.record.inbound_count += 1,
        Direction::Outbound => state.record.outbound_count += 1,
    }
    place(state, obs);
    meta(&mut state.record, obs);
    add_tags(&mut state.record.tags, &obs.tags);
}

/// Adds `new` to the sorted set `tags`.
pub fn add_tags(tags: &mut Vec<String>, new: &[String]) {
    for tag in new {
        if let Err(at) = tags.binary_search(tag) {
            tags.insert(at, tag.clone());
        }
    }
}

/// Moves the conversation's times for a message at `obs.at` (new, or seen before at a later
/// time). Every rule is a min or a max, so the order of messages does not matter.
fn place(state: &mut ConversationState, obs: &Observation) {
    let r = &mut state.record;
    if obs.at < r.opened_at {
        r.opened_at = obs.at;
        r.opened_by = Some(party(obs.direction));
        r.origin = Some(obs.origin);
    }
    match obs.direction {
        Direction::Inbound => {
            r.last_inbound_at = r.last_inbound_at.max(Some(obs.at));
            if r.first_inbound_at.is_none_or(|first| obs.at < first) {
                r.first_inbound_at = Some(obs.at);
                // Business messages before the old first inbound may answer the new one.
                let (answers, before): (Vec<i64>, Vec<i64>) =
                    state.early_outbound.iter().partition(|&&o| o >= obs.at);
                state.early_outbound = before;
                if let Some(first) = answers.into_iter().min() {
                    r.first_response_at = Some(r.first_response_at.map_or(first, |f| f.min(first)));
                }
            }
        }
        Direction::Outbound => {
            r.last_outbound_at = r.last_outbound_at.max(Some(obs.at));
            match r.first_inbound_at {
                Some(first) if obs.at >= first => {
                    r.first_response_at =
                        Some(r.first_response_at.map_or(obs.at, |f| f.min(obs.at)));
                }
                _ => {
                    state.early_outbound.push(obs.at);
                    state.early_outbound.sort_unstable();
                    let extra = state
                        .early_outbound
                        .len()
                        .saturating_sub(EARLY_OUTBOUND_KEPT);
                    state.early_outbound.drain(..extra);
                }
            }
            if let Some(agent) = &obs.agent {
                if state.agent_at.is_none_or(|at| obs.at < at) {
                    r.agent = Some(agent.clone());
                    state.agent_at = Some(obs.at);
                }
            }
        }
    }
    r.first_response_ms = r
        .first_response_at
        .zip(r.first_inbound_at)
        .map(|(response, inbound)| response - inbound);
}

/// Meta's conversation id and pricing of a status, kept as sorted sets.
fn meta(r: &mut ConversationRecord, obs: &Observation) {
    let add = |set: &mut Vec<String>, value: &Option<String>| {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            if let Err(at) = set.binary_search_by(|s| s.as_str().cmp(v)) {
                // Bounded: a conversation sees a handful of categories and Meta ids.
                if set.len() < 32 {
                    set.insert(at, v.to_string());
                }
            }
        }
    };
    add(&mut r.meta_conversation_ids, &obs.meta_conversation_id);
    add(&mut r.pricing_categories, &obs.pricing_category);
    add(&mut r.pricing_types, &obs.pricing_type);
}
