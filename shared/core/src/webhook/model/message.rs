//! `value.messages[]`: the message, its type, and a typed view of its content.

use serde::{Deserialize, Serialize};

use super::*;

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
    /// Echoes (`smb_message_echoes`): the user the business wrote to.
    #[serde(default, deserialize_with = "lenient::string")]
    pub to: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub to_user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
    #[serde(rename = "type", default)]
    pub message_type: Option<MessageType>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub context: Option<Context>,
    /// Not an object: read as absent (see [`lenient::optional`]).
    #[serde(default, deserialize_with = "lenient::optional")]
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
    #[serde(default)]
    pub edit: Option<Edit>,
    #[serde(default)]
    pub revoke: Option<Revoke>,
    /// Not an object: read as absent (see [`lenient::optional`]).
    #[serde(default, deserialize_with = "lenient::optional")]
    pub unsupported: Option<Unsupported>,
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
    /// A change of an earlier message's text, caption or media ([`Edit`]).
    Edit,
    /// An earlier message deleted for everyone ([`Revoke`]).
    Revoke,
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
            "edit" => MessageType::Edit,
            "revoke" => MessageType::Revoke,
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
    Edit(&'a Edit),
    Revoke(&'a Revoke),
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
            (self.edit.is_some(), MessageType::Edit),
            (self.revoke.is_some(), MessageType::Revoke),
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
            MessageType::Edit => self.edit.as_ref().map_or(missing, C::Edit),
            MessageType::Revoke => self.revoke.as_ref().map_or(missing, C::Revoke),
            MessageType::Unknown => C::Unknown,
        }
    }
}

impl Message {
    /// The message an edit or revoke changes (`original_message_id`), when this is one.
    pub fn original_message_id(&self) -> Option<&str> {
        let id = match self.content() {
            MessageContent::Edit(e) => e.original_message_id.as_deref(),
            MessageContent::Revoke(r) => r.original_message_id.as_deref(),
            _ => None,
        };
        id.filter(|s| !s.is_empty())
    }

    /// The message whose media the media pipeline fetches: this one, or for an edit its new
    /// content under the original's id (the file belongs to the activity the edit changes).
    pub fn media_source(&self) -> Option<std::borrow::Cow<'_, Message>> {
        match self.content() {
            MessageContent::Edit(e) => {
                let mut inner = e.message.as_deref()?.clone();
                inner.id = self.original_message_id().map(str::to_string);
                Some(std::borrow::Cow::Owned(inner))
            }
            MessageContent::Revoke(_) => None,
            _ => Some(std::borrow::Cow::Borrowed(self)),
        }
    }
}
