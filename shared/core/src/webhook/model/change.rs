//! Edits and revokes of a message (`type: edit`, `type: revoke`), the `unsupported` notice Meta
//! sends instead of a type it cannot deliver yet (edits, for a while, as `unsupported` with
//! error 131051), and a user's reply to a call permission request.

use serde::{Deserialize, Serialize};

use super::*;

/// `edit`: the message `original_message_id` now reads as `message` (its type and content; an
/// edited caption, or a new media object).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Edit {
    #[serde(default, deserialize_with = "lenient::string")]
    pub original_message_id: Option<String>,
    /// A malformed one fails the item (the edit would otherwise land with no content).
    #[serde(default)]
    pub message: Option<Box<Message>>,
}

/// `revoke`: the sender deleted `original_message_id` for everyone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Revoke {
    #[serde(default, deserialize_with = "lenient::string")]
    pub original_message_id: Option<String>,
}

/// `unsupported`: what Meta could not deliver (`type`, e.g. `edit`), when it says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unsupported {
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub unsupported_type: Option<String>,
}

/// `interactive.call_permission_reply`: the user's answer to a call permission request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallPermissionReply {
    /// `accept` or `reject` (kept as sent).
    #[serde(default, deserialize_with = "lenient::string")]
    pub response: Option<String>,
    #[serde(default)]
    pub is_permanent: Option<bool>,
    /// Accept only: when the permission ends (Unix seconds).
    #[serde(default, deserialize_with = "lenient::int")]
    pub expiration_timestamp: Option<i64>,
    /// `user_action` or `automatic`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub response_source: Option<String>,
}

/// The user of an item that names both ends (an echo, a call): `to` for an echo per Meta's
/// reference, unless `to` is the business number itself (as in some fixtures), then `from`.
/// `business` is the change's `display_phone_number`; numbers compare by their digits.
pub fn user_end<'a>(
    business: Option<&str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
) -> Option<&'a str> {
    let digits = |n: &str| n.chars().filter(char::is_ascii_digit).collect::<String>();
    let business = business.map(digits);
    let is_business = |n: &str| business.as_deref() == Some(digits(n).as_str());
    let (from, to) = (from.filter(|s| !s.is_empty()), to.filter(|s| !s.is_empty()));
    match (to, from) {
        (Some(to), Some(from)) if is_business(to) && !is_business(from) => Some(from),
        (Some(to), _) => Some(to),
        (None, from) => from.filter(|f| !is_business(f)),
    }
}
