//! What travels on the media queue and back: crm-sync enqueues one [`MediaJob`] per media item
//! of a message once its activity is in the CRM; the media consumer answers with one
//! `media_result` event ([`MediaResultItem`]) on the events queue, which crm-sync turns into the
//! CRM's `media` record through the effects ledger.
//!
//! Keys are stable: a job's message id and its result's event key derive from the activity's
//! event key and the media id, so a job enqueued twice (crm-sync redelivered) or a result
//! reported twice (the media consumer redelivered) still lands one record, once.

use serde::{Deserialize, Serialize};

use super::record::{MediaFailure, MediaState, StoredMedia};
use super::MediaKind;
use crate::event::{Event, EventKind};
use crate::queue::OutgoingMessage;
use crate::webhook::model::{Message, MessageContent};

/// Version of the media job body.
pub const MEDIA_JOB_VERSION: u8 = 1;

/// `Event.field` of media results.
pub const RESULT_FIELD: &str = "media_result";

/// One file to fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaJob {
    pub v: u8,
    /// The event key of the message's activity.
    pub activity_event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The person's stored identity key (`phone:+52…`, `bsuid:…`): the result finds the
    /// contact by it.
    pub contact: String,
    /// The business number the message reached (its token fetches the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    pub media_id: String,
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// As the webhook carried it (base64 or hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A sticker's flag (its limit is larger).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub animated: bool,
    /// When ingest accepted the message (Unix ms): Meta keeps media ids 7 days from then.
    pub received_at: i64,
}

impl MediaJob {
    /// The jobs of an inbound message: one per media item it carries (none for other types).
    pub fn of_message(event: &Event, message: &Message, contact: &str) -> Vec<MediaJob> {
        let (kind, media) = match message.content() {
            MessageContent::Image(m) => (MediaKind::Image, m),
            MessageContent::Audio(m) => (MediaKind::Audio, m),
            MessageContent::Video(m) => (MediaKind::Video, m),
            MessageContent::Document(m) => (MediaKind::Document, m),
            MessageContent::Sticker(m) => (MediaKind::Sticker, m),
            _ => return Vec::new(),
        };
        let Some(media_id) = media.id.clone().filter(|id| !id.is_empty()) else {
            return Vec::new();
        };
        vec![MediaJob {
            v: MEDIA_JOB_VERSION,
            activity_event_id: event.key.clone(),
            message_id: message.id.clone().filter(|id| !id.is_empty()),
            contact: contact.to_string(),
            phone_number_id: event.phone_number_id.clone(),
            media_id,
            kind,
            mime_type: media.mime_type.clone(),
            sha256: media.sha256.clone(),
            filename: media.filename.clone(),
            animated: media.animated.unwrap_or(false),
            received_at: event.received_at,
        }]
    }

    /// The job's queue message id: one per file of a message.
    pub fn job_key(&self) -> String {
        format!("media:{}:{}", self.activity_event_id, self.media_id)
    }

    /// The key of the result event in `state`: a redelivered job reports the same key (the
    /// record lands once); a later state (a quarantined file redriven and stored) is new.
    pub fn result_key(&self, state: MediaState) -> String {
        format!("{}:{}", self.job_key(), state.as_str())
    }

    pub fn to_message(&self) -> OutgoingMessage {
        OutgoingMessage {
            id: self.job_key(),
            // Strings, numbers and bools: always serialises.
            body: serde_json::to_string(self).expect("media jobs serialise"),
            delay: None,
        }
    }

    pub fn from_json(body: &str) -> Result<MediaJob, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The result event of this job.
    pub fn result(
        &self,
        state: MediaState,
        stored: Option<StoredMedia>,
        error: Option<MediaFailure>,
        at: i64,
    ) -> Event {
        let item = MediaResultItem {
            activity_event_id: self.activity_event_id.clone(),
            message_id: self.message_id.clone(),
            contact: self.contact.clone(),
            media_id: self.media_id.clone(),
            kind: self.kind,
            state,
            stored,
            error,
            at,
        };
        Event {
            phone_number_id: self.phone_number_id.clone(),
            ..Event::own(
                self.result_key(state),
                EventKind::MediaResult,
                RESULT_FIELD,
                &item,
            )
        }
    }
}

/// The item of a `media_result` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaResultItem {
    pub activity_event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The person's stored identity key.
    pub contact: String,
    pub media_id: String,
    pub kind: MediaKind,
    pub state: MediaState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MediaFailure>,
    /// Unix ms.
    pub at: i64,
}
