//! Files a business uploads to the gateway to send them (`POST /media`): the body is streamed
//! into a pending object of the [`MediaStore`] while it is hashed and counted, refused as soon
//! as Meta's limits refuse it (the type before the first byte, the size at the declared length
//! or at the first byte past the limit), then committed under its content address, and what
//! the upload said of it (type, file name) is recorded in the [`MediaCatalog`], where sends
//! read it. Whatever fails aborts the pending object: a partial upload never survives.
//!
//! [`MediaLibrary::locate`] is what `POST /sends` asks of an object: whether it is stored, its
//! size, and its type when the gateway received it (files customers sent are stored by the
//! inbound fetch, which records no type here: a send names it).
//!
//! With a [`MediaIndex`], an upload is recorded under [`UPLOADED`] and each send of the file
//! under its recipient, so retention keeps the file while uploads or messages use it and an
//! erasure removes the recipient's use of it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::store::{MediaIndex, MediaStore, PendingObject};
use super::{MediaKind, MediaRefusal, Sha256Digest};
use crate::clock::now_ms;
use crate::error::StoreError;
use crate::http::{ApiError, Response};

/// The media index's owner of a file the business uploaded (no person: retention ends it).
pub const UPLOADED: &str = "upload";

/// Longest file name kept (Meta shows it under a document; file systems stop at 255 bytes).
pub const MAX_FILENAME_CHARS: usize = 240;

/// What the gateway knows of an object it received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The MIME type's essence, lower case (`application/pdf`).
    pub mime_type: String,
    /// The name the upload gave (`?filename=`), the default of a document send.
    pub filename: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

impl ObjectInfo {
    pub fn kind(&self) -> MediaKind {
        kind_for_mime(&self.mime_type)
    }
}

/// Where the details of received objects are kept (a SQLite table locally). Keyed by content:
/// the same file uploaded twice is one entry, the later upload's type and name winning.
#[async_trait]
pub trait MediaCatalog: Send + Sync {
    async fn put(&self, info: &ObjectInfo) -> Result<(), StoreError>;
    async fn get(&self, sha256: &Sha256Digest) -> Result<Option<ObjectInfo>, StoreError>;
}

/// The kind a MIME type is sent as: by its top-level type, everything else a document (so that a
/// refused type is named against the list it was closest to: `image/gif` against the images).
/// Stickers are not sent from uploads: `image/webp` counts as an image, which refuses it.
pub fn kind_for_mime(mime: &str) -> MediaKind {
    let essence = essence(mime);
    match essence.split('/').next().unwrap_or("") {
        "image" => MediaKind::Image,
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        _ => MediaKind::Document,
    }
}

/// The MIME type without parameters, lower case.
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A file name as a send shows it: 1 to [`MAX_FILENAME_CHARS`] characters, no control
/// characters, no path (a name, not where it came from). `None` when it is not one.
pub fn clean_filename(name: &str) -> Option<String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_FILENAME_CHARS
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        && name != "."
        && name != "..";
    ok.then(|| name.to_string())
}

/// Why an upload was not stored. The edge maps each to its HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("send the file's MIME type in Content-Type (for example application/pdf)")]
    NoType,
    /// Outside Meta's types (422) or over the kind's limit (413).
    #[error(transparent)]
    Refused(#[from] MediaRefusal),
    #[error("the file is empty")]
    Empty,
    #[error("`filename` must be 1 to {MAX_FILENAME_CHARS} characters, without control characters or a path")]
    BadFilename,
    /// The body broke off before its end (the client went away).
    #[error("the upload broke off after {received} bytes: {reason}")]
    Interrupted { received: u64, reason: String },
    /// `POST /media/uploads`' body is not a declaration (400).
    #[error("{0}")]
    Declaration(String),
    /// What arrived for an upload by URL is not the declared file (422; it was removed).
    #[error(
        "the uploaded bytes are not the declared file ({declared} bytes with the declared \
         SHA-256): {size} bytes arrived{}; upload the file again",
        .sha256.as_deref().map(|s| format!(" with SHA-256 {s}")).unwrap_or_default()
    )]
    Mismatch {
        declared: u64,
        size: u64,
        sha256: Option<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl UploadError {
    /// A stable code for the answer's body.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::NoType => "missing_content_type",
            UploadError::Refused(r) => r.code(),
            UploadError::Empty => "media_empty",
            UploadError::BadFilename => "invalid_filename",
            UploadError::Interrupted { .. } => "upload_interrupted",
            UploadError::Declaration(_) => "invalid_declaration",
            UploadError::Mismatch { .. } => "media_checksum_mismatch",
            UploadError::Store(_) => "unavailable",
        }
    }

    /// The HTTP answer: `413 media_too_large` (naming Meta's limit for the kind, not the JSON
    /// routes' body limit), 422 for a type outside the list, an empty file or bytes that are
    /// not the declared ones, 400 for a request without a type, with a bad name, a bad
    /// declaration or broken off, 503 when the store failed. `{"error": {"code", "message"}}`.
    pub fn into_response(&self) -> Response {
        let error = match self {
            UploadError::Refused(r @ MediaRefusal::TooLarge { .. }) => {
                return Response::json(
                    413,
                    &serde_json::json!({"error": {"code": r.code(), "message": r.to_string()}}),
                )
            }
            UploadError::Refused(r @ MediaRefusal::TypeNotAllowed { .. }) => {
                ApiError::Unprocessable {
                    code: r.code(),
                    message: r.to_string(),
                }
            }
            UploadError::Empty | UploadError::Mismatch { .. } => ApiError::Unprocessable {
                code: self.code(),
                message: self.to_string(),
            },
            UploadError::NoType
            | UploadError::BadFilename
            | UploadError::Interrupted { .. }
            | UploadError::Declaration(_) => ApiError::BadRequest {
                code: self.code(),
                message: self.to_string(),
            },
            UploadError::Store(StoreError::Unavailable(why)) => ApiError::Unavailable(why.clone()),
            UploadError::Store(other) => ApiError::Internal(other.to_string()),
        };
        error.into_response()
    }
}

