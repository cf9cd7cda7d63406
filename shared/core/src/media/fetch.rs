//! Fetching one inbound media file: ask Meta where it is ([`MediaSource::info`]), refuse what
//! Meta's limits refuse before downloading, download it streamed into a pending object of the
//! [`MediaStore`] while hashing and counting (stopping at the kind's limit), check the size and
//! the SHA-256 against Meta's, and only then commit it under its content address. Anything else
//! aborts the pending object: a partial or tampered file never survives.
//!
//! An expired download URL (the CDN's 401/403/404) is asked for again once. A file already
//! stored (same SHA-256, from a redelivery or another message) is not downloaded again.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::store::{MediaStore, PendingObject};
use super::{MediaKind, MediaRefusal, Sha256Digest};
use crate::error::StoreError;

/// What Meta says of a media id (`GET /{version}/{media-id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Where to download it: lives 5 minutes and needs the token.
    pub url: String,
    pub mime_type: String,
    pub sha256: Option<Sha256Digest>,
    pub file_size: Option<u64>,
}

/// Why a fetch did not store the file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Meta throttled, failed or did not answer: try again later, within the retry horizon.
    #[error("{reason}")]
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The download URL expired (the CDN answered 401, 403 or 404): ask Meta for a new one.
    #[error("the download URL expired")]
    UrlExpired,
    /// Meta no longer has the file (or never had it): terminal, recorded on the activity.
    #[error("the media is gone at Meta: {reason}")]
    Gone { reason: String },
    /// Outside Meta's types or limits: never stored.
    #[error(transparent)]
    Refused(#[from] MediaRefusal),
    /// The bytes are not the file Meta described.
    #[error("the download does not match Meta's description: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FetchError {
    /// Whether a later attempt may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Retry { .. } | FetchError::UrlExpired | FetchError::Corrupt(_) => true,
            FetchError::Store(e) => e.is_retryable(),
            FetchError::Gone { .. } | FetchError::Refused(_) => false,
        }
    }
}

/// Where bytes go while they download.
#[async_trait]
pub trait MediaSink: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError>;
}

/// Meta's media endpoints (`wabridge-graph`), or a fake in tests.
#[async_trait]
pub trait MediaSource: Send + Sync {
    /// `phone_number_id`: the business number the media was sent to (Meta refuses media of
    /// another number when it is given).
    async fn info(
        &self,
        media_id: &str,
        phone_number_id: Option<&str>,
    ) -> Result<MediaInfo, FetchError>;
    /// Streams the file at `url` into `sink`, chunk by chunk.
    async fn download(&self, url: &str, sink: &mut dyn MediaSink) -> Result<(), FetchError>;
}

/// A file stored under its content address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub key: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub mime_type: String,
    /// Whether this fetch downloaded it (false: it was already stored).
    pub downloaded: bool,
}

/// Counts, hashes and bounds the bytes on their way into a pending object.
struct Counting {
    object: Box<dyn PendingObject>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    kind: MediaKind,
}

#[async_trait]
impl MediaSink for Counting {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(MediaRefusal::TooLarge {
                kind: self.kind,
                size: self.size,
                limit: self.limit,
            }
            .into());
        }
        self.hasher.update(chunk);
        self.object.write(chunk).await?;
        Ok(())
    }
}

/// One file to fetch.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub media_id: &'a str,
    /// The business number it reached.
    pub phone_number_id: Option<&'a str>,
    pub kind: MediaKind,
    /// A sticker's flag.
    pub animated: bool,
    /// The SHA-256 the webhook carried, checked when Meta's answer has none.
    pub declared: Option<Sha256Digest>,
    /// The download URL and type when the webhook already carried them: the metadata call is
    /// skipped, and made after all if that URL does not serve the file.
    pub webhook_url: Option<&'a str>,
    pub mime_type: Option<&'a str>,
}

/// Fetches media ids into a store. Cheap to clone.
#[derive(Clone)]
pub struct MediaFetcher {
    source: std::sync::Arc<dyn MediaSource>,
    store: std::sync::Arc<dyn MediaStore>,
    /// The sources of a numbers registry's numbers (each with its own token), by
    /// phone_number_id; a file that reached another number comes through `source`.
    by_number: std::collections::HashMap<String, std::sync::Arc<dyn MediaSource>>,
}

