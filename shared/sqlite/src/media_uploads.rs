//! What the gateway knows of the files it sends, over SQLite: the details `POST /media`
//! recorded of each uploaded object (`media_uploads`, [`MediaCatalog`]; who uses the file is the
//! media index's `media_objects`), and Meta's media ids
//! of the files the sender uploaded, per number (`media_meta_uploads`, [`UploadCache`]).
//!
//! Both are keyed by the file's SHA-256. Neither links to a person: an uploaded file's name may
//! name someone (`factura-ana-perez.pdf`), so object details are purged with message content
//! (`WABRIDGE_CONTENT_RETENTION_DAYS`); upload ids are purged when their reuse ends (7 days,
//! `wabridge_core::sends::media::REUSE_UPLOADS_FOR`).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use wabridge_core::error::StoreError;
use wabridge_core::media::upload::{MediaCatalog, ObjectInfo};
use wabridge_core::media::Sha256Digest;
use wabridge_core::sends::media::{CachedUpload, UploadCache};

use crate::db::{sql_err, Clock, Db};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS media_uploads (
    object     TEXT PRIMARY KEY,   -- SHA-256 hex: the content address media/<object>
    mime_type  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    filename   TEXT,
    created_at INTEGER NOT NULL    -- Unix ms of the latest upload
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_uploads_created ON media_uploads(created_at);
CREATE TABLE IF NOT EXISTS media_meta_uploads (
    object          TEXT NOT NULL,
    phone_number_id TEXT NOT NULL,
    media_id        TEXT NOT NULL,
    uploaded_at     INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (object, phone_number_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_meta_uploads_expiry ON media_meta_uploads(expires_at);
";

#[derive(Clone, Debug)]
pub struct SqliteMediaUploads {
    db: Db,
    clock: Clock,
    /// How long object details are kept (the content retention).
    retention: Option<Duration>,
}

impl SqliteMediaUploads {
    pub fn new(db: Db) -> SqliteMediaUploads {
        SqliteMediaUploads {
            db,
            clock: Clock::System,
            retention: None,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Object details older than `retention` go in [`SqliteMediaUploads::purge`].
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Deletes up to `limit` expired upload ids and object details past the retention; returns
    /// how many rows went.
    pub async fn purge(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let cutoff = self
            .retention
            .map(|r| now.saturating_sub(r.as_millis() as i64));
        let limit = limit as i64;
        self.db
            .write(move |t| {
                let mut n = t
                    .prepare_cached(
                        "DELETE FROM media_meta_uploads WHERE (object, phone_number_id) IN
                         (SELECT object, phone_number_id FROM media_meta_uploads
                          WHERE expires_at <= ?1 LIMIT ?2)",
                    )
                    .and_then(|mut s| s.execute(params![now, limit]))
                    .map_err(sql_err)?;
                if let Some(cutoff) = cutoff {
                    let left = (limit - n as i64).max(0);
                    n += t
                        .prepare_cached(
                            "DELETE FROM media_uploads WHERE object IN
                             (SELECT object FROM media_uploads WHERE created_at < ?1 LIMIT ?2)",
                        )
                        .and_then(|mut s| s.execute(params![cutoff, left]))
                        .map_err(sql_err)?;
                }
                Ok(n)
            })
            .await
    }
}

#[async_trait]
impl MediaCatalog for SqliteMediaUploads {
    async fn put(&self, info: &ObjectInfo) -> Result<(), StoreError> {
        let info = info.clone();
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "INSERT INTO media_uploads (object, mime_type, size, filename, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(object) DO UPDATE SET mime_type = excluded.mime_type,
                        size = excluded.size, filename = excluded.filename,
                        created_at = excluded.created_at",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        info.sha256.hex(),
                        info.mime_type,
                        info.size as i64,
                        info.filename,
                        info.created_at
                    ])
                })
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn get(&self, sha256: &Sha256Digest) -> Result<Option<ObjectInfo>, StoreError> {
        let digest = *sha256;
        self.db
            .read(move |c| {
                c.prepare_cached(
                    "SELECT mime_type, size, filename, created_at FROM media_uploads
                     WHERE object = ?1",
                )
                .and_then(|mut s| {
                    s.query_row(params![digest.hex()], |r| {
                        Ok(ObjectInfo {
                            sha256: digest,
                            mime_type: r.get(0)?,
                            size: r.get::<_, i64>(1)?.max(0) as u64,
                            filename: r.get(2)?,
                            created_at: r.get(3)?,
                        })
                    })
                    .optional()
                })
                .map_err(sql_err)
            })
            .await
    }
}

#[async_trait]
impl UploadCache for SqliteMediaUploads {
    async fn media_id(
        &self,
        object: &str,
        phone_number_id: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let (object, number) = (object.to_string(), phone_number_id.to_string());
        self.db
            .read(move |c| {
                c.prepare_cached(
                    "SELECT media_id FROM media_meta_uploads
                     WHERE object = ?1 AND phone_number_id = ?2 AND expires_at > ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![object, number, now_ms], |r| r.get(0))
                        .optional()
                })
                .map_err(sql_err)
            })
            .await
    }

    async fn remember(&self, upload: &CachedUpload) -> Result<(), StoreError> {
        let u = upload.clone();
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "INSERT INTO media_meta_uploads
                        (object, phone_number_id, media_id, uploaded_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(object, phone_number_id) DO UPDATE SET
                        media_id = excluded.media_id, uploaded_at = excluded.uploaded_at,
                        expires_at = excluded.expires_at",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        u.object,
                        u.phone_number_id,
                        u.media_id,
                        u.uploaded_at,
                        u.expires_at
                    ])
                })
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn upload(object: &str, media_id: &str, at: i64) -> CachedUpload {
        CachedUpload {
            object: object.into(),
            phone_number_id: "106540352242922".into(),
            media_id: media_id.into(),
            uploaded_at: at,
            expires_at: at + 7 * DAY,
        }
    }

    #[tokio::test]
    async fn ids_are_reused_until_they_expire_then_purged() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.sqlite")).unwrap();
        let t0 = 100 * DAY;
        let clock = Clock::manual(t0);
        let store = SqliteMediaUploads::new(db.clone())
            .with_clock(clock.clone())
            .with_retention(std::time::Duration::from_secs(90 * 86_400));
        store.remember(&upload("aa", "1001", t0)).await.unwrap();
        let number = "106540352242922";
        assert_eq!(
            store
                .media_id("aa", number, t0 + DAY)
                .await
                .unwrap()
                .as_deref(),
            Some("1001")
        );
        // Another number has its own ids.
        assert_eq!(store.media_id("aa", "999", t0).await.unwrap(), None);
        assert_eq!(
            store.media_id("aa", number, t0 + 7 * DAY).await.unwrap(),
            None
        );
        // A new upload replaces the old id.
        store
            .remember(&upload("aa", "1002", t0 + 8 * DAY))
            .await
            .unwrap();
        assert_eq!(
            store
                .media_id("aa", number, t0 + 8 * DAY)
                .await
                .unwrap()
                .as_deref(),
            Some("1002")
        );

        let info = ObjectInfo {
            sha256: Sha256Digest::of(b"%PDF"),
            size: 4,
            mime_type: "application/pdf".into(),
            filename: Some("factura-1042.pdf".into()),
            created_at: t0,
        };
        store.put(&info).await.unwrap();
        assert_eq!(store.get(&info.sha256).await.unwrap(), Some(info.clone()));

        // Nothing expired yet.
        assert_eq!(store.purge(100).await.unwrap(), 0);
        clock.advance(std::time::Duration::from_secs(16 * 86_400));
        assert_eq!(store.purge(100).await.unwrap(), 1, "the expired id");
        clock.advance(std::time::Duration::from_secs(75 * 86_400));
        assert_eq!(
            store.purge(100).await.unwrap(),
            1,
            "details past the retention"
        );
        assert_eq!(store.get(&info.sha256).await.unwrap(), None);
    }
}
