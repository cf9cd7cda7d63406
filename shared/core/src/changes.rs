//! Edits and deletions of messages (Meta's `edit` and `revoke`, inbound or echoed from the
//! WhatsApp Business app): the `message_change` record and the rule that folds changes into
//! the activity they name, whatever order they arrive in.
//!
//! # Ordering rule
//! A change names its original by `message_id` and may arrive before it, after it, redelivered,
//! or after a later change. Folding is order-independent:
//! - a deletion is terminal: once a message is deleted its content stays cleared, and an edit
//!   folded later (a late delivery) changes nothing;
//! - among edits the one with the latest `at` wins (Meta's timestamp of the edit; equal times
//!   are broken by the change's own message id), so a late older edit never replaces a newer;
//! - a change whose original is not there yet is kept (the local CRM stores it as its own
//!   record) and folded when the original arrives.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::records::{Direction, MediaRef, Version};

/// What happened to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `edit`: new text, caption or media.
    Edited,
    /// `revoke`: deleted for everyone by its sender.
    Deleted,
}

/// What a CRM does with a deleted message's content: the mapping's `[revoke] content`.
/// wabridge's own stores always clear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedContent {
    /// The CRM keeps what the message said, marked deleted.
    Keep,
    /// The CRM clears the text, caption and files (the default: the sender withdrew it).
    #[default]
    Clear,
}

/// An edit or deletion of the message `message_id`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageChangeRecord {
    #[serde(default)]
    pub v: Version,
    /// Key of the change's own event (`m:<wamid of the edit or revoke>`).
    pub event_id: String,
    pub contact_id: String,
    /// The original message (`original_message_id`): the activity this changes.
    pub message_id: String,
    /// The edit's or revoke's own wamid.
    pub change_id: Option<String>,
    pub change: Option<ChangeKind>,
    /// `inbound` for the customer's own messages, `outbound` for echoes of the business's.
    pub direction: Option<Direction>,
    /// Echoes: `whatsapp_business_app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the change happened according to Meta (Unix ms).
    pub at: Option<i64>,
    /// Edits: the type of the new content (`text`, `image`, …).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Edits: the new text or caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Edits: the new media object, fetched like any inbound file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaRef>,
    /// Deletions: what the CRM does with the content (the mapping's `[revoke] content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<RevokedContent>,
    /// The conversation of the original message (its mark in the conversation store), when
    /// conversations are on and the original was counted in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

impl MessageChangeRecord {
    /// `message_change:<event id>`: every change is its own record (a store keeps the ones
    /// whose original has not arrived yet).
    pub fn record_key(&self) -> String {
        format!("message_change:{}", self.event_id)
    }

    /// Whether this edit is newer than the one that set `edited_at` / `edit_id`.
    fn newer_than(&self, edited_at: Option<i64>, edit_id: Option<&str>) -> bool {
        let mine = (
            self.at.unwrap_or(0),
            self.change_id.as_deref().unwrap_or(""),
        );
        match edited_at {
            None => true,
            Some(at) => mine > (at, edit_id.unwrap_or("")),
        }
    }
}

/// The activity fields an edit or deletion touches: cleared by a deletion.
const CONTENT_FIELDS: [&str; 5] = ["text", "media", "payload", "ref_code", "fields"];

/// Folds `change` into `activity` (a stored activity record as JSON) by the ordering rule of
/// this module. `clear` says whether a deletion clears the content (wabridge's own stores
/// always do). Returns whether the activity changed.
pub fn fold_into_activity(
    activity: &mut Map<String, Value>,
    change: &MessageChangeRecord,
    clear: bool,
) -> bool {
    if activity.get("deleted_at").is_some_and(|v| !v.is_null()) {
        // Terminal: nothing changes a deleted message (a late edit, a redelivered revoke).
        return false;
    }
    match change.change {
        Some(ChangeKind::Deleted) => {
            if clear {
                for field in CONTENT_FIELDS {
                    activity.remove(field);
                }
            }
            activity.insert("deleted_at".into(), json_at(change.at));
            true
        }
        Some(ChangeKind::Edited) => {
            let edited_at = activity.get("edited_at").and_then(Value::as_i64);
            let edit_id = activity.get("edit_id").and_then(Value::as_str);
            if !change.newer_than(edited_at, edit_id) {
                return false;
            }
            set_or_remove(activity, "text", change.text.clone().map(Value::String));
            if !change.media.is_empty() {
                activity.insert(
                    "media".into(),
                    serde_json::to_value(&change.media).unwrap_or(Value::Null),
                );
            }
            activity.insert("edited_at".into(), json_at(change.at));
            set_or_remove(
                activity,
                "edit_id",
                change.change_id.clone().map(Value::String),
            );
            true
        }
        None => false,
    }
}

/// Clears an edit's content (a change record stored after its message was deleted, or before
/// the deletion arrived): only the fact of the edit stays.
pub fn clear_change(change: &mut Map<String, Value>) {
    change.remove("text");
    change.remove("media");
}

fn json_at(at: Option<i64>) -> Value {
    at.map_or(Value::Null, Value::from)
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            map.insert(key.into(), v);
        }
        None => {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edit(id: &str, at: i64, text: &str) -> MessageChangeRecord {
        MessageChangeRecord {
            event_id: format!("m:{id}"),
            message_id: "wamid.orig".into(),
            change_id: Some(id.into()),
            change: Some(ChangeKind::Edited),
            at: Some(at),
            text: Some(text.into()),
            ..Default::default()
        }
    }

    fn revoke(at: i64) -> MessageChangeRecord {
        MessageChangeRecord {
            event_id: "m:wamid.rev".into(),
            message_id: "wamid.orig".into(),
            change_id: Some("wamid.rev".into()),
            change: Some(ChangeKind::Deleted),
            at: Some(at),
            ..Default::default()
        }
    }

    fn activity() -> Map<String, Value> {
        json!({"type": "text", "text": "Hola, quiero 2 camisas", "message_id": "wamid.orig"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn any_order_of_two_edits_ends_on_the_newer() {
        let (a, b) = (
            edit("wamid.e1", 1_000, "quiero 3"),
            edit("wamid.e2", 2_000, "quiero 4"),
        );
        for order in [[&a, &b], [&b, &a]] {
            let mut act = activity();
            for c in order {
                fold_into_activity(&mut act, c, true);
            }
            assert_eq!(act["text"], "quiero 4");
            assert_eq!(act["edited_at"], 2_000);
            assert_eq!(act["edit_id"], "wamid.e2");
        }
        let mut act = activity();
        assert!(fold_into_activity(&mut act, &b, true));
        assert!(!fold_into_activity(&mut act, &b, true), "a redelivery");
    }

    #[test]
    fn a_deletion_is_terminal_and_clears_when_told() {
        let e = edit("wamid.e1", 1_000, "quiero 3");
        for order in [[e.clone(), revoke(5_000)], [revoke(5_000), e.clone()]] {
            let mut act = activity();
            act.insert("media".into(), json!([{"id": "m1"}]));
            for c in &order {
                fold_into_activity(&mut act, c, true);
            }
            assert_eq!(act.get("text"), None, "{order:?}");
            assert_eq!(act.get("media"), None);
            assert_eq!(act["deleted_at"], 5_000);
        }
        let mut kept = activity();
        fold_into_activity(&mut kept, &revoke(5_000), false);
        assert_eq!(kept["text"], "Hola, quiero 2 camisas", "keep: marked only");
        assert_eq!(kept["deleted_at"], 5_000);
    }
}
