//! Edits and revokes (`type: edit` / `revoke`, inbound or echoed): a `message_change` record
//! naming the original message, with the new text, caption or media of an edit. Echoes: who
//! the user is.

use crate::calls::BUSINESS_APP_AGENT;
use crate::changes::{ChangeKind, MessageChangeRecord};
use crate::event::Event;
use crate::records::{ActivityRecord, Direction};
use crate::webhook::model::{user_end, Message, MessageContent};

use super::message::{describe, kind_name};
use super::{ms, nonempty, PlanError};

/// The change record of an edit or revoke; `None` for any other message.
pub(super) fn change_record(
    event: &Event,
    message: &Message,
    echo: bool,
) -> Result<Option<MessageChangeRecord>, PlanError> {
    let (change, inner) = match message.content() {
        MessageContent::Edit(e) => (ChangeKind::Edited, e.message.as_deref()),
        MessageContent::Revoke(_) => (ChangeKind::Deleted, None),
        _ => return Ok(None),
    };
    let Some(original) = message.original_message_id() else {
        return Err(PlanError::Missing(match change {
            ChangeKind::Edited => "edit without edit.original_message_id",
            ChangeKind::Deleted => "revoke without revoke.original_message_id",
        }));
    };
    let mut record = MessageChangeRecord {
        event_id: event.key.clone(),
        message_id: original.to_string(),
        change_id: nonempty(message.id.as_deref()).map(str::to_string),
        change: Some(change),
        direction: Some(if echo {
            Direction::Outbound
        } else {
            Direction::Inbound
        }),
        agent: echo.then(|| BUSINESS_APP_AGENT.to_string()),
        at: ms(message.timestamp).or(Some(event.received_at)),
        ..Default::default()
    };
    if change == ChangeKind::Edited {
        let Some(inner) = inner else {
            return Err(PlanError::Missing("edit without edit.message"));
        };
        // The new content reads like a message of its own: text, caption, media.
        let mut described = ActivityRecord::default();
        describe(&inner.content(), &mut described);
        record.kind = Some(kind_name(inner));
        record.text = described.text;
        record.media = described.media;
    }
    Ok(Some(record))
}

/// The user of an echo (see [`user_end`]).
pub(super) fn echo_user<'m>(event: &Event, message: &'m Message) -> Option<&'m str> {
    user_end(
        event.display_phone_number.as_deref(),
        message.from.as_deref(),
        message.to.as_deref(),
    )
}