impl MediaFetcher {
    pub fn new(
        source: std::sync::Arc<dyn MediaSource>,
        store: std::sync::Arc<dyn MediaStore>,
    ) -> MediaFetcher {
        MediaFetcher {
            source,
            store,
            by_number: Default::default(),
        }
    }

    /// Files that reached the number `phone_number_id` come through `source`.
    pub fn with_number(
        mut self,
        phone_number_id: &str,
        source: std::sync::Arc<dyn MediaSource>,
    ) -> MediaFetcher {
        self.by_number.insert(phone_number_id.to_string(), source);
        self
    }

    /// Fetches what `wanted` names.
    pub async fn fetch(&self, wanted: &Wanted<'_>) -> Result<StoredFile, FetchError> {
        let Wanted {
            media_id,
            phone_number_id,
            kind,
            animated,
            declared,
            ..
        } = *wanted;
        let from_webhook = match (wanted.webhook_url, wanted.mime_type) {
            (Some(url), Some(mime)) if !url.is_empty() => Some(MediaInfo {
                url: url.to_string(),
                mime_type: mime.to_string(),
                sha256: declared,
                file_size: None,
            }),
            _ => None,
        };
        let source = phone_number_id
            .and_then(|id| self.by_number.get(id))
            .unwrap_or(&self.source);
        let mut asked_meta = from_webhook.is_none();
        let mut info = match from_webhook {
            Some(info) => info,
            None => source.info(media_id, phone_number_id).await?,
        };
        kind.check(&info.mime_type, info.file_size.unwrap_or(0), animated)?;
        let expected = info.sha256.or(declared);
        if let Some(d) = expected {
            if self.store.exists(&d.object_key()).await? {
                self.store.refresh(&d.object_key()).await?;
                return Ok(StoredFile {
                    key: d.object_key(),
                    sha256: d,
                    size: info.file_size.unwrap_or(0),
                    mime_type: info.mime_type,
                    downloaded: false,
                });
            }
        }
        let limit = kind.max_bytes(animated);
        let mut expired_once = false;
        loop {
            let mut sink = Counting {
                object: self.store.begin().await?,
                hasher: Sha256::new(),
                size: 0,
                limit,
                kind,
            };
            let result = source.download(&info.url, &mut sink).await;
            match result {
                Ok(()) => return self.finish(sink, &info, expected).await,
                // The webhook's URL did not serve it (expired, refused, not Meta's): ask Meta.
                Err(FetchError::UrlExpired | FetchError::Retry { .. }) if !asked_meta => {
                    asked_meta = true;
                    sink.object.abort().await;
                    info = source.info(media_id, phone_number_id).await?;
                    kind.check(&info.mime_type, info.file_size.unwrap_or(0), animated)?;
                }
                Err(FetchError::UrlExpired) if !expired_once => {
                    expired_once = true;
                    sink.object.abort().await;
                    info = source.info(media_id, phone_number_id).await?;
                }
                Err(e) => {
                    sink.object.abort().await;
                    return Err(e);
                }
            }
        }
    }

    /// Checks the downloaded bytes against Meta's description and commits them, or aborts.
    async fn finish(
        &self,
        sink: Counting,
        info: &MediaInfo,
        expected: Option<Sha256Digest>,
    ) -> Result<StoredFile, FetchError> {
        let got = Sha256Digest::from_bytes(sink.hasher.finalize().into());
        let problem = match (info.file_size, expected) {
            (Some(size), _) if size != sink.size => {
                Some(format!("{} bytes where Meta said {size}", sink.size))
            }
            (_, Some(want)) if want != got => Some(format!(
                "SHA-256 {} where Meta said {}",
                got.hex(),
                want.hex()
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            sink.object.abort().await;
            return Err(FetchError::Corrupt(problem));
        }
        let key = got.object_key();
        sink.object.commit(&key).await?;
        Ok(StoredFile {
            key,
            sha256: got,
            size: sink.size,
            mime_type: info.mime_type.clone(),
            downloaded: true,
        })
    }
}
