//! Typed model of what Meta sends on the WhatsApp webhook (Cloud API, v23.0 and the 2026 username
//! / BSUID fields).
//!
//! Parsing is deliberately forgiving, because the webhook is Meta's contract, not ours:
//! - every field is optional unless Meta has always sent it, and `from` / `wa_id` may be absent
//!   (users with a username are identified by `from_user_id` / `user_id` only);
//! - ids, phone numbers and timestamps accept a JSON string or a number (group examples carry a
//!   numeric `wa_id`), see [`lenient`];
//! - enums have an `Other` / `Unknown` fallback, so a new value Meta starts sending never fails a
//!   parse;
//! - unknown keys are ignored here; the splitter keeps every item's raw JSON, so nothing is lost.
//!
//! Consumers get the typed view of an event's item with [`parse_item`] and of its contact with
//! [`parse_contact`].

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::{Event, EventKind};

/// Deserializers that accept the string-or-number inconsistencies of Meta's payloads.
pub mod lenient {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    struct StringLike;

    impl<'de> Visitor<'de> for StringLike {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, a number or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(StringLike)
        }
    }

    /// `Option<String>` from a JSON string, number or null.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(StringLike)
    }

    struct IntLike;

    impl<'de> Visitor<'de> for IntLike {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer, a string of digits or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            // A non-numeric string is kept as "absent" rather than failing the whole item.
            Ok(v.trim().parse().ok())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(if v.is_finite() { Some(v as i64) } else { None })
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(IntLike)
        }
    }

    /// `Option<i64>` from a JSON integer or a string of digits (Meta's timestamps are strings).
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_option(IntLike)
    }

    struct FloatLike;

    impl<'de> Visitor<'de> for FloatLike {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, a numeric string or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(FloatLike)
        }
    }

    /// `Option<f64>` from a JSON number or a numeric string.
    pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_option(FloatLike)
    }
}

// ---------------------------------------------------------------------------------------------
// Envelope

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

// ---------------------------------------------------------------------------------------------
// Messages

/// `value.messages[]`. The content sits in the member named after the type (`text`, `image`, …);
/// [`Message::content`] gives a typed view. `type` may be missing (the spec's location example
/// has none): [`Message::kind`] then infers it from the member present.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub id: Option<String>,
    /// Sender's phone (wa_id); absent for username-only users.
    #[serde(default, deserialize_with = "lenient::string")]
    pub from: Option<String>,
    /// Sender's BSUID.
    #[serde(default, deserialize_with = "lenient::string")]
    pub from_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub from_parent_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(rename = "type", default)]
    pub message_type: Option<MessageType>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub context: Option<Context>,
    #[serde(default)]
    pub referral: Option<Referral>,
    #[serde(default)]
    pub errors: Vec<WebhookError>,

    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub image: Option<Media>,
    #[serde(default)]
    pub audio: Option<Media>,
    #[serde(default)]
    pub video: Option<Media>,
    #[serde(default)]
    pub document: Option<Media>,
    #[serde(default)]
    pub sticker: Option<Media>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub contacts: Option<Vec<SharedContact>>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    #[serde(default)]
    pub button: Option<Button>,
    #[serde(default)]
    pub order: Option<Order>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    #[serde(default)]
    pub system: Option<System>,
}

/// Message types we model. Anything else is `Unknown` (and its event has kind `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Text,
    Image,
    Audio,
    Video,
    Document,
    Sticker,
    Location,
    Contacts,
    Interactive,
    Button,
    Order,
    Reaction,
    System,
    RequestWelcome,
    Unsupported,
    #[serde(other)]
    Unknown,
}

impl MessageType {
    /// The type for a `type` string; `Unknown` for anything we do not model.
    pub fn from_name(name: &str) -> MessageType {
        match name {
            "text" => MessageType::Text,
            "image" => MessageType::Image,
            "audio" => MessageType::Audio,
            "video" => MessageType::Video,
            "document" => MessageType::Document,
            "sticker" => MessageType::Sticker,
            "location" => MessageType::Location,
            "contacts" => MessageType::Contacts,
            "interactive" => MessageType::Interactive,
            "button" => MessageType::Button,
            "order" => MessageType::Order,
            "reaction" => MessageType::Reaction,
            "system" => MessageType::System,
            "request_welcome" => MessageType::RequestWelcome,
            "unsupported" => MessageType::Unsupported,
            _ => MessageType::Unknown,
        }
    }
}

