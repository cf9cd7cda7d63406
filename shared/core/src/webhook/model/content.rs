//! What a message carries: text, media, location, contact cards, interactive replies, buttons,
//! orders, reactions, system notices, its context, ad referrals and errors.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Text {
    #[serde(default)]
    pub body: String,
}

/// Image, audio, video, document or sticker. Downloading needs a Graph call with `id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    /// Documents.
    #[serde(default)]
    pub filename: Option<String>,
    /// Audio: recorded as a voice note.
    #[serde(default)]
    pub voice: Option<bool>,
    /// Stickers.
    #[serde(default)]
    pub animated: Option<bool>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(default, deserialize_with = "lenient::float")]
    pub latitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// A contact card shared in a `contacts` message (not the sender).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedContact {
    #[serde(default)]
    pub name: Option<ContactName>,
    #[serde(default)]
    pub phones: Vec<ContactPhone>,
    #[serde(default)]
    pub emails: Vec<ContactEmail>,
    #[serde(default)]
    pub org: Option<ContactOrg>,
    #[serde(default)]
    pub birthday: Option<String>,
    #[serde(default)]
    pub addresses: Vec<serde_json::Value>,
    #[serde(default)]
    pub urls: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactName {
    #[serde(default)]
    pub formatted_name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub middle_name: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactPhone {
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    #[serde(rename = "type", default)]
    pub phone_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactEmail {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "type", default)]
    pub email_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactOrg {
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interactive {
    #[serde(rename = "type", default)]
    pub interactive_type: Option<InteractiveType>,
    #[serde(default)]
    pub button_reply: Option<ButtonReply>,
    #[serde(default)]
    pub list_reply: Option<ListReply>,
    #[serde(default)]
    pub nfm_reply: Option<NfmReply>,
    #[serde(default)]
    pub call_permission_reply: Option<CallPermissionReply>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveType {
    ButtonReply,
    ListReply,
    NfmReply,
    CallPermissionReply,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ButtonReply {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A WhatsApp Flow's reply. `response_json` is a JSON document encoded as a string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NfmReply {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub response_json: Option<String>,
}

/// Quick-reply button of a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Button {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    #[serde(default, deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub product_items: Vec<ProductItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductItem {
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub quantity: Option<i64>,
    #[serde(default, deserialize_with = "lenient::float")]
    pub item_price: Option<f64>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// A reaction; an empty or missing `emoji` means the reaction was removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
}

impl Reaction {
    pub fn is_removal(&self) -> bool {
        self.emoji.as_deref().is_none_or(str::is_empty)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct System {
    #[serde(rename = "type", default)]
    pub system_type: Option<SystemType>,
    #[serde(default)]
    pub body: Option<String>,
    /// New wa_id after a number change.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// Pre-v12 name of `wa_id`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub new_wa_id: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub parent_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub previous_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub previous_parent_user_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemType {
    CustomerChangedNumber,
    UserChangedNumber,
    CustomerIdentityChanged,
    UserChangedUserId,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<ReferredProduct>,
    /// Members we do not model, kept so a stored context is what Meta sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferredProduct {
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub catalog_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub product_retailer_id: Option<String>,
}

/// Click-to-WhatsApp ad attribution (first message after the click only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_url: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub headline: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub media_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_url: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub video_url: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub thumbnail_url: Option<String>,
    /// Click id to report conversions back to Meta.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ctwa_clid: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub welcome_message: Option<WelcomeMessage>,
    /// Members we do not model, kept so a stored referral is what Meta sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WelcomeMessage {
    #[serde(default)]
    pub text: Option<String>,
}

/// An error object, in `messages[].errors`, `statuses[].errors` or change-level `errors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookError {
    #[serde(default, deserialize_with = "lenient::int")]
    pub code: Option<i64>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
    #[serde(default)]
    pub href: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<String>,
}
