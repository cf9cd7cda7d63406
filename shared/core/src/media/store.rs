//! The media store port: where stored files live (the data directory locally, an S3 bucket on
//! AWS), under their content address `media/<sha256 hex>`. Writes go through a pending object
//! that is committed only once the bytes are checked; reads stream; a store that can hand out
//! its own short-lived URLs (S3's presigned ones) says so, and the gateway redirects to them
//! instead of carrying the bytes itself.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;

/// An object being written: committed under its key, or aborted (removed).
#[async_trait]
pub trait PendingObject: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;
    /// Makes the object durable under `key` (replacing nothing: the key is its content).
    async fn commit(self: Box<Self>, key: &str) -> Result<(), StoreError>;
    /// Removes what was written.
    async fn abort(self: Box<Self>);
}

/// A stored file opened for reading.
pub struct StoredObject {
    pub size: u64,
    pub body: Pin<Box<dyn tokio::io::AsyncRead + Send>>,
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredObject")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait MediaStore: Send + Sync {
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    async fn begin(&self) -> Result<Box<dyn PendingObject>, StoreError>;
    /// The object under `key`, streamed; `None` when there is none (never stored, purged,
    /// erased).
    async fn open(&self, key: &str) -> Result<Option<StoredObject>, StoreError>;
    /// The object under `key` is used again (a redelivered or re-sent file, an upload of a
    /// stored one): a store whose retention counts from the write (S3's lifecycle) restarts
    /// it, as the media index does for the local store, which needs nothing here.
    async fn refresh(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Removes the object (erasure, retention); removing an absent one is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// A URL that serves the object itself for `ttl`, with `content_type`, when the store can
    /// make one (S3 presigned GET); `None` for a store the gateway reads through [`Self::open`].
    async fn presign(
        &self,
        _key: &str,
        _content_type: &str,
        _ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}

/// Which person each stored file belongs to: erasure deletes the files of the person erased
/// (a file stays while another message still uses it), and retention those no message used
/// within the content retention.
#[async_trait]
pub trait MediaIndex: Send + Sync {
    /// `key` was stored (or found stored) for a message of `contact` (a stored identity key)
    /// at `at` (Unix ms).
    async fn record(&self, key: &str, contact: &str, at: i64) -> Result<(), StoreError>;
}