/// The answer of `POST /media`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uploaded {
    /// What a send names the file by (`header.object`, `media.object`).
    pub object: String,
    /// The file's SHA-256, hex (today the same as `object`, which is its content address).
    pub sha256: String,
    pub size: u64,
    pub mime_type: String,
    pub kind: MediaKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl From<&ObjectInfo> for Uploaded {
    fn from(info: &ObjectInfo) -> Uploaded {
        Uploaded {
            object: info.sha256.hex(),
            sha256: info.sha256.hex(),
            size: info.size,
            mime_type: info.mime_type.clone(),
            kind: info.kind(),
            filename: info.filename.clone(),
        }
    }
}

/// A stored object as a send finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// `None` when the library cannot reach the files (see [`MediaLibrary::catalog_only`]):
    /// the sender checks the size when it opens the file.
    pub size: Option<u64>,
    /// Known when the gateway received the file (`POST /media`).
    pub mime_type: Option<String>,
    pub filename: Option<String>,
}

/// The stored files and what the gateway knows of them. Cheap to clone.
#[derive(Clone)]
pub struct MediaLibrary {
    /// `None` where the files are out of reach ([`MediaLibrary::catalog_only`]).
    store: Option<Arc<dyn MediaStore>>,
    catalog: Arc<dyn MediaCatalog>,
    index: Option<Arc<dyn MediaIndex>>,
}

impl MediaLibrary {
    pub fn new(store: Arc<dyn MediaStore>, catalog: Arc<dyn MediaCatalog>) -> MediaLibrary {
        MediaLibrary {
            store: Some(store),
            catalog,
            index: None,
        }
    }

    /// A library that knows what uploads recorded but cannot reach the files: the AWS ingest
    /// function, which does not link S3 (its package stays small and `POST /sends` makes no S3
    /// call). [`MediaLibrary::locate`] then trusts the catalog, and takes an object it does not
    /// list as one the gateway did not receive (the send must name its type); whether the
    /// bytes are stored, and their size for an unlisted one, the sender checks when it opens
    /// the file (`media_object_not_found`, `media_too_large`). Uploads are refused.
    pub fn catalog_only(catalog: Arc<dyn MediaCatalog>) -> MediaLibrary {
        MediaLibrary {
            store: None,
            catalog,
            index: None,
        }
    }

    /// Records uploads and sends of files in `index` (retention and erasure of stored files).
    pub fn with_index(mut self, index: Arc<dyn MediaIndex>) -> MediaLibrary {
        self.index = Some(index);
        self
    }

    /// A message to `contact` (a stored identity key) uses the file: the index keeps it for the
    /// content retention from `at`, and an erasure of the person removes this use.
    pub async fn note_use(
        &self,
        sha256: &Sha256Digest,
        contact: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        match &self.index {
            Some(index) => index.record(&sha256.object_key(), contact, at).await,
            None => Ok(()),
        }
    }

    /// Records a file the business uploaded, now stored under its content address: what the
    /// upload said of it (sends read it) and, with an index, the upload's use of it (retention
    /// keeps the file through the content retention from now).
    pub async fn record_upload(&self, info: &ObjectInfo) -> Result<(), StoreError> {
        self.catalog.put(info).await?;
        if let Some(index) = &self.index {
            index
                .record(&info.sha256.object_key(), UPLOADED, info.created_at)
                .await?;
        }
        Ok(())
    }

    /// The files, unless this library cannot reach them ([`MediaLibrary::catalog_only`]).
    pub fn store(&self) -> Option<&Arc<dyn MediaStore>> {
        self.store.as_ref()
    }

