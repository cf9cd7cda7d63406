//! The media store over an S3 bucket (`wabridge_core::media::store`), through aws-sdk-s3: the
//! template's `MediaBucket` (KMS by default, public access blocked, TLS only, a lifecycle equal
//! to the content retention).
//!
//! Unlike the claim-check's three signed calls (`crate::s3`), media needs multipart uploads,
//! server-side copies and presigned URLs, which the SDK's client already does right; it sits
//! behind the `media` feature so the Lambdas that store no media do not build it.
//!
//! A download is written with bounded memory: bytes are buffered up to one part (8 MiB; S3's
//! smallest part is 5 MiB). A file that fits in one part is a single PutObject at commit. A
//! larger one becomes a multipart upload to `media/.pending/<uuid>`, one part whenever the
//! buffer is full; at commit it is completed, then copied to its content address (known only
//! once the caller has checked the hash) and the pending object deleted. A content address that
//! is already stored is left as it is: same key, same bytes. An abort, or a process that dies
//! mid-download, leaves at most an incomplete upload or a pending object, which the bucket's
//! lifecycle rules remove after a day.
//!
//! Errors: throttling, 5xx, timeouts, a denied call or a missing bucket are `Unavailable` (the
//! job waits within its retry horizon while an operator fixes a role); a request S3 calls
//! malformed is `Corrupt` (a bug).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::service_config::ServiceConfigKey;

use crate::s3_media_links::is_media_key;
use crate::sdk::SdkConfig;
use wabridge_core::error::StoreError;
use wabridge_core::media::store::{MediaStore, PendingObject, StoredObject};

/// One part of a multipart upload, and the most a pending object holds in memory.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Where objects wait for their content address.
pub const PENDING_PREFIX: &str = "media/.pending/";
/// S3's limit on the parts of one upload (80 GB at 8 MiB: far beyond any WhatsApp file).
const MAX_PARTS: usize = 10_000;

/// Error codes of a request S3 calls malformed: retrying the same call cannot help.
const INVALID_REQUEST_CODES: &[&str] = &[
    "InvalidArgument",
    "InvalidRequest",
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "EntityTooLarge",
    "MalformedXML",
    "KeyTooLongError",
    "InvalidBucketName",
];

#[derive(Clone, Debug)]
pub struct S3MediaStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

/// Longer than the shared SDK limits (`crate::sdk`, 4 s per attempt, sized for ingest answering
/// Meta): one attempt carries a whole 8 MiB part, or copies a 100 MB object inside S3. The
/// response head of a GetObject falls under them too; its body streams without a limit.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(90))
        .build()
}

/// Whether S3 is reached through an endpoint of its own (`AWS_ENDPOINT_URL_S3`, else
/// `AWS_ENDPOINT_URL`), as `crate::s3` reads it: an emulator on 127.0.0.1 has no per-bucket host
/// names, so such an endpoint is addressed path style.
fn custom_endpoint(sdk: &SdkConfig) -> bool {
    let s3_endpoint = sdk.service_config().and_then(|c| {
        let key = ServiceConfigKey::builder()
            .service_id("S3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()?;
        c.load_config(key)
    });
    s3_endpoint.is_some() || sdk.endpoint_url().is_some()
}

/// The port error of an SDK error: S3's malformed-request codes are `Corrupt`, the rest as
/// every other AWS adapter maps them ([`crate::sdk::store_error`]).
fn s3_error<E>(operation: &str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let invalid = err
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| INVALID_REQUEST_CODES.contains(&code));
    match crate::sdk::store_error(&format!("{operation} {key}"), err) {
        StoreError::Unavailable(detail) if invalid => StoreError::Corrupt(detail),
        other => other,
    }
}

/// Whether S3 answered 404 (a HEAD has no body, so no error code to read).
fn is_404<E>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(err, SdkError::ServiceError(e) if e.raw().status().as_u16() == 404)
}

impl S3MediaStore {
    /// A store in `bucket` with the configuration's region, credentials and endpoint.
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> S3MediaStore {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint(sdk))
            .timeout_config(timeouts())
            .build();
        S3MediaStore {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl MediaStore for S3MediaStore {
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        if !is_media_key(key) {
            return Ok(false);
        }
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_404(&e) => Ok(false),
            Err(e) => Err(s3_error("HeadObject", key, e)),
        }
    }

