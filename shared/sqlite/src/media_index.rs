//! The local engine's media index ([`MediaIndex`]): one row per stored file and person who
//! sent it, so that erasing a person deletes their files and retention deletes files no message
//! used within the content retention. A file is kept while any row names it.
//!
//! Files and rows cannot change in one transaction: rows go first, then the files they no
//! longer name are deleted. A file left by a crash in between has no row, and the next
//! [`purge`] removes it (after [`ORPHAN_GRACE`], so a file just committed whose row is not yet
//! written is not taken for one).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Transaction};
use wabridge_core::error::StoreError;
use wabridge_core::media::store::{MediaIndex, MediaStore};

use crate::db::{sql_err, Db};
use crate::LocalMediaStore;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS media_objects (
    key       TEXT NOT NULL,   -- media/<sha256 hex>
    contact   TEXT NOT NULL,   -- the sender's stored identity key
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (key, contact)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_objects_contact ON media_objects(contact);
CREATE INDEX IF NOT EXISTS media_objects_stored ON media_objects(stored_at);
";

/// How old a file with no row must be before a purge removes it.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct SqliteMediaIndex {
    db: Db,
}

impl SqliteMediaIndex {
    pub fn new(db: Db) -> SqliteMediaIndex {
        SqliteMediaIndex { db }
    }
}

#[async_trait]
impl MediaIndex for SqliteMediaIndex {
    async fn record(&self, key: &str, contact: &str, at: i64) -> Result<(), StoreError> {
        let (key, contact) = (key.to_string(), contact.to_string());
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "INSERT INTO media_objects (key, contact, stored_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key, contact) DO UPDATE SET stored_at = max(stored_at, ?3)",
                )
                .and_then(|mut s| s.execute(params![key, contact, at]))
                .map(drop)
                .map_err(sql_err)
            })
            .await
    }
}

/// In an erasure's transaction: deletes the rows of `contacts` and returns the keys no row
/// names any more (their files go after the commit: [`delete_files`]).
pub(crate) fn erase_in(t: &Transaction, contacts: &[String]) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for contact in contacts {
        let mut s = t
            .prepare_cached("DELETE FROM media_objects WHERE contact = ?1 RETURNING key")
            .map_err(sql_err)?;
        let rows = s
            .query_map(params![contact], |r| r.get::<_, String>(0))
            .map_err(sql_err)?;
        for key in rows {
            keys.push(key.map_err(sql_err)?);
        }
    }
    keys.sort();
    keys.dedup();
    let mut orphans = Vec::new();
    for key in keys {
        let named = t
            .prepare_cached("SELECT 1 FROM media_objects WHERE key = ?1 LIMIT 1")
            .and_then(|mut s| s.exists(params![key]))
            .map_err(sql_err)?;
        if !named {
            orphans.push(key);
        }
    }
    Ok(orphans)
}

/// Deletes the files of `keys`; returns how many went.
pub async fn delete_files(store: &LocalMediaStore, keys: &[String]) -> Result<u64, StoreError> {
    for key in keys {
        store.delete(key).await?;
    }
    Ok(keys.len() as u64)
}

/// Retention: deletes the rows older than `retention` at `now_ms`, then every file no row
/// names that is older than [`ORPHAN_GRACE`]. Returns (rows, files) deleted.
pub async fn purge(
    db: &Db,
    store: &LocalMediaStore,
    retention: Duration,
    now_ms: i64,
) -> Result<(u64, u64), StoreError> {
    let before = now_ms - retention.as_millis() as i64;
    let rows = db
        .write(move |t| {
            t.prepare_cached("DELETE FROM media_objects WHERE stored_at < ?1")
                .and_then(|mut s| s.execute(params![before]))
                .map(|n| n as u64)
                .map_err(sql_err)
        })
        .await?;
    let mut files = 0;
    for (key, age) in store.list().await? {
        if age < ORPHAN_GRACE {
            continue;
        }
        let k = key.clone();
        let named = db
            .read(move |c| {
                c.prepare_cached("SELECT 1 FROM media_objects WHERE key = ?1 LIMIT 1")
                    .and_then(|mut s| s.exists(params![k]))
                    .map_err(sql_err)
            })
            .await?;
        if !named {
            store.delete(&key).await?;
            files += 1;
        }
    }
    Ok((rows, files))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use wabridge_core::media::store::MediaStore;
    use wabridge_core::media::Sha256Digest;

    use super::*;

    const DAY_MS: i64 = 86_400_000;

    async fn store_file(store: &LocalMediaStore, bytes: &[u8], age: Duration) -> String {
        let key = Sha256Digest::of(bytes).object_key();
        let mut pending = store.begin().await.unwrap();
        pending.write(bytes).await.unwrap();
        pending.commit(&key).await.unwrap();
        let file = std::fs::File::options()
            .append(true)
            .open(store.path_of(&key).unwrap())
            .unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        key
    }

    #[tokio::test]
    async fn retention_deletes_files_no_message_used_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("m.db")).unwrap();
        let store = LocalMediaStore::open(dir.path()).unwrap();
        let index = SqliteMediaIndex::new(db.clone());
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let now = 1_800_000_000_000;
        let retention = Duration::from_millis(90 * DAY_MS as u64);
        // Old: its only row is past the retention. Shared: one old row, one recent.
        // Orphan: no row, older than the grace. Fresh: no row yet, just committed.
        let old = store_file(&store, b"old", hours(24 * 100)).await;
        let shared = store_file(&store, b"shared", hours(24 * 100)).await;
        let orphan = store_file(&store, b"orphan", hours(2)).await;
        let fresh = store_file(&store, b"fresh", Duration::ZERO).await;
        index
            .record(&old, "phone:+525512345678", now - 91 * DAY_MS)
            .await
            .unwrap();
        index
            .record(&shared, "phone:+525512345678", now - 91 * DAY_MS)
            .await
            .unwrap();
        index
            .record(&shared, "bsuid:MX.1", now - DAY_MS)
            .await
            .unwrap();

        let (rows, files) = purge(&db, &store, retention, now).await.unwrap();
        assert_eq!((rows, files), (2, 2));
        for (key, kept) in [(old, false), (shared, true), (orphan, false), (fresh, true)] {
            assert_eq!(store.exists(&key).await.unwrap(), kept, "{key}");
        }
    }

    #[tokio::test]
    async fn erasure_frees_a_persons_files_unless_another_person_sent_them_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("m.db")).unwrap();
        let index = SqliteMediaIndex::new(db.clone());
        index
            .record("media/a", "phone:+525512345678", 1)
            .await
            .unwrap();
        index
            .record("media/b", "phone:+525512345678", 1)
            .await
            .unwrap();
        index
            .record("media/b", "phone:+5511987654321", 1)
            .await
            .unwrap();
        let orphans = db
            .write(|t| erase_in(t, &["phone:+525512345678".to_string()]))
            .await
            .unwrap();
        assert_eq!(orphans, vec!["media/a".to_string()]);
    }
}
