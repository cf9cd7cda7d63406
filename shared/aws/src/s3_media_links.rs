//! The media bucket as the gateway's HTTP side uses it: `GET /media/{id}` redirects to a
//! presigned GetObject, and an erasure deletes the person's files. Both are signed with
//! aws-sigv4 over the claim-check's small client ([`S3Blobs`]), not through aws-sdk-s3, which
//! only the media function links (`crate::s3_media`, feature `media`): the SDK's S3 client took
//! ingest's package from 2.84 to 3.74 MB (x86_64, 2026-12-03), over its 3 MB goal, and ingest
//! needs none of its multipart uploads or copies.
//!
//! Writing and reading bytes are the media function's: [`MediaStore::begin`] and
//! [`MediaStore::open`] refuse here (`Invalid`), and `GET /media` never reads through the
//! store, since [`MediaStore::presign`] always answers for a content address.

use std::time::Duration;

use async_trait::async_trait;
use http::Method;

use crate::s3::{refused, S3Blobs};
use crate::sdk::SdkConfig;
use wabridge_core::error::StoreError;
use wabridge_core::media::store::{MediaStore, PendingObject, StoredObject};

/// Whether `key` is a content address, `media/<64 hex>`: nothing else (pending objects, another
/// prefix) is read, written, deleted or linked to through the media stores.
pub(crate) fn is_media_key(key: &str) -> bool {
    key.strip_prefix("media/")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[derive(Clone, Debug)]
pub struct S3MediaLinks {
    bucket: S3Blobs,
}

impl S3MediaLinks {
    /// The media `bucket` with the configuration's region, credentials and endpoint.
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> S3MediaLinks {
        S3MediaLinks {
            bucket: S3Blobs::new(sdk, bucket),
        }
    }

    /// The bucket's signed calls (uploads by URL: `crate::s3_media_uploads`).
    pub(crate) fn blobs(&self) -> &S3Blobs {
        &self.bucket
    }

    fn not_here(what: &str) -> StoreError {
        StoreError::Invalid(format!(
            "{what}: the gateway only links to and deletes media files (the media function \
             writes them)"
        ))
    }
}

#[async_trait]
impl MediaStore for S3MediaLinks {
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        if !is_media_key(key) {
            return Ok(false);
        }
        match self
            .bucket
            .call("HeadObject", Method::HEAD, key, &[])
            .await?
        {
            (200, _) => Ok(true),
            (404, _) => Ok(false),
            (status, body) => Err(refused("HeadObject", key, status, &body)),
        }
    }

    async fn begin(&self) -> Result<Box<dyn PendingObject>, StoreError> {
        Err(Self::not_here("writing a media file"))
    }

    async fn refresh(&self, key: &str) -> Result<(), StoreError> {
        if !is_media_key(key) {
            return Ok(());
        }
        self.bucket.copy(key, key, true).await
    }

    async fn open(&self, _key: &str) -> Result<Option<StoredObject>, StoreError> {
        Err(Self::not_here("reading a media file"))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !is_media_key(key) {
            return Ok(());
        }
        // S3 answers 204 whether or not the key existed.
        match self
            .bucket
            .call("DeleteObject", Method::DELETE, key, &[])
            .await?
        {
            (200 | 204, _) => Ok(()),
            (status, body) => Err(refused("DeleteObject", key, status, &body)),
        }
    }

    async fn presign(
        &self,
        key: &str,
        content_type: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        if !is_media_key(key) {
            return Ok(None);
        }
        self.bucket
            .presign_get(key, &[("response-content-type", content_type)], ttl)
            .await
            .map(Some)
    }
}
