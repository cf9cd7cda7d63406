//! Uploads by URL (`POST /media/uploads`): the client declares a file (type, size, SHA-256,
//! name), gets a short-lived URL to PUT its bytes to, and declares it again once they are
//! there; the gateway checks the bytes and records the file as `POST /media` does. The bytes
//! never pass through the gateway's request path, so a file of any size Meta allows can be
//! uploaded where a request body is bounded (a Lambda Function URL takes at most 6 MB).
//!
//! One route, idempotent: each `POST` settles what is there and answers
//! - `201` with the stored file (the same body as `POST /media`) once its content address holds
//!   exactly the declared bytes (also at once when it already did: a file is uploaded once);
//! - `202` with `upload {method, url, headers, expires_at}` while nothing has arrived;
//! - `422 media_checksum_mismatch` when what arrived is not the declared file (it is removed).
//!
//! Where the bytes go is the engine's ([`DirectUploads`]): on AWS a presigned S3 PUT to a
//! pending key (the content address only ever holds checked bytes), locally the gateway's own
//! `PUT /media/uploads/{sha256}` with a signed token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::upload::{clean_filename, essence, kind_for_mime, MediaLibrary, ObjectInfo};
use super::upload::{UploadError, Uploaded};
use super::{MediaKind, Sha256Digest};
use crate::audit::{action, Audit};
use crate::auth::{ApiKeys, Scope};
use crate::clock::{now_ms, rfc3339};
use crate::error::StoreError;
use crate::http::{ApiError, Method, Request, Response};

/// How long an upload URL lives: long enough for a 100 MB document on a slow line, short
/// enough that a leaked URL is soon useless (it only takes the declared file anyway).
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// The largest declaration read (a few fields; the body is bounded before parsing).
const MAX_DECLARATION_BYTES: usize = 4096;

/// A file a client is about to upload, as it declared it, checked against Meta's types and
/// limits before any URL is handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The MIME type's essence, lower case.
    pub mime_type: String,
    pub filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declaration {
    mime_type: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
    filename: Option<String>,
}

impl Declared {
    /// Parses and checks `POST /media/uploads`' JSON body.
    pub fn parse(body: &[u8]) -> Result<Declared, UploadError> {
        if body.len() > MAX_DECLARATION_BYTES {
            return Err(UploadError::Declaration(format!(
                "the body is over {MAX_DECLARATION_BYTES} bytes"
            )));
        }
        let d: Declaration = serde_json::from_slice(body).map_err(|e| {
            UploadError::Declaration(format!(
                "the body must be {{\"mime_type\", \"size\", \"sha256\", \"filename\"?}}: {e}"
            ))
        })?;
        let mime = d
            .mime_type
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .ok_or(UploadError::NoType)?;
        let size = d
            .size
            .ok_or_else(|| UploadError::Declaration("`size` (bytes) is required".into()))?;
        if size == 0 {
            return Err(UploadError::Empty);
        }
        kind_for_mime(mime).check(mime, size, false)?;
        let sha256 = d
            .sha256
            .as_deref()
            .and_then(Sha256Digest::parse)
            .ok_or_else(|| {
                UploadError::Declaration(
                    "`sha256` must be the file's SHA-256, 64 hex digits or base64".into(),
                )
            })?;
        let filename = match d.filename.as_deref() {
            None => None,
            Some(f) => Some(clean_filename(f).ok_or(UploadError::BadFilename)?),
        };
        Ok(Declared {
            sha256,
            size,
            mime_type: essence(mime),
            filename,
        })
    }

    pub fn kind(&self) -> MediaKind {
        kind_for_mime(&self.mime_type)
    }

    /// What a local upload token is signed over: the file, its size and type (a token for one
    /// declaration uploads nothing else).
    pub fn token_id(&self) -> String {
        format!(
            "upload:{}:{}:{}",
            self.sha256.hex(),
            self.size,
            self.mime_type
        )
    }
}

/// Where to PUT the bytes: the URL and the headers the request must carry exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What a declared file's content address holds after settling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Exactly the declared bytes.
    Stored,
    /// Nothing has arrived (or the upload has not finished).
    Missing,
    /// Bytes arrived that are not the declared file: they were removed.
    Mismatch {
        size: u64,
        sha256: Option<Sha256Digest>,
    },
}

/// The engine's side of uploads by URL.
#[async_trait]
pub trait DirectUploads: Send + Sync {
    /// A URL the declared file can be PUT to for `ttl`.
    async fn presign_put(
        &self,
        upload: &Declared,
        ttl: Duration,
    ) -> Result<PresignedPut, StoreError>;
    /// Moves checked bytes that arrived to the content address, and says what it holds.
    async fn settle(&self, upload: &Declared) -> Result<Settled, StoreError>;
}

