//! What the CRM learns of a media file: its state on the activity (`media[].state`), and the
//! `media` record that follows once the pipeline is done with it: stored (with the link and
//! the file's metadata), failed (gone at Meta, quarantined) or refused (type or size). The same
//! types travel on the queues: the media job crm-sync enqueues and the result the media
//! consumer reports back on the events queue.

use serde::{Deserialize, Serialize};

use crate::records::Version;

/// Where a media file is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    /// The activity landed; the file is on its way (a `media` record follows).
    #[default]
    Pending,
    /// Downloaded, verified and stored: `stored` says where.
    Stored,
    /// Could not be stored and never will be (gone at Meta, quarantined after failed checks).
    Failed,
    /// Outside WhatsApp's types or limits: never stored.
    Refused,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Pending => "pending",
            MediaState::Stored => "stored",
            MediaState::Failed => "failed",
            MediaState::Refused => "refused",
        }
    }
}

/// A stored file, as the CRM sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoredMedia {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The gateway link that opens it (`{WABRIDGE_PUBLIC_URL}/media/{id}?t=…`), valid until
    /// `link_expires_at`; absent when the gateway has no public URL or no link key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_expires_at: Option<i64>,
}

/// Why a file was not stored: a stable code (`media_gone`, `media_quarantined`,
/// `media_too_large`, `media_type_not_allowed`) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MediaFailure {
    pub code: String,
    pub message: String,
}

/// The pipeline's word on one file of one message: a CRM record of its own (`kind: media`),
/// keyed by the message and the media id, so a CRM can attach it to the activity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaRecord {
    #[serde(default)]
    pub v: Version,
    /// The event key of this result.
    pub event_id: String,
    /// The event key of the message's activity.
    pub activity_event_id: String,
    pub contact_id: String,
    /// The WhatsApp message id (`wamid.…`) of the activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Meta's media id.
    pub media_id: String,
    /// `image`, `audio`, `video`, `document`, `sticker`.
    #[serde(rename = "type")]
    pub kind: String,
    pub state: MediaState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MediaFailure>,
    /// When the pipeline finished with it (Unix ms).
    pub at: i64,
}

impl MediaRecord {
    /// The record's key in a CRM store: one per file of a message.
    pub fn record_key(&self) -> String {
        format!(
            "media:{}:{}",
            self.message_id
                .as_deref()
                .unwrap_or(&self.activity_event_id),
            self.media_id
        )
    }
}