/// Borrowed, typed view of a message's content.
#[derive(Debug, Clone, Copy)]
pub enum MessageContent<'a> {
    Text(&'a Text),
    Image(&'a Media),
    Audio(&'a Media),
    Video(&'a Media),
    Document(&'a Media),
    Sticker(&'a Media),
    Location(&'a Location),
    Contacts(&'a [SharedContact]),
    Interactive(&'a Interactive),
    Button(&'a Button),
    Order(&'a Order),
    Reaction(&'a Reaction),
    System(&'a System),
    RequestWelcome,
    /// `unsupported`: the reason is in [`Message::errors`].
    Unsupported,
    /// An unknown type, or a known type whose member is missing.
    Unknown,
}

impl Message {
    /// The message type: `type` when present, else inferred from the content member present.
    pub fn kind(&self) -> MessageType {
        if let Some(t) = self.message_type {
            return t;
        }
        let inferred = [
            (self.text.is_some(), MessageType::Text),
            (self.image.is_some(), MessageType::Image),
            (self.audio.is_some(), MessageType::Audio),
            (self.video.is_some(), MessageType::Video),
            (self.document.is_some(), MessageType::Document),
            (self.sticker.is_some(), MessageType::Sticker),
            (self.location.is_some(), MessageType::Location),
            (self.contacts.is_some(), MessageType::Contacts),
            (self.interactive.is_some(), MessageType::Interactive),
            (self.button.is_some(), MessageType::Button),
            (self.order.is_some(), MessageType::Order),
            (self.reaction.is_some(), MessageType::Reaction),
            (self.system.is_some(), MessageType::System),
        ];
        inferred
            .into_iter()
            .find(|(present, _)| *present)
            .map(|(_, t)| t)
            .unwrap_or(MessageType::Unknown)
    }

    pub fn content(&self) -> MessageContent<'_> {
        use MessageContent as C;
        let missing = C::Unknown;
        match self.kind() {
            MessageType::Text => self.text.as_ref().map_or(missing, C::Text),
            MessageType::Image => self.image.as_ref().map_or(missing, C::Image),
            MessageType::Audio => self.audio.as_ref().map_or(missing, C::Audio),
            MessageType::Video => self.video.as_ref().map_or(missing, C::Video),
            MessageType::Document => self.document.as_ref().map_or(missing, C::Document),
            MessageType::Sticker => self.sticker.as_ref().map_or(missing, C::Sticker),
            MessageType::Location => self.location.as_ref().map_or(missing, C::Location),
            MessageType::Contacts => self.contacts.as_deref().map_or(missing, C::Contacts),
            MessageType::Interactive => self.interactive.as_ref().map_or(missing, C::Interactive),
            MessageType::Button => self.button.as_ref().map_or(missing, C::Button),
            MessageType::Order => self.order.as_ref().map_or(missing, C::Order),
            MessageType::Reaction => self.reaction.as_ref().map_or(missing, C::Reaction),
            MessageType::System => self.system.as_ref().map_or(missing, C::System),
            MessageType::RequestWelcome => C::RequestWelcome,
            MessageType::Unsupported => C::Unsupported,
            MessageType::Unknown => C::Unknown,
        }
    }
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveType {
    ButtonReply,
    ListReply,
    NfmReply,
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
    #[serde(default, deserialize_with = "lenient::string")]
    pub from: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub forwarded: Option<bool>,
    #[serde(default)]
    pub frequently_forwarded: Option<bool>,
    #[serde(default)]
    pub referred_product: Option<ReferredProduct>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferredProduct {
    #[serde(default, deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
}

/// Click-to-WhatsApp ad attribution (first message after the click only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub headline: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub video_url: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    /// Click id to report conversions back to Meta.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    #[serde(default)]
    pub welcome_message: Option<WelcomeMessage>,
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

// ---------------------------------------------------------------------------------------------
// Statuses

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

// ---------------------------------------------------------------------------------------------
// Other fields

/// `message_template_status_update` value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    #[serde(default)]
    pub event: Option<TemplateEvent>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub message_template_id: Option<String>,
    #[serde(default)]
    pub message_template_name: Option<String>,
    #[serde(default)]
    pub message_template_language: Option<String>,
    #[serde(default)]
    pub message_template_category: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub other_info: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateEvent {
    Approved,
    Rejected,
    Pending,
    Paused,
    Disabled,
    Flagged,
    InAppeal,
    Reinstated,
    PendingDeletion,
    Deleted,
    LimitExceeded,
    #[serde(other)]
    Other,
}

/// `phone_number_quality_update` value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QualityUpdate {
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_phone_number: Option<String>,
    /// FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE, ONBOARDING, … (kept as sent).
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub current_limit: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_daily_conversation_per_phone: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_daily_conversations_per_business: Option<i64>,
    #[serde(default)]
    pub old_limit: Option<String>,
}

/// One `value.user_preferences[]` item of the `user_preferences` field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserPreference {
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// `marketing_messages`.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub value: Option<PreferenceValue>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceValue {
    Stop,
    Resume,
    #[serde(other)]
    Other,
}

/// `account_update` value (bans, violations, restrictions, verification, …). Only the common
/// members are typed; the rest stay in the event's raw JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountUpdate {
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub ban_info: Option<serde_json::Value>,
    #[serde(default)]
    pub violation_info: Option<serde_json::Value>,
    #[serde(default)]
    pub restriction_info: Option<serde_json::Value>,
    #[serde(default)]
    pub lock_info: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Typed view of an event

/// The typed item of an [`Event`].
#[derive(Debug, Clone)]
pub enum Item {
    Message(Box<Message>),
    Status(Box<Status>),
    TemplateStatus(TemplateStatusUpdate),
    QualityUpdate(QualityUpdate),
    UserPreference(UserPreference),
    AccountUpdate(AccountUpdate),
    /// Not modelled: read `event.item` (raw JSON) and `event.field`.
    Unknown,
}

/// Parses an event's item with the type its kind promises.
pub fn parse_item(event: &Event) -> Result<Item, serde_json::Error> {
    let raw = event.item.get();
    Ok(match event.kind {
        EventKind::Message => Item::Message(Box::new(serde_json::from_str(raw)?)),
        EventKind::Status => Item::Status(Box::new(serde_json::from_str(raw)?)),
        EventKind::TemplateStatus => Item::TemplateStatus(serde_json::from_str(raw)?),
        EventKind::QualityUpdate => Item::QualityUpdate(serde_json::from_str(raw)?),
        EventKind::UserPreference => Item::UserPreference(serde_json::from_str(raw)?),
        EventKind::AccountUpdate => Item::AccountUpdate(serde_json::from_str(raw)?),
        EventKind::Unknown | EventKind::SendResult => Item::Unknown,
    })
}

/// The sender (`value.contacts[]` item) attached to an event, typed.
pub fn parse_contact(event: &Event) -> Option<Result<Contact, serde_json::Error>> {
    event
        .contact
        .as_ref()
        .map(|raw| serde_json::from_str(raw.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_order_moves_only_forward() {
        use StatusKind::*;
        assert!(Sent.advances(None));
        assert!(Delivered.advances(Some(Sent)));
        assert!(Read.advances(Some(Sent)));
        assert!(Played.advances(Some(Read)));
        assert!(
            !Delivered.advances(Some(Read)),
            "late delivered must not downgrade read"
        );
        assert!(!Sent.advances(Some(Delivered)));
        assert!(!Read.advances(Some(Read)));
        assert!(Failed.advances(Some(Delivered)));
        assert!(!Read.advances(Some(Failed)), "failed is terminal");
        assert!(!Unknown.advances(None));
        assert!(!Unknown.advances(Some(Sent)));
        assert!(Failed.is_terminal() && !Read.is_terminal());
    }

    #[test]
    fn unknown_enum_values_do_not_fail() {
        let s: Status = serde_json::from_str(r#"{"id":"w","status":"deleted"}"#).unwrap();
        assert_eq!(s.status, Some(StatusKind::Unknown));
        let m: Message =
            serde_json::from_str(r#"{"id":"w","type":"hologram","hologram":{}}"#).unwrap();
        assert_eq!(m.kind(), MessageType::Unknown);
        let sys: System = serde_json::from_str(r#"{"type":"user_did_a_new_thing"}"#).unwrap();
        assert_eq!(sys.system_type, Some(SystemType::Other));
        let t: TemplateStatusUpdate =
            serde_json::from_str(r#"{"event":"SOMETHING_NEW","message_template_id":1}"#).unwrap();
        assert_eq!(t.event, Some(TemplateEvent::Other));
        assert_eq!(t.message_template_id.as_deref(), Some("1"));
    }

    #[test]
    fn location_without_type_is_inferred() {
        let m: Message = serde_json::from_str(
            r#"{"from":"5215512345678","id":"w","timestamp":"1","location":{"latitude":19.43,"longitude":-99.13}}"#,
        )
        .unwrap();
        assert_eq!(m.kind(), MessageType::Location);
        match m.content() {
            MessageContent::Location(l) => assert_eq!(l.latitude, Some(19.43)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(m.timestamp, Some(1));
    }

    #[test]
    fn numbers_and_strings_are_both_accepted() {
        let c: Contact = serde_json::from_str(r#"{"wa_id":16505551234}"#).unwrap();
        assert_eq!(c.wa_id.as_deref(), Some("16505551234"));
        let c: Contact = serde_json::from_str(r#"{"wa_id":null,"user_id":"MX.abc"}"#).unwrap();
        assert_eq!(c.wa_id, None);
        let p: ProductItem =
            serde_json::from_str(r#"{"quantity":"2","item_price":"30.5"}"#).unwrap();
        assert_eq!((p.quantity, p.item_price), (Some(2), Some(30.5)));
    }

    #[test]
    fn bsuid_only_sender() {
        let m: Message = serde_json::from_str(
            r#"{"from_user_id":"BR.13491208655302741918","id":"w","timestamp":"1","type":"text","text":{"body":"Oi"}}"#,
        )
        .unwrap();
        assert_eq!(m.from, None);
        assert_eq!(m.from_user_id.as_deref(), Some("BR.13491208655302741918"));
        let c: Contact = serde_json::from_str(
            r#"{"user_id":"BR.13491208655302741918","profile":{"name":"Ana","username":"ana.souza"}}"#,
        )
        .unwrap();
        assert_eq!(c.profile.unwrap().username.as_deref(), Some("ana.souza"));
    }

    #[test]
    fn reaction_removal() {
        let r: Reaction = serde_json::from_str(r#"{"message_id":"w","emoji":""}"#).unwrap();
        assert!(r.is_removal());
        let r: Reaction = serde_json::from_str(r#"{"message_id":"w","emoji":"👍"}"#).unwrap();
        assert!(!r.is_removal());
    }
}
