//! The file of a media send, on both sides of the queue.
//!
//! At `POST /sends` ([`resolve`]): the object must be stored, its type known (what the upload
//! recorded, or the request's `mime_type` for a file the gateway did not receive) and within
//! Meta's types and size for the send's media type; the type (and a document's default file
//! name) is then written into the stored request, for the sender.
//!
//! In the sender ([`MediaUploader`]): Meta's media id for the file, uploaded from the store to
//! `POST /{phone-number-id}/media` (streamed) unless an upload of the same file for the same
//! number is younger than [`REUSE_UPLOADS_FOR`]: Meta keeps uploaded media 30 days, and a send
//! by id never depends on Meta fetching a link (its link fetching is rate-limited). The upload
//! is a Graph call like the message's, so its failures classify the same way.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::now_ms;
use crate::error::StoreError;
use crate::media::upload::{essence, MediaLibrary};
use crate::media::{MediaKind, MediaRefusal};
use crate::sends::attachment::Attachment;
use crate::sends::classify::SendFailure;
use crate::sends::policy::Refusal;

/// How long an upload's media id is reused: well inside the 30 days Meta keeps it, so a send
/// that waits in the queue (up to the 24 h horizon) still finds it there.
pub const REUSE_UPLOADS_FOR: Duration = Duration::from_secs(7 * 86_400);

/// Checks the send's file at `POST /sends` (`header`: a template's header) and fills in its
/// type and default name; the file is then noted as used by a message to `contact`.
/// `Ok(Some(_))` refuses the send; `library` is `None` where the gateway keeps no files.
pub async fn resolve(
    library: Option<&MediaLibrary>,
    attachment: &mut Attachment,
    header: bool,
    contact: &str,
) -> Result<Option<Refusal>, StoreError> {
    let Some(library) = library else {
        return Ok(Some(Refusal::MediaUnavailable));
    };
    let not_found = || Refusal::MediaObjectNotFound {
        object: attachment.object.clone(),
    };
    let Some(digest) = attachment.digest() else {
        return Ok(Some(not_found()));
    };
    let Some(found) = library.locate(&digest).await? else {
        return Ok(Some(not_found()));
    };
    // What the upload recorded wins: it is the type the file was checked as when it came in.
    let Some(mime) = found.mime_type.or_else(|| attachment.mime_type.clone()) else {
        return Ok(Some(Refusal::MediaTypeUnknown {
            object: attachment.object.clone(),
        }));
    };
    // An unknown size (a catalog-only library) is checked by the sender when it opens the file.
    if let Err(refusal) = attachment.kind.check(&mime, found.size.unwrap_or(0), false) {
        return Ok(Some(Refusal::Media(refusal)));
    }
    if header && attachment.kind == MediaKind::Document && essence(&mime) != "application/pdf" {
        return Ok(Some(Refusal::HeaderNotPdf {
            mime: essence(&mime),
        }));
    }
    attachment.mime_type = Some(essence(&mime));
    if attachment.kind == MediaKind::Document && attachment.filename.is_none() {
        attachment.filename = found.filename;
    }
    library.note_use(&digest, contact, now_ms()).await?;
    Ok(None)
}

/// A stored file on its way to Meta's upload endpoint.
pub struct OutgoingFile {
    /// Its MIME type (Meta's `type` field and the file part's `Content-Type`).
    pub mime_type: String,
    /// The file part's name.
    pub filename: String,
    pub size: u64,
    pub body: Pin<Box<dyn tokio::io::AsyncRead + Send>>,
}

impl std::fmt::Debug for OutgoingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFile")
            .field("mime_type", &self.mime_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Meta's media upload endpoint (`wabridge-graph`), or a fake in tests.
#[async_trait]
pub trait MediaUploadApi: Send + Sync {
    /// The number uploads belong to: Meta's media ids are per number, so is the reuse.
    fn phone_number_id(&self) -> &str;
    /// Uploads the file; Meta's media id, or the failure classified like a send's.
    async fn upload(&self, file: OutgoingFile) -> Result<String, SendFailure>;
}

/// One upload's media id, as remembered for reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedUpload {
    /// The object's SHA-256 hex.
    pub object: String,
    pub phone_number_id: String,
    pub media_id: String,
    /// Unix ms.
    pub uploaded_at: i64,
    /// Unix ms after which the id is not reused (and the purger removes it).
    pub expires_at: i64,
}

