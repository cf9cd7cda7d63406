//! `value.statuses[]`: what happened to a message we sent.

use serde::{Deserialize, Serialize};

use super::*;

/// `value.statuses[]`: what happened to a message we sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// The wamid of our outbound message.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<StatusKind>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_parent_user_id: Option<String>,
    /// `group` for a message sent to a group: `recipient_id` is then the group's id, and the
    /// participant (if any) is in the `recipient_participant_*` members.
    #[serde(default)]
    pub recipient_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_participant_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_participant_user_id: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub conversation: Option<Conversation>,
    #[serde(default)]
    pub pricing: Option<Pricing>,
    #[serde(default)]
    pub errors: Vec<WebhookError>,
}

/// A status of an outbound message. Statuses arrive out of order and may skip steps (only `read`
/// when delivered and read at once), so consumers apply one only when it moves forward
/// ([`StatusKind::advances`]): sent < delivered < read < played; `failed` is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    #[serde(other)]
    Unknown,
}

impl Status {
    /// Whether this is the status of a message sent to a group (`recipient_type: group`).
    pub fn is_group(&self) -> bool {
        self.recipient_type.as_deref() == Some("group")
    }
}

impl StatusKind {
    /// Position in the forward order. `Unknown` is 0 (never replaces a known status); `Failed`
    /// ranks last so nothing replaces it.
    pub fn rank(self) -> u8 {
        match self {
            StatusKind::Unknown => 0,
            StatusKind::Sent => 1,
            StatusKind::Delivered => 2,
            StatusKind::Read => 3,
            StatusKind::Played => 4,
            StatusKind::Failed => 5,
        }
    }

    /// The kind named `name` (`Unknown` for any other), for statuses stored as text.
    pub fn parse(name: &str) -> StatusKind {
        match name {
            "sent" => StatusKind::Sent,
            "delivered" => StatusKind::Delivered,
            "read" => StatusKind::Read,
            "played" => StatusKind::Played,
            "failed" => StatusKind::Failed,
            _ => StatusKind::Unknown,
        }
    }

    pub fn is_terminal(self) -> bool {
        self == StatusKind::Failed
    }

    /// Whether a stored status `current` (None = nothing yet) should be replaced by `self`.
    pub fn advances(self, current: Option<StatusKind>) -> bool {
        match current {
            None => self != StatusKind::Unknown,
            Some(c) => self.rank() > c.rank(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Sent => "sent",
            StatusKind::Delivered => "delivered",
            StatusKind::Read => "read",
            StatusKind::Played => "played",
            StatusKind::Failed => "failed",
            StatusKind::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub origin: Option<ConversationOrigin>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub expiration_timestamp: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationOrigin {
    #[serde(rename = "type", default)]
    pub origin_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    #[serde(default)]
    pub billable: Option<bool>,
    #[serde(default)]
    pub pricing_model: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(rename = "type", default)]
    pub pricing_type: Option<String>,
}
