//! The envelope of a POST (entries, changes, metadata) and the senders in
//! `value.contacts[]`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::*;

/// The whole POST body. `value` stays raw here; type it with [`MessagesValue`] or the per-field
/// types (the splitter does that per item).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub object: String,
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub time: Option<i64>,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    pub field: String,
    pub value: Box<RawValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_phone_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone_number_id: Option<String>,
}

/// `value` of the `messages` field: inbound messages with their senders, statuses of outbound
/// messages, or change-level errors.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessagesValue {
    pub messaging_product: Option<String>,
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
    #[serde(default)]
    pub errors: Vec<WebhookError>,
}

// ---------------------------------------------------------------------------------------------
// Contacts (senders)

/// `value.contacts[]`: who sent the message. `wa_id` is absent for username-only users.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), `CC.<alphanumerics>`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub parent_user_id: Option<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
    #[serde(default)]
    pub identity_key_hash: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
    /// WhatsApp username (2026).
    #[serde(default)]
    pub username: Option<String>,
}
