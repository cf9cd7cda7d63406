//! `GET /media/{sha256}.{ext}?t={token}`: the link a CRM opens. The token must be one this
//! gateway signed for this file and must not have expired (403 otherwise, whatever the file);
//! then the file is served with the type its extension names: the local engine streams it from
//! the data directory, and on AWS the answer is a redirect to a presigned S3 URL that lives
//! [`PRESIGN_TTL`].

use std::sync::Arc;
use std::time::Duration;

use super::links::{LinkError, LinkSigner};
use super::store::{MediaStore, StoredObject};
use crate::clock::Clock;
use crate::http::{ApiError, Request};

/// How long a presigned URL the gateway redirects to lives: enough to start the download.
pub const PRESIGN_TTL: Duration = Duration::from_secs(300);

/// What `GET /media/{id}` answers with, before the edge writes it.
#[derive(Debug)]
pub enum MediaAnswer {
    /// 302 to a URL that serves the file itself.
    Redirect(String),
    /// 200 with the file, streamed by the edge.
    File {
        object: StoredObject,
        content_type: &'static str,
    },
}

/// The link check and the store behind `GET /media/{id}`. Cheap to clone.
#[derive(Clone)]
pub struct MediaAccess {
    signer: LinkSigner,
    store: Arc<dyn MediaStore>,
    clock: Clock,
}

impl MediaAccess {
    pub fn new(signer: LinkSigner, store: Arc<dyn MediaStore>) -> MediaAccess {
        MediaAccess {
            signer,
            store,
            clock: Clock::System,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the link of `id` (`<hex>.<ext>`) in `req` and finds the file.
    pub async fn answer(&self, id: &str, req: &Request) -> Result<MediaAnswer, ApiError> {
        let token = req.query_param("t").unwrap_or_default();
        // The signature first: a stranger learns nothing of which files exist.
        self.signer
            .verify(id, &token, self.clock.now_ms() / 1000)
            .map_err(|e| {
                ApiError::Forbidden(match e {
                    LinkError::Expired => {
                        "this media link has expired; ask the gateway for a new one".into()
                    }
                    other => format!("{other}"),
                })
            })?;
        let (hex, ext) = id
            .split_once('.')
            .filter(|(hex, _)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ApiError::NoSuch("no such media".into()))?;
        let content_type = super::mime_of_extension(ext)
            .ok_or_else(|| ApiError::NoSuch("no such media".into()))?;
        let key = format!("media/{}", hex.to_ascii_lowercase());
        if let Some(url) = self.store.presign(&key, content_type, PRESIGN_TTL).await? {
            // A presigned URL for a missing object answers S3's 404 itself; checking first
            // would cost a request on every open.
            return Ok(MediaAnswer::Redirect(url));
        }
        match self.store.open(&key).await? {
            Some(object) => Ok(MediaAnswer::File {
                object,
                content_type,
            }),
            // Purged by retention or erased: the link outlived its file.
            None => Err(ApiError::NoSuch(
                "the media is no longer stored (retention or erasure)".into(),
            )),
        }
    }
}