    async fn refresh(&self, key: &str) -> Result<(), StoreError> {
        if !is_media_key(key) {
            return Ok(());
        }
        // A copy onto itself rewrites the object, so the lifecycle's days count from now; S3
        // allows it only with new metadata (REPLACE). Server side: no byte passes through here.
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(format!("{}/{key}", self.bucket))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", key, e))?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn PendingObject>, StoreError> {
        Ok(Box::new(PendingUpload {
            store: self.clone(),
            key: format!("{PENDING_PREFIX}{}", uuid::Uuid::new_v4().simple()),
            buffer: Vec::new(),
            remote: Remote::Nothing,
        }))
    }

    async fn open(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        if !is_media_key(key) {
            return Ok(None);
        }
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", key, e)),
        };
        let size = out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("GetObject {key}: no Content-Length")))?;
        Ok(Some(StoredObject {
            size,
            body: Box::pin(out.body.into_async_read()),
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !is_media_key(key) {
            return Ok(());
        }
        // S3 answers 204 whether or not the key existed.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_error("DeleteObject", key, e))
    }

    /// A presigned GetObject that answers with `content_type`. Signing is local: the URL is made
    /// whether or not the object exists (S3 answers 404 to it then), and it stops working early
    /// when the signing credentials expire (a Lambda role's session) or the key policy changes.
    async fn presign(
        &self,
        key: &str,
        content_type: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        if !is_media_key(key) {
            return Ok(None);
        }
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::Invalid(format!("a presigned URL for {ttl:?}: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presigning GetObject", key, e))?;
        Ok(Some(request.uri().to_string()))
    }
}

/// What S3 holds of a pending object.
enum Remote {
    /// Nothing yet: the bytes fit in the buffer so far.
    Nothing,
    /// A multipart upload under way: its id and the parts S3 has acknowledged.
    Uploading {
        id: String,
        parts: Vec<CompletedPart>,
    },
    /// The completed upload, an object under the pending key.
    Completed,
}

/// An object being written: at most one part in memory, the rest in S3 (`remote`).
struct PendingUpload {
    store: S3MediaStore,
    /// The pending object's key, `media/.pending/<uuid>` (only a multipart upload uses it).
    key: String,
    buffer: Vec<u8>,
    /// A multipart upload starts when a second part's first byte arrives.
    remote: Remote,
}

impl PendingUpload {
    fn client(&self) -> &aws_sdk_s3::Client {
        &self.store.client
    }

    fn bucket(&self) -> &str {
        &self.store.bucket
    }

    /// Grows the buffer for `more` bytes without passing one part: a small file takes what it
    /// needs, a large one one part's allocation, never a doubling past it.
    fn reserve(&mut self, more: usize) {
        let needed = self.buffer.len() + more;
        if needed > self.buffer.capacity() {
            let target = (self.buffer.capacity() * 2).max(needed).min(PART_SIZE);
            self.buffer.reserve_exact(target - self.buffer.len());
        }
    }

    /// Sends the buffer as the next part, starting the multipart upload on the first.
    async fn send_part(&mut self) -> Result<(), StoreError> {
        if matches!(self.remote, Remote::Nothing) {
            // The checksum algorithm is declared up front: S3 refuses parts carrying a checksum
            // the upload did not announce, and the SDK adds CRC32 to every part.
            let out = self
                .client()
                .create_multipart_upload()
                .bucket(self.bucket())
                .key(&self.key)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .send()
                .await
                .map_err(|e| s3_error("CreateMultipartUpload", &self.key, e))?;
            let id = out.upload_id().ok_or_else(|| {
                StoreError::Corrupt(format!("CreateMultipartUpload {}: no upload id", self.key))
            })?;
            self.remote = Remote::Uploading {
                id: id.to_string(),
                parts: Vec::new(),
            };
        }
        let Remote::Uploading { id, parts } = &self.remote else {
            return Err(StoreError::Corrupt(format!(
                "{}: a part after the upload was completed",
                self.key
            )));
        };
        if parts.len() >= MAX_PARTS {
            return Err(StoreError::Invalid(format!(
                "{}: more than {MAX_PARTS} parts of {PART_SIZE} bytes",
                self.key
            )));
        }
        let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
        let body = std::mem::take(&mut self.buffer);
        let out = self
            .client()
            .upload_part()
            .bucket(self.bucket())
            .key(&self.key)
            .upload_id(id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", &self.key, e))?;
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_string))
            .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
            .build();
        if let Remote::Uploading { parts, .. } = &mut self.remote {
            parts.push(part);
        }
        Ok(())
    }

    /// Stores the written bytes under `key`, unless an object is there already.
    async fn store(&mut self, key: &str) -> Result<(), StoreError> {
        if !is_media_key(key) {
            return Err(StoreError::Corrupt(format!("{key} is not a media key")));
        }
        if matches!(self.remote, Remote::Uploading { .. }) {
            // The last part: never empty, since a part is sent only when more bytes follow it.
            self.send_part().await?;
        }
        if self.store.exists(key).await? {
            self.discard().await;
            return Ok(());
        }
        let Remote::Uploading { id, parts } = &self.remote else {
            let body = std::mem::take(&mut self.buffer);
            return self
                .client()
                .put_object()
                .bucket(self.bucket())
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("PutObject", key, e));
        };
        self.client()
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(&self.key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.key, e))?;
        self.remote = Remote::Completed;
        // A new CRC32 of the whole copy: the upload's is a checksum of its parts' checksums,
        // which a reader cannot check the body against (moto even serves it as a whole-object
        // one, and the SDK's GetObject then refuses the bytes).
        self.client()
            .copy_object()
            .bucket(self.bucket())
            .key(key)
            .copy_source(format!("{}/{}", self.bucket(), self.key))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", key, e))?;
        self.discard().await;
        Ok(())
    }

    /// Removes what S3 holds of this object, best effort: a failure is logged, and the bucket's
    /// lifecycle rules remove the rest after a day.
    async fn discard(&mut self) {
        self.buffer = Vec::new();
        let result = match std::mem::replace(&mut self.remote, Remote::Nothing) {
            Remote::Nothing => Ok(()),
            Remote::Uploading { id, .. } => self
                .client()
                .abort_multipart_upload()
                .bucket(self.bucket())
                .key(&self.key)
                .upload_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("AbortMultipartUpload", &self.key, e)),
            Remote::Completed => self
                .client()
                .delete_object()
                .bucket(self.bucket())
                .key(&self.key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error("DeleteObject", &self.key, e)),
        };
        if let Err(e) = result {
            tracing::warn!(pending = %self.key, error = %e, "could not remove a pending media object; the bucket's lifecycle will");
        }
    }
}

