//! The `calls` field: `value.calls[]` (connect, terminate) and `value.statuses[]` of
//! `type: call` (RINGING, ACCEPTED, REJECTED of a business-initiated call), typed as one item.

use serde::{Deserialize, Serialize};

use super::*;

/// One event of a WhatsApp call. Call ids start `wacid.` (never a message's `wamid.`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallEvent {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub to: Option<String>,
    /// `calls[]`: `connect` or `terminate` (kept as sent).
    #[serde(default, deserialize_with = "lenient::string")]
    pub event: Option<String>,
    /// `USER_INITIATED` or `BUSINESS_INITIATED`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub direction: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    /// Terminate: `COMPLETED` or `FAILED`; a status item: `RINGING`, `ACCEPTED`, `REJECTED`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
    /// A status item: `call`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub item_type: Option<String>,
    /// A status item: the user called.
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub recipient_user_id: Option<String>,
    /// Terminate: when the call was answered and ended (Unix seconds), and how long it lasted.
    #[serde(default, deserialize_with = "lenient::int")]
    pub start_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub end_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub duration: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub errors: Vec<WebhookError>,
}

impl CallEvent {
    /// Whether this item came from `value.statuses[]` (it has a `type`, no `event`).
    pub fn is_status(&self) -> bool {
        self.event.is_none() && self.status.is_some()
    }

    /// Whether the user placed the call (`USER_INITIATED`); `None` when the item does not say.
    pub fn user_initiated(&self) -> Option<bool> {
        match self.direction.as_deref()?.to_ascii_uppercase().as_str() {
            "USER_INITIATED" => Some(true),
            "BUSINESS_INITIATED" => Some(false),
            _ => None,
        }
    }

    /// The user's number: the caller of a user-initiated call, the callee of a business one,
    /// the recipient of a status. Without a direction, whichever of `from` / `to` is not the
    /// business number (`display`).
    pub fn user_wa_id(&self, display: Option<&str>) -> Option<&str> {
        if let Some(r) = self.recipient_id.as_deref() {
            return Some(r);
        }
        match self.user_initiated() {
            Some(true) => self.from.as_deref(),
            Some(false) => self.to.as_deref(),
            None => user_end(display, self.from.as_deref(), self.to.as_deref()),
        }
    }
}
