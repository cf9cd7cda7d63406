//! What the gateway knows of the files it sends, in the table (the SQLite side is
//! `wabridge_sqlite::media_uploads`):
//!
//! - `mediaupload#<sha256 hex>` (sort key `-`): what an upload said of a stored object (type,
//!   size, file name; [`MediaCatalog`]). It expires with send content
//!   (`WABRIDGE_CONTENT_RETENTION_DAYS`, the media bucket's lifecycle on `media/` too): a file
//!   name may name someone (`factura-ana-perez.pdf`), and the file is gone by then anyway.
//! - `mediametaid#<sha256 hex>`, sort key the phone number id: Meta's media id of the file
//!   uploaded from that number ([`UploadCache`]), expiring when its reuse ends
//!   (`wabridge_core::sends::media::REUSE_UPLOADS_FOR`).
//!
//! Both are keyed by content and name no customer; erasure's `FAMILIES` says so. Readers treat
//! an expired item as absent (DynamoDB's TTL deletes lazily).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{get_s, get_single, is_live, n, now_epoch, pk, s, EXPIRES_AT, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::media::upload::{MediaCatalog, ObjectInfo};
use wabridge_core::media::Sha256Digest;
use wabridge_core::sends::media::{CachedUpload, UploadCache};

/// Uploads' details, by file SHA-256.
pub const UPLOAD_FAMILY: &str = "mediaupload";
/// Meta's media ids, by file SHA-256 and number.
pub const META_ID_FAMILY: &str = "mediametaid";

#[derive(Clone, Debug)]
pub struct DynamoMediaUploads {
    client: Client,
    table: String,
    /// How long uploads' details are kept (the content retention).
    retention: Duration,
}

type Item = std::collections::HashMap<String, AttributeValue>;

fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::corrupt(format!("{name} is missing or not an integer")))
}

impl DynamoMediaUploads {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoMediaUploads {
        DynamoMediaUploads {
            client,
            table: table.into(),
            retention: Duration::from_secs(
                wabridge_core::retention::DEFAULT_CONTENT_RETENTION_DAYS * 86_400,
            ),
        }
    }

    /// Uploads' details expire `retention` after the upload (`WABRIDGE_CONTENT_RETENTION_DAYS`).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
}

#[async_trait]
impl MediaCatalog for DynamoMediaUploads {
    async fn put(&self, info: &ObjectInfo) -> Result<(), StoreError> {
        // Epoch seconds, rounded up: the item never outlives its retention by less than a second.
        let expires_at = (info.created_at + self.retention.as_millis() as i64 + 999) / 1000;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk(UPLOAD_FAMILY, &info.sha256.hex())))
            .item(SK, s(SINGLE_SK))
            .item("mime_type", s(&info.mime_type))
            .item("size", n(info.size as i64))
            .item("created_at", n(info.created_at))
            .item(EXPIRES_AT, n(expires_at));
        if let Some(name) = &info.filename {
            put = put.item("filename", s(name));
        }
        // The later upload's type and name win, as in SQLite.
        put.send().await.map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn get(&self, sha256: &Sha256Digest) -> Result<Option<ObjectInfo>, StoreError> {
        let key = pk(UPLOAD_FAMILY, &sha256.hex());
        let Some(item) = get_single(&self.client, &self.table, key).await? else {
            return Ok(None);
        };
        if !is_live(item.get(EXPIRES_AT), now_epoch())? {
            return Ok(None);
        }
        Ok(Some(ObjectInfo {
            sha256: *sha256,
            size: number(&item, "size")?.max(0) as u64,
            mime_type: get_s(&item, "mime_type")
                .ok_or_else(|| StoreError::corrupt("an upload's item has no mime_type"))?,
            filename: get_s(&item, "filename"),
            created_at: number(&item, "created_at")?,
        }))
    }
}

#[async_trait]
impl UploadCache for DynamoMediaUploads {
    async fn media_id(
        &self,
        object: &str,
        phone_number_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk(META_ID_FAMILY, object)))
            .key(SK, s(phone_number_id))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        // The id's own end in ms (TTL works in seconds and lags): past it, upload again.
        if number(&item, "expires_at_ms")? <= now_ms {
            return Ok(None);
        }
        Ok(get_s(&item, "media_id"))
    }

    async fn remember(&self, upload: &CachedUpload) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk(META_ID_FAMILY, &upload.object)))
            .item(SK, s(&upload.phone_number_id))
            .item("media_id", s(&upload.media_id))
            .item("uploaded_at", n(upload.uploaded_at))
            .item("expires_at_ms", n(upload.expires_at))
            .item(EXPIRES_AT, n((upload.expires_at + 999) / 1000))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }
}
