//! Uploads by URL on AWS (`POST /media/uploads`, `wabridge_core::media::direct`): the client
//! PUTs the file to a presigned S3 URL under `media/.pending/upload-<sha256>`, and settling
//! reads it back streamed, checks its size and SHA-256, copies it to its content address
//! `media/<sha256>` and removes the pending object. The URL signs the type, the length and
//! `x-amz-checksum-sha256`, so S3 itself refuses other bytes; the gateway checks them again
//! because the content address must only ever hold the file its name says (and an emulator
//! does not check checksums). `media/.pending/` expires after a day (the bucket's lifecycle),
//! so an upload never settled leaves nothing.
//!
//! Signed with aws-sigv4 over the claim-check's small client, like the links (see
//! `crate::s3_media_links`): ingest does not link aws-sdk-s3.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::s3::refused;
use crate::s3_media_links::S3MediaLinks;
use wabridge_core::claim_check::BlobStore;
use wabridge_core::clock::now_ms;
use wabridge_core::error::StoreError;
use wabridge_core::media::direct::{Declared, DirectUploads, PresignedPut, Settled};
use wabridge_core::media::store::MediaStore;
use wabridge_core::media::Sha256Digest;

/// Reading a pending upload back to check it: a 100 MB document within a Lambda's run.
const CHECK_TIME: Duration = Duration::from_secs(120);

/// Where the declared file is PUT before it is checked.
pub fn pending_key(sha256: &Sha256Digest) -> String {
    format!("media/.pending/upload-{}", sha256.hex())
}

#[async_trait]
impl DirectUploads for S3MediaLinks {
    async fn presign_put(
        &self,
        upload: &Declared,
        ttl: Duration,
    ) -> Result<PresignedPut, StoreError> {
        let size = upload.size.to_string();
        let checksum = upload.sha256.base64();
        let headers = [
            ("content-type", upload.mime_type.as_str()),
            ("content-length", size.as_str()),
            ("x-amz-checksum-sha256", checksum.as_str()),
        ];
        let url = self
            .blobs()
            .presign_put(&pending_key(&upload.sha256), &headers, ttl)
            .await?;
        Ok(PresignedPut {
            url,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            expires_at: now_ms() / 1000 + ttl.as_secs() as i64,
        })
    }

    async fn settle(&self, upload: &Declared) -> Result<Settled, StoreError> {
        let key = upload.sha256.object_key();
        let blobs = self.blobs();
        // Stored before (an earlier settle, the same file uploaded or received): its content
        // address names its bytes, so only the size can disagree with the declaration.
        if let Some(size) = self.stored_size(&key).await? {
            if size != upload.size {
                return Ok(Settled::Mismatch { size, sha256: None });
            }
            // Uploaded again: kept the content retention from now.
            self.refresh(&key).await?;
            return Ok(Settled::Stored);
        }
        let pending = pending_key(&upload.sha256);
        let Some((size, mut body)) = blobs.open(&pending).await? else {
            return Ok(Settled::Missing);
        };
        if size != upload.size {
            BlobStore::delete(blobs, &pending).await?;
            return Ok(Settled::Mismatch { size, sha256: None });
        }
        let check = async {
            let mut hasher = Sha256::new();
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    StoreError::Unavailable(format!("GetObject {pending}: reading: {e}"))
                })?;
                read += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok::<_, StoreError>((read, Sha256Digest::from_bytes(hasher.finalize().into())))
        };
        let (read, sha256) = tokio::time::timeout(CHECK_TIME, check)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "GetObject {pending}: not read within {CHECK_TIME:?}"
                ))
            })??;
        if read != upload.size || sha256 != upload.sha256 {
            BlobStore::delete(blobs, &pending).await?;
            return Ok(Settled::Mismatch {
                size: read,
                sha256: Some(sha256),
            });
        }
        blobs.copy(&pending, &key, false).await?;
        BlobStore::delete(blobs, &pending).await?;
        Ok(Settled::Stored)
    }
}

impl S3MediaLinks {
    /// The size of the object under `key`, when there is one (HeadObject).
    async fn stored_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let (status, headers) = self.blobs().head(key).await?;
        match status {
            200 => headers
                .ok_or_else(|| StoreError::Corrupt(format!("HeadObject {key}: no Content-Length")))
                .map(Some),
            404 => Ok(None),
            status => Err(refused("HeadObject", key, status, &[])),
        }
    }
}