/// Where media ids of uploads are remembered (a SQLite table locally). Keyed by file hash and
/// number: nothing in it names a person.
#[async_trait]
pub trait UploadCache: Send + Sync {
    /// The media id of `object` for `phone_number_id`, unless it expired by `now_ms`.
    async fn media_id(
        &self,
        object: &str,
        phone_number_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError>;
    async fn remember(&self, upload: &CachedUpload) -> Result<(), StoreError>;
}

/// What the sender needs before it calls Meta.
pub enum Prepared {
    /// An upload of the file is recent enough: send by this id.
    Cached(String),
    /// Upload this first (after the breaker admits the call).
    Upload(PendingUpload),
}

/// A file opened for upload.
pub struct PendingUpload {
    object: String,
    file: OutgoingFile,
}

/// Why the sender cannot prepare a send's file.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The file is gone from the store (erased or purged since `POST /sends`): terminal.
    #[error("the file {0} is no longer stored")]
    Missing(String),
    /// The stored request's file cannot be sent (no type recorded): terminal.
    #[error("{0}")]
    Unusable(String),
    /// The stored file is outside Meta's types or size for the send's media type (a size only
    /// the sender could check: see `MediaLibrary::catalog_only`): terminal.
    #[error(transparent)]
    Refused(#[from] MediaRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns a send's file into Meta's media id. Cheap to clone.
#[derive(Clone)]
pub struct MediaUploader {
    library: MediaLibrary,
    cache: Arc<dyn UploadCache>,
    api: Arc<dyn MediaUploadApi>,
    reuse: Duration,
}

impl MediaUploader {
    pub fn new(
        library: MediaLibrary,
        cache: Arc<dyn UploadCache>,
        api: Arc<dyn MediaUploadApi>,
    ) -> MediaUploader {
        MediaUploader {
            library,
            cache,
            api,
            reuse: REUSE_UPLOADS_FOR,
        }
    }

    /// A recent upload's id, or the file opened for a new upload.
    pub async fn prepare(
        &self,
        attachment: &Attachment,
        now_ms: i64,
    ) -> Result<Prepared, PrepareError> {
        let number = self.api.phone_number_id();
        if let Some(id) = self
            .cache
            .media_id(&attachment.object, number, now_ms)
            .await?
        {
            return Ok(Prepared::Cached(id));
        }
        let mime_type = attachment.mime_type.clone().ok_or_else(|| {
            PrepareError::Unusable(format!("the send names no type for {}", attachment.object))
        })?;
        let digest = attachment
            .digest()
            .ok_or_else(|| PrepareError::Missing(attachment.object.clone()))?;
        let store = self.library.store().ok_or_else(|| {
            PrepareError::Unusable("this sender's media library reaches no files".into())
        })?;
        let Some(stored) = store.open(&digest.object_key()).await? else {
            return Err(PrepareError::Missing(attachment.object.clone()));
        };
        // `POST /sends` may not have known the size (`MediaLibrary::catalog_only`).
        attachment.kind.check(&mime_type, stored.size, false)?;
        let filename = attachment
            .filename
            .clone()
            .unwrap_or_else(|| default_name(&attachment.object, &mime_type));
        Ok(Prepared::Upload(PendingUpload {
            object: attachment.object.clone(),
            file: OutgoingFile {
                mime_type,
                filename,
                size: stored.size,
                body: stored.body,
            },
        }))
    }

    /// Uploads the file and remembers its id for [`REUSE_UPLOADS_FOR`]. A failure keeps Meta's
    /// classification and says it was the upload.
    pub async fn upload(&self, pending: PendingUpload, now_ms: i64) -> Result<String, SendFailure> {
        let size = pending.file.size;
        let media_id = self
            .api
            .upload(pending.file)
            .await
            .map_err(|f| upload_failure(f, size))?;
        let cached = CachedUpload {
            object: pending.object,
            phone_number_id: self.api.phone_number_id().to_string(),
            media_id: media_id.clone(),
            uploaded_at: now_ms,
            expires_at: now_ms.saturating_add(self.reuse.as_millis() as i64),
        };
        if let Err(e) = self.cache.remember(&cached).await {
            // The send goes on with the id; the next send of the file uploads it again.
            tracing::warn!(error = %e, "could not remember a media upload; it will be repeated");
        }
        tracing::info!(size, "media uploaded to Meta");
        Ok(media_id)
    }
}

/// The failure of an upload, its reason saying so (the send's error shows which call failed).
fn upload_failure(f: SendFailure, size: u64) -> SendFailure {
    let reason = |r: String| format!("uploading the file ({size} bytes) to Meta: {r}");
    match f {
        SendFailure::Retry {
            code,
            reason: r,
            retry_after,
        } => SendFailure::Retry {
            code,
            reason: reason(r),
            retry_after,
        },
        SendFailure::PairRate { reason: r } => SendFailure::PairRate { reason: reason(r) },
        SendFailure::Terminal { code, reason: r } => SendFailure::Terminal {
            code,
            reason: reason(r),
        },
        SendFailure::OptedOut { reason: r } => SendFailure::OptedOut { reason: reason(r) },
    }
}

/// A file part's name when the send gives none: the object's first digits and the type's
/// extension (Meta reads the type from `type`; the name only labels the part).
fn default_name(object: &str, mime: &str) -> String {
    format!(
        "{}.{}",
        &object[..object.len().min(16)],
        crate::media::extension(mime)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_failures_keep_their_class_and_say_it_was_the_upload() {
        let f = upload_failure(
            SendFailure::Retry {
                code: None,
                reason: "Graph API answered HTTP 503".into(),
                retry_after: Some(Duration::from_secs(3)),
            },
            10,
        );
        assert!(f.is_retryable());
        assert_eq!(
            f.reason(),
            "uploading the file (10 bytes) to Meta: Graph API answered HTTP 503"
        );
        let f = upload_failure(
            SendFailure::Terminal {
                code: Some(131053),
                reason: "Media upload error".into(),
            },
            10,
        );
        assert_eq!(f.code(), Some(131053));
        assert!(!f.is_retryable());
    }

    #[test]
    fn default_names_carry_the_usual_extension() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(default_name(hex, "image/PNG"), "9f86d081884c7d65.png");
        assert_eq!(
            default_name(hex, "audio/ogg; codecs=opus"),
            "9f86d081884c7d65.ogg"
        );
        assert_eq!(
            default_name(hex, "application/msword"),
            "9f86d081884c7d65.doc"
        );
        assert_eq!(default_name(hex, "application/zip"), "9f86d081884c7d65.bin");
    }
}
