//! Media records in HubSpot: the file itself, uploaded, not a gateway link.
//!
//! A gateway link would need the gateway reachable from every HubSpot user's browser and would
//! expire inside the CRM; a private HubSpot file opens under HubSpot's own access control for as
//! long as the record lives. So a stored file is uploaded (`POST /files/v3/files`, multipart,
//! `access: PRIVATE`, `ttl` the content retention up to HubSpot's one-year maximum, into
//! [`FOLDER`], named by its SHA-256 with `duplicateValidationStrategy: RETURN_EXISTING`, so a
//! repeated upload returns the first file), then attached to a note on the contact
//! (`hs_attachment_ids`, note → contact association type [`NOTE_TO_CONTACT`]). A file that could
//! not be stored becomes a note saying why, so the agent knows the customer sent something.
//! Erasure's GDPR delete removes the contact's notes and their attachments with it.
//!
//! Exactly once: the note carries the effect id like communications do; an in-doubt note is
//! searched before it is created again. The file streams from the media store in chunks, never
//! whole in memory. Needs the private app's `files` scope.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::media::record::{MediaRecord, MediaState, StoredMedia};
use wabridge_core::media::store::MediaStore;

use super::HubSpotCrm;

/// HubSpot's association type of a note to a contact (`HUBSPOT_DEFINED`).
pub const NOTE_TO_CONTACT: u32 = 202;
/// The file manager folder wabridge uploads into.
pub const FOLDER: &str = "/wabridge/whatsapp";
/// HubSpot's longest file `ttl`.
const MAX_TTL_DAYS: u64 = 365;

/// Where uploaded files come from, and how long HubSpot keeps them.
#[derive(Clone)]
pub(super) struct MediaFiles {
    pub(super) store: Arc<dyn MediaStore>,
    pub(super) retention: Duration,
}

impl HubSpotCrm {
    /// Uploads stored media files from `store` (kept by HubSpot for `retention`, at most a
    /// year). Without it, media records are skipped with a logged reason.
    pub fn with_media(mut self, store: Arc<dyn MediaStore>, retention: Duration) -> Self {
        self.media = Some(MediaFiles { store, retention });
        self
    }

    pub(super) async fn attach_media(
        &self,
        effect: &Effect,
        media: &MediaRecord,
    ) -> Result<(), CrmError> {
        let Some(files) = &self.media else {
            self.skip(effect, "no media store configured to read the file from");
            return Ok(());
        };
        if self.already_created("notes", effect).await? {
            return Ok(());
        }
        let attachment = match (&media.state, &media.stored) {
            (MediaState::Stored, Some(stored)) => match self.upload(files, stored).await? {
                Some(id) => Some(id),
                None => {
                    // Erased or purged since: nothing to attach, nothing to say.
                    self.skip(
                        effect,
                        "the file is no longer stored (erasure or retention)",
                    );
                    return Ok(());
                }
            },
            _ => None,
        };
        let contact = self.contact_hs_id(effect).await?;
        let mut properties = serde_json::Map::new();
        properties.insert("hs_timestamp".into(), media.at.to_string().into());
        properties.insert("hs_note_body".into(), note_body(media).into());
        if let Some(id) = attachment {
            properties.insert("hs_attachment_ids".into(), id.into());
        }
        if let Some(prop) = &self.effect_property {
            properties.insert(prop.clone(), effect.id.clone().into());
        }
        let body = json!({
            "properties": properties,
            "associations": [{
                "to": {"id": contact},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}]
            }]
        });
        match self.client.post("/crm/v3/objects/notes", &body).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.note_doubt(effect, &e);
                Err(e)
            }
        }
    }

    /// Uploads the stored file; its HubSpot file id, or `None` when the store no longer has it.
    async fn upload(
        &self,
        files: &MediaFiles,
        stored: &StoredMedia,
    ) -> Result<Option<String>, CrmError> {
        let key = format!("media/{}", stored.sha256);
        let object = files
            .store
            .open(&key)
            .await
            .map_err(|e| CrmError::Transient(format!("media store: {e}")))?;
        let Some(object) = object else {
            return Ok(None);
        };
        let size = object.size;
        // Streamed in chunks: a 100 MB document never sits in memory.
        let chunks = tokio_util::io::ReaderStream::new(object.body);
        let name = format!(
            "{}.{}",
            stored.sha256,
            wabridge_core::media::extension(&stored.mime_type)
        );
        let days = files
            .retention
            .as_secs()
            .div_ceil(86_400)
            .clamp(1, MAX_TTL_DAYS);
        let options = json!({
            "access": "PRIVATE",
            "ttl": format!("P{days}D"),
            "duplicateValidationStrategy": "RETURN_EXISTING",
            "duplicateValidationScope": "EXACT_FOLDER",
        });
        let part =
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(chunks), size)
                .file_name(name.clone())
                .mime_str(&stored.mime_type)
                .map_err(|e| CrmError::Rejected(format!("media type {}: {e}", stored.mime_type)))?;
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("options", options.to_string())
            .text("folderPath", FOLDER)
            .text("fileName", name);
        let answer = self.client.post_form("/files/v3/files", form).await?;
        match answer.get("id") {
            Some(Value::String(id)) => Ok(Some(id.clone())),
            Some(Value::Number(id)) => Ok(Some(id.to_string())),
            _ => Err(CrmError::Transient(
                "HubSpot's file upload answered without an id".into(),
            )),
        }
    }
}

/// The note's text: what the customer sent, and why it is not attached when it is not.
fn note_body(media: &MediaRecord) -> String {
    let what = format!("WhatsApp {} from the customer", media.kind);
    match (&media.state, &media.error) {
        (MediaState::Stored, _) => match media.stored.as_ref().and_then(|s| s.filename.as_ref()) {
            Some(name) => format!("{what}: {name}"),
            None => what,
        },
        (_, Some(e)) => format!("{what}, not stored: {} ({})", e.message, e.code),
        (state, None) => format!("{what}, not stored ({})", state.as_str()),
    }
}