#[async_trait]
impl PendingObject for PendingUpload {
    async fn write(&mut self, mut chunk: &[u8]) -> Result<(), StoreError> {
        while !chunk.is_empty() {
            // A full buffer goes out only when more bytes follow, so a file of exactly one part
            // is still a single PutObject and the last part is never empty.
            if self.buffer.len() == PART_SIZE {
                self.send_part().await?;
            }
            let take = (PART_SIZE - self.buffer.len()).min(chunk.len());
            self.reserve(take);
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, key: &str) -> Result<(), StoreError> {
        let stored = self.store(key).await;
        if stored.is_err() {
            self.discard().await;
        }
        stored
    }

    async fn abort(mut self: Box<Self>) {
        self.discard().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_addresses_are_media_keys() {
        let hex = "ab".repeat(32);
        assert!(is_media_key(&format!("media/{hex}")));
        assert!(is_media_key(&format!("media/{}", hex.to_uppercase())));
        assert!(!is_media_key(&format!("media/.pending/{hex}")));
        assert!(!is_media_key(&format!("events/{hex}")));
        assert!(!is_media_key(&format!("media/{}", &hex[1..])));
        assert!(!is_media_key(&format!("media/{}zz", &hex[2..])));
    }

    #[test]
    fn the_buffer_grows_to_one_part_and_no_further() {
        let store = S3MediaStore::new(
            &crate::sdk::sdk_config_for_endpoint("http://127.0.0.1:9", "us-east-1"),
            "b",
        );
        let mut pending = PendingUpload {
            store,
            key: format!("{PENDING_PREFIX}x"),
            buffer: Vec::new(),
            remote: Remote::Nothing,
        };
        pending.reserve(100);
        assert!(pending.buffer.capacity() >= 100 && pending.buffer.capacity() < 4096);
        pending.buffer.resize(PART_SIZE - 10, 0);
        pending.reserve(10);
        assert_eq!(pending.buffer.capacity(), PART_SIZE);
    }

    #[test]
    fn an_emulator_endpoint_is_addressed_path_style() {
        let emulator = crate::sdk::sdk_config_for_endpoint("http://127.0.0.1:5000", "us-east-1");
        assert!(custom_endpoint(&emulator));
        let aws = SdkConfig::builder()
            .region(aws_types::region::Region::new("sa-east-1"))
            .build();
        assert!(!custom_endpoint(&aws));
    }
}
