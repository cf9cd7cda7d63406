//! Recent dedupe keys: an append-only log table and an in-memory index over it.
//!
//! Keys are random, so claiming each new key straight in the `dedupe_keys` B-tree dirtied one
//! random leaf page per event, and every group commit wrote all of them to the WAL: most of the
//! durable hand-off's cost. The inbox instead appends the key to `dedupe_log` (rowid order: a
//! whole group commit shares its last page) and remembers it in memory; a merger moves the log
//! into `dedupe_keys` in key order, in chunks, when no burst of webhooks is on.
//!
//! The index is a hint checked against the log: a hit is a duplicate only when the log row it
//! names still holds that key (an append rolled back with its transaction leaves a stale entry,
//! never a false duplicate). A miss is final only because this process wrote every row of the
//! log it did not load at start: one process owns the log at a time (a lock file beside the
//! database), and a second one is refused with an error saying so.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use super::db::{sql_err, Db};
use super::dedupe::is_merged_seen;
use wabridge_core::consumer::Pressure;
use wabridge_core::error::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dedupe_log (
    seq        INTEGER PRIMARY KEY,  -- append order, from the owning process's counter
    key        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL      -- Unix ms
);
";

/// When and how the merger moves the log into `dedupe_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    /// How often the merger looks at the log.
    pub every: Duration,
    /// Log rows moved per write transaction: small enough that the writer is not held for long
    /// (a few ms), large enough that neighbouring keys share their leaf's write.
    pub chunk: usize,
    /// Past this many log rows the merger runs even during a burst: it bounds the index's memory
    /// (about 5 MiB of RSS per 100,000 keys, measured) and the work left for after the burst.
    pub anyway_at: usize,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            every: Duration::from_secs(1),
            chunk: 2_000,
            anyway_at: 200_000,
        }
    }
}

/// The log's owner in this process: the lock, the index and the next sequence number.
pub(crate) struct RecentKeys {
    index: Mutex<Index>,
    /// Two independently keyed hashes of a key make its 128-bit index entry.
    hashers: (RandomState, RandomState),
    lock_path: PathBuf,
    /// Held (flock) while this value lives.
    _lock: File,
}

struct Index {
    /// Key hash -> the seq of the log row that holds the key.
    seq_of: HashMap<u128, i64>,
    next_seq: i64,
}

impl std::fmt::Debug for RecentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentKeys")
            .field("lock", &self.lock_path)
            .field("entries", &self.len())
            .finish()
    }
}

/// Where the owner's lock lives: beside the database file.
fn lock_path(db: &Db) -> PathBuf {
    let mut name = db.path().as_os_str().to_owned();
    name.push(".inbox-lock");
    PathBuf::from(name)
}