    /// Starts an upload of a file of `mime_type` (the request's `Content-Type`), `declared`
    /// bytes long when the request said so. Refuses a type outside Meta's list, or a declared
    /// size over the kind's limit, before anything is written.
    pub async fn begin(
        &self,
        mime_type: Option<&str>,
        filename: Option<&str>,
        declared: Option<u64>,
    ) -> Result<Upload, UploadError> {
        let mime = mime_type
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .ok_or(UploadError::NoType)?;
        let kind = kind_for_mime(mime);
        kind.check(mime, declared.unwrap_or(0), false)?;
        let filename = match filename {
            None => None,
            Some(f) => Some(clean_filename(f).ok_or(UploadError::BadFilename)?),
        };
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("this gateway stores no uploads here".into()))?;
        let object = store.begin().await?;
        Ok(Upload {
            object: Some(object),
            hasher: Sha256::new(),
            size: 0,
            limit: kind.max_bytes(false),
            kind,
            mime_type: essence(mime),
            filename,
            library: self.clone(),
        })
    }

    /// The object `sha256` names, when it is stored: its size, and what the upload said of it.
    /// A [`MediaLibrary::catalog_only`] library answers from the catalog alone (see there).
    pub async fn locate(&self, sha256: &Sha256Digest) -> Result<Option<Located>, StoreError> {
        let key = sha256.object_key();
        if let Some(info) = self.catalog.get(sha256).await? {
            // The file may have gone (erasure, retention) while its entry stayed.
            if let Some(store) = &self.store {
                if !store.exists(&key).await? {
                    return Ok(None);
                }
            }
            return Ok(Some(Located {
                size: Some(info.size),
                mime_type: Some(info.mime_type),
                filename: info.filename,
            }));
        }
        let Some(store) = &self.store else {
            return Ok(Some(Located {
                size: None,
                mime_type: None,
                filename: None,
            }));
        };
        Ok(store.open(&key).await?.map(|object| Located {
            size: Some(object.size),
            mime_type: None,
            filename: None,
        }))
    }
}

/// One upload in progress. [`Upload::finish`] commits it; [`Upload::abort`], any refused write,
/// or dropping it removes what was written.
pub struct Upload {
    object: Option<Box<dyn PendingObject>>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    kind: MediaKind,
    mime_type: String,
    filename: Option<String>,
    library: MediaLibrary,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("size", &self.size)
            .field("mime_type", &self.mime_type)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.size
    }

    /// Writes the next chunk; past the kind's limit, or when the store fails, the pending
    /// object is removed and the upload is over (every later call fails the same way).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            self.discard().await;
            return Err(MediaRefusal::TooLarge {
                kind: self.kind,
                size: self.size,
                limit: self.limit,
            }
            .into());
        }
        let Some(object) = self.object.as_mut() else {
            return Err(StoreError::Invalid("the upload was aborted".into()).into());
        };
        self.hasher.update(chunk);
        if let Err(e) = object.write(chunk).await {
            self.discard().await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Commits the file under its content address and records it in the catalog.
    pub async fn finish(mut self) -> Result<ObjectInfo, UploadError> {
        if self.size == 0 {
            self.discard().await;
            return Err(UploadError::Empty);
        }
        let Some(object) = self.object.take() else {
            return Err(StoreError::Invalid("the upload was aborted".into()).into());
        };
        let sha256 = Sha256Digest::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        // The same bytes stored before: committing again replaces a file with itself.
        object.commit(&sha256.object_key()).await?;
        let info = ObjectInfo {
            sha256,
            size: self.size,
            mime_type: std::mem::take(&mut self.mime_type),
            filename: self.filename.take(),
            created_at: now_ms(),
        };
        // A failure here answers 5xx; the caller's retry commits the same file again and
        // records it then (a file left without its index row is purged as an orphan).
        self.library.record_upload(&info).await?;
        Ok(info)
    }

    /// Removes what was written (the client went away, or the edge refused the rest).
    pub async fn abort(mut self) {
        self.discard().await;
    }

    async fn discard(&mut self) {
        if let Some(object) = self.object.take() {
            object.abort().await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Dropped mid-upload (the request's task was cancelled): remove the pending object in
        // the background; without a runtime the next start clears it.
        if let Some(object) = self.object.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(object.abort());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_top_level_type() {
        assert_eq!(kind_for_mime("application/pdf"), MediaKind::Document);
        assert_eq!(kind_for_mime("IMAGE/PNG; q=1"), MediaKind::Image);
        assert_eq!(kind_for_mime("audio/ogg; codecs=opus"), MediaKind::Audio);
        assert_eq!(kind_for_mime("video/mp4"), MediaKind::Video);
        assert_eq!(kind_for_mime("application/zip"), MediaKind::Document);
        // A GIF is refused as an image, naming the image types.
        let e = kind_for_mime("image/gif")
            .check("image/gif", 1, false)
            .unwrap_err();
        assert!(e.to_string().contains("image/jpeg"), "{e}");
    }

    #[test]
    fn file_names_are_names() {
        assert_eq!(
            clean_filename(" factura-1042.pdf ").as_deref(),
            Some("factura-1042.pdf")
        );
        assert_eq!(
            clean_filename("Nota de crédito.pdf").as_deref(),
            Some("Nota de crédito.pdf")
        );
        for bad in ["", "  ", "../etc/passwd", "a\\b.pdf", "a\nb.pdf", ".."] {
            assert_eq!(clean_filename(bad), None, "{bad:?}");
        }
        assert_eq!(clean_filename(&"a".repeat(MAX_FILENAME_CHARS + 1)), None);
    }
}