/// `POST /media/uploads` (a bearer key with the `sends` scope, as `POST /media`).
#[derive(Clone)]
pub struct UploadsRoute {
    library: MediaLibrary,
    direct: Arc<dyn DirectUploads>,
    keys: Arc<ApiKeys>,
    audit: Audit,
}

impl UploadsRoute {
    pub fn new(
        library: MediaLibrary,
        direct: Arc<dyn DirectUploads>,
        keys: Arc<ApiKeys>,
    ) -> UploadsRoute {
        UploadsRoute {
            library,
            direct,
            keys,
            audit: Audit::none(),
        }
    }

    /// Records each stored upload in the audit trail (`media_upload`, the file's SHA-256).
    pub fn with_audit(mut self, audit: Audit) -> UploadsRoute {
        self.audit = audit;
        self
    }

    pub async fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        if req.method != Method::Post {
            return Err(ApiError::MethodNotAllowed(req.path.clone()));
        }
        let caller = self
            .keys
            .authorize(req, Scope::Sends, "POST /media/uploads")?;
        let declared = match Declared::parse(&req.body) {
            Ok(d) => d,
            Err(e) => return Ok(e.into_response()),
        };
        match self.direct.settle(&declared).await? {
            Settled::Stored => {
                let info = ObjectInfo {
                    sha256: declared.sha256,
                    size: declared.size,
                    mime_type: declared.mime_type,
                    filename: declared.filename,
                    created_at: now_ms(),
                };
                self.library.record_upload(&info).await?;
                let actor = Audit::key_actor(&caller.key_id);
                let subject = info.sha256.hex();
                self.audit
                    .note(&actor, action::MEDIA_UPLOAD, Some(&subject))
                    .await;
                tracing::info!(size = info.size, mime_type = %info.mime_type, "media uploaded by URL");
                Ok(Response::json(201, &Uploaded::from(&info)))
            }
            Settled::Missing => {
                let put = self.direct.presign_put(&declared, UPLOAD_URL_TTL).await?;
                let headers: serde_json::Map<String, serde_json::Value> = put
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, v.into()))
                    .collect();
                Ok(Response::json(
                    202,
                    &json!({
                        "object": declared.sha256.hex(),
                        "status": "awaiting_upload",
                        "upload": {
                            "method": "PUT",
                            "url": put.url,
                            "headers": headers,
                            "expires_at": rfc3339(put.expires_at * 1000),
                        },
                    }),
                ))
            }
            Settled::Mismatch { size, sha256 } => {
                tracing::info!(size, "media upload by URL did not match its declaration");
                Ok(UploadError::Mismatch {
                    declared: declared.size,
                    size,
                    sha256: sha256.map(|s| s.hex()),
                }
                .into_response())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn declarations_are_checked_before_any_url() {
        let sha = "ab".repeat(32);
        let ok = Declared::parse(&body(json!({
            "mime_type": "Application/PDF", "size": 48213, "sha256": sha,
            "filename": "factura-1042.pdf"
        })))
        .unwrap();
        assert_eq!(ok.mime_type, "application/pdf");
        assert_eq!(ok.kind(), MediaKind::Document);
        assert_eq!(ok.token_id(), format!("upload:{sha}:48213:application/pdf"));

        let code = |v: serde_json::Value| Declared::parse(&body(v)).unwrap_err().code();
        assert_eq!(
            code(json!({"mime_type": "image/gif", "size": 10, "sha256": sha})),
            "media_type_not_allowed"
        );
        assert_eq!(
            code(json!({"mime_type": "image/png", "size": 6_000_000, "sha256": sha})),
            "media_too_large"
        );
        assert_eq!(
            code(json!({"mime_type": "image/png", "size": 0, "sha256": sha})),
            "media_empty"
        );
        assert_eq!(
            code(json!({"size": 1, "sha256": sha})),
            "missing_content_type"
        );
        assert_eq!(
            code(json!({"mime_type": "image/png", "size": 1, "sha256": "abc"})),
            "invalid_declaration"
        );
        assert_eq!(
            code(json!({"mime_type": "image/png", "size": 1, "sha256": sha, "x": 1})),
            "invalid_declaration"
        );
        assert_eq!(
            code(json!({"mime_type": "image/png", "size": 1, "sha256": sha, "filename": "../a"})),
            "invalid_filename"
        );
        assert!(Declared::parse(&vec![b' '; MAX_DECLARATION_BYTES + 1]).is_err());
    }
}