impl RecentKeys {
    /// Takes the log's lock (refused while another process, or another inbox of this one,
    /// holds it) and loads the index from the rows the log holds.
    pub(crate) async fn open(db: &Db) -> Result<Arc<RecentKeys>, StoreError> {
        let lock_path = lock_path(db);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Unavailable(format!(
                    "another wabridge process is already accepting webhooks into {} (it holds \
                     {}); run one `wabridge serve` per data directory",
                    db.path().display(),
                    lock_path.display()
                )))
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )))
            }
        }
        let rows: Vec<(i64, String)> = db
            .read(|c| {
                let mut s = c
                    .prepare("SELECT seq, key FROM dedupe_log ORDER BY seq")
                    .map_err(sql_err)?;
                let rows = s
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(sql_err);
                rows
            })
            .await?;
        let recent = RecentKeys {
            index: Mutex::new(Index {
                seq_of: HashMap::with_capacity(rows.len()),
                next_seq: 1,
            }),
            hashers: (RandomState::new(), RandomState::new()),
            lock_path,
            _lock: lock,
        };
        {
            let mut index = recent.lock();
            for (seq, key) in rows {
                let h = recent.hash(&key);
                index.seq_of.insert(h, seq);
                index.next_seq = index.next_seq.max(seq + 1);
            }
        }
        Ok(Arc::new(recent))
    }

    fn hash(&self, key: &str) -> u128 {
        (u128::from(self.hashers.0.hash_one(key)) << 64) | u128::from(self.hashers.1.hash_one(key))
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding it leaves at worst a stale entry, which the log check ignores.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries in the index (about the log's rows).
    pub(crate) fn len(&self) -> usize {
        self.lock().seq_of.len()
    }

    /// Remembers `key` until `expires_at` unless it is remembered and unexpired at `now_ms`, in
    /// the log or in `dedupe_keys`; true when the key was new (or expired). Inside the inbox's
    /// write, so the append commits or rolls back with the events it guards.
    pub(crate) fn claim(
        &self,
        t: &Transaction<'_>,
        key: &str,
        now_ms: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let h = self.hash(key);
        let mut index = self.lock();
        if let Some(&seq) = index.seq_of.get(&h) {
            let row: Option<(String, i64)> = t
                .prepare_cached("SELECT key, expires_at FROM dedupe_log WHERE seq = ?1")
                .and_then(|mut s| {
                    s.query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sql_err)?;
            match row {
                Some((logged, expiry)) if logged == key && expiry > now_ms => return Ok(false),
                // Expired: appended again below, with the new expiry.
                Some((logged, _)) if logged == key => {}
                // Rolled back, or merged since: the merged table decides.
                _ => {
                    index.seq_of.remove(&h);
                }
            }
        }
        if is_merged_seen(t, key, now_ms)? {
            return Ok(false);
        }
        let seq = index.next_seq;
        t.prepare_cached("INSERT INTO dedupe_log(seq, key, expires_at) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![seq, key, expires_at]))
            .map_err(sql_err)?;
        // Never reused in this process, even when this transaction rolls back: a merge forgets
        // entries by seq, and must not forget one appended after it.
        index.next_seq = seq + 1;
        index.seq_of.insert(h, seq);
        Ok(true)
    }

    /// Moves up to `chunk` of the oldest log rows into `dedupe_keys` (key order, keeping the
    /// later expiry of a key in both) in one write; returns how many rows moved.
    pub(crate) async fn merge(
        self: &Arc<Self>,
        db: &Db,
        chunk: usize,
    ) -> Result<usize, StoreError> {
        let chunk = i64::try_from(chunk.max(1)).unwrap_or(i64::MAX);
        let me = Arc::downgrade(self);
        let (moved, forget_upto) = db
            .write(move |t| {
                let me = me.upgrade().ok_or_else(super::inbox::closed)?;
                let upto: Option<i64> = t
                    .prepare_cached(
                        "SELECT max(seq) FROM (SELECT seq FROM dedupe_log ORDER BY seq LIMIT ?1)",
                    )
                    .and_then(|mut s| s.query_row([chunk], |r| r.get(0)))
                    .map_err(sql_err)?;
                let Some(upto) = upto else {
                    // An empty log: whatever the index still holds was rolled back.
                    return Ok((0, me.lock().next_seq - 1));
                };
                t.prepare_cached(
                    "INSERT INTO dedupe_keys(key, expires_at)
                     SELECT key, expires_at FROM dedupe_log WHERE seq <= ?1 ORDER BY key
                     ON CONFLICT(key) DO UPDATE
                       SET expires_at = max(dedupe_keys.expires_at, excluded.expires_at)",
                )
                .and_then(|mut s| s.execute([upto]))
                .map_err(sql_err)?;
                let moved = t
                    .prepare_cached("DELETE FROM dedupe_log WHERE seq <= ?1")
                    .and_then(|mut s| s.execute([upto]))
                    .map_err(sql_err)?;
                Ok((moved, upto))
            })
            .await?;
        // Only now that the move is committed: every entry up to `forget_upto` names a row that
        // is gone (merged, or never committed), and later appends have larger seqs.
        let mut index = self.lock();
        index.seq_of.retain(|_, seq| *seq > forget_upto);
        // Give a burst's memory back once the log is mostly merged.
        let len = index.seq_of.len();
        if index.seq_of.capacity() > 4 * len.max(1024) {
            index.seq_of.shrink_to(2 * len);
        }
        Ok(moved)
    }

    /// Merges the whole log, `chunk` rows a transaction; returns how many rows moved.
    pub(crate) async fn merge_all(
        self: &Arc<Self>,
        db: &Db,
        chunk: usize,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let moved = self.merge(db, chunk).await?;
            total += moved;
            if moved < chunk.max(1) {
                return Ok(total);
            }
        }
    }

    /// Every `policy.every`, merges the log unless a burst is on (`pressure` busy) and the log
    /// is under `policy.anyway_at` rows, until `stop` turns true.
    pub(crate) fn spawn_merger(
        self: Arc<Self>,
        db: Db,
        policy: MergePolicy,
        pressure: Option<Pressure>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                while self.len() > 0 {
                    if self.len() < Pressure::bound(pressure.as_ref(), 1, policy.anyway_at) {
                        break;
                    }
                    match self.merge(&db, policy.chunk).await {
                        Ok(0) => break,
                        Ok(_) => tokio::task::yield_now().await,
                        Err(e) => {
                            tracing::warn!(error = %e, "dedupe log merge failed");
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(policy.every) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
