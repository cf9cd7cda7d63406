//! Outcomes: how a conversation ended for the business (`resolved`, `converted`, …), from the
//! mapping's `[outcomes] ids`, set through `PATCH /conversations/{id}` ([`super::route`]) or
//! by a conversion (`converted`, [`super::update`]).

use serde::Deserialize;

use super::ConversationRecord;
use crate::event::{Event, EventKind};

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

/// The event that carries a conversation changed through the API to crm-sync.
pub fn event(record: &ConversationRecord) -> Event {
    let key = format!("v:{}:{}", record.id, record.revision);
    Event::own(key, EventKind::Conversation, "conversation", record)
}
