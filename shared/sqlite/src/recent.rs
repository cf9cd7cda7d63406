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
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::inbox::tests::{event, open, queued, setup};
    use crate::{SqliteDedupe, SqliteInbox};
    use wabridge_core::dedupe::Dedupe;
    use wabridge_core::inbox::{AcceptReport, Inbox};

    async fn accept(inbox: &SqliteInbox, keys: &[&str]) -> (usize, usize) {
        let r = inbox
            .accept(keys.iter().map(|k| event(k)).collect())
            .await
            .unwrap();
        (r.accepted, r.duplicates)
    }

    async fn rows(db: &Db, table: &'static str) -> i64 {
        db.read(move |c| {
            c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .map_err(sql_err)
        })
        .await
        .unwrap()
    }

    /// Rows in (the log, the merged table).
    async fn tables(db: &Db) -> (i64, i64) {
        (rows(db, "dedupe_log").await, rows(db, "dedupe_keys").await)
    }

    #[tokio::test]
    async fn keys_stay_claimed_through_merges_and_restarts() {
        let (_d, db, clock, inbox) = setup().await;
        assert_eq!(accept(&inbox, &["a", "b"]).await, (2, 0));
        assert_eq!(inbox.recent_keys(), 2);
        assert_eq!(tables(&db).await, (2, 0));
        // The Dedupe port over the same file sees the log too (the CLI's stats count with it).
        let port = SqliteDedupe::with_clock(db.clone(), clock.clone());
        assert_eq!(port.seen(&["a", "z"]).await.unwrap(), [true, false]);
        assert_eq!(port.count().await.unwrap(), 2);

        assert_eq!(inbox.merge_recent().await.unwrap(), 2);
        assert_eq!(inbox.recent_keys(), 0, "merged keys leave the index");
        assert_eq!(port.count().await.unwrap(), 2);
        assert_eq!(tables(&db).await, (0, 2));
        // "a" is found in the merged table, "c" goes to the log.
        assert_eq!(accept(&inbox, &["a", "c"]).await, (1, 1));

        drop(inbox);
        let inbox = open(&db, &clock).await;
        assert_eq!(
            inbox.recent_keys(),
            1,
            "the index is rebuilt from the log at open"
        );
        assert_eq!(accept(&inbox, &["a", "b", "c", "d"]).await, (1, 3));
        assert_eq!(queued(&db).await, ["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn one_inbox_per_database_file() {
        let (_d, db, clock, inbox) = setup().await;
        let err = SqliteInbox::open(db.clone()).await.unwrap_err();
        assert!(
            err.to_string().contains("another wabridge process"),
            "{err}"
        );
        assert!(err.to_string().contains("i.db.inbox-lock"), "{err}");
        // Another handle on the same file (what a second process has) is refused as well.
        let other = Db::open(db.path()).unwrap();
        assert!(SqliteInbox::open(other.clone()).await.is_err());
        // A clone shares the owner; the lock goes with the last of them.
        let clone = inbox.clone();
        drop(inbox);
        assert!(SqliteInbox::open(other.clone()).await.is_err());
        assert_eq!(accept(&clone, &["a"]).await, (1, 0));
        drop(clone);
        let second = open(&other, &clock).await;
        assert_eq!(accept(&second, &["a", "b"]).await, (1, 1));
    }

    #[tokio::test]
    async fn an_expired_key_comes_back_and_the_merge_keeps_its_later_expiry() {
        let (_d, db, clock, inbox) = setup().await;
        let inbox = inbox.with_ttl(Duration::from_secs(60));
        assert_eq!(accept(&inbox, &["k"]).await, (1, 0));
        clock.advance(Duration::from_secs(59));
        assert_eq!(accept(&inbox, &["k"]).await, (0, 1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(accept(&inbox, &["k"]).await, (1, 0), "expired in the log");
        assert_eq!(rows(&db, "dedupe_log").await, 2);
        assert_eq!(inbox.merge_recent().await.unwrap(), 2);
        let expiry: i64 = db
            .read(|c| {
                c.query_row(
                    "SELECT expires_at FROM dedupe_keys WHERE key = 'k'",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(expiry, clock.now_ms() + 60_000, "the later expiry wins");
        clock.advance(Duration::from_secs(59));
        assert_eq!(accept(&inbox, &["k"]).await, (0, 1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            accept(&inbox, &["k"]).await,
            (1, 0),
            "expired in the merged table"
        );
    }

    /// xorshift64: a fixed seed makes a failure reproducible.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Random deliveries (alone and several in one group commit), deliveries failing after some
    /// of their keys were appended (their index entries go stale), merges of small chunks and
    /// restarts, checked against a model: each report counts exactly the keys new to the model,
    /// and in the end every key ever accepted is queued exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deliveries_failures_merges_and_restarts_queue_each_key_once() {
        let (_d, db, clock, mut inbox) = setup().await;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut model: BTreeSet<String> = BTreeSet::new();
        let pick = |seed: &mut u64| -> Vec<String> {
            let n = 1 + next(seed) % 5;
            (0..n).map(|_| format!("k{}", next(seed) % 80)).collect()
        };
        let new_in = |model: &BTreeSet<String>, keys: &[String]| -> BTreeSet<String> {
            keys.iter()
                .filter(|k| !model.contains(*k))
                .cloned()
                .collect()
        };
        let mut failures = 0;
        for round in 0..300 {
            match next(&mut seed) % 10 {
                0 => {
                    inbox.recent.merge(&db, 7).await.unwrap();
                }
                1 => {
                    drop(inbox);
                    inbox = open(&db, &clock).await;
                }
                2 => {
                    // The enqueue of an "x" key fails after the delivery's other new keys were
                    // appended: it keeps nothing. A concurrent delivery shares the group commit
                    // and must not be affected, even where the two share keys.
                    db.write(|t| {
                        t.execute_batch(
                            "CREATE TRIGGER inject_fault BEFORE INSERT ON queue_messages
                             WHEN NEW.msg_key LIKE 'x%' BEGIN SELECT RAISE(ABORT, 'injected'); END;",
                        )
                        .map_err(sql_err)
                    })
                    .await
                    .unwrap();
                    let mut failing = pick(&mut seed);
                    failing.push(format!("x{round}"));
                    let other = pick(&mut seed);
                    let (a, b) = (inbox.clone(), inbox.clone());
                    let (rf, ro) = tokio::join!(
                        a.accept(failing.iter().map(|k| event(k)).collect()),
                        b.accept(other.iter().map(|k| event(k)).collect()),
                    );
                    assert!(rf.unwrap_err().to_string().contains("injected"));
                    let fresh = new_in(&model, &other);
                    assert_eq!(ro.unwrap().accepted, fresh.len(), "{other:?}");
                    model.extend(fresh);
                    failures += 1;
                    db.write(|t| {
                        t.execute_batch("DROP TRIGGER inject_fault")
                            .map_err(sql_err)
                    })
                    .await
                    .unwrap();
                }
                3 => {
                    // Several deliveries at once: one group commit, keys shared between them.
                    let deliveries: Vec<Vec<String>> = (0..4).map(|_| pick(&mut seed)).collect();
                    let all: Vec<String> = deliveries.iter().flatten().cloned().collect();
                    let fresh = new_in(&model, &all);
                    let tasks: Vec<_> = deliveries
                        .into_iter()
                        .map(|keys| {
                            let inbox = inbox.clone();
                            tokio::spawn(async move {
                                inbox.accept(keys.iter().map(|k| event(k)).collect()).await
                            })
                        })
                        .collect();
                    let mut accepted = 0;
                    for t in tasks {
                        accepted += t.await.unwrap().unwrap().accepted;
                    }
                    assert_eq!(accepted, fresh.len());
                    model.extend(fresh);
                }
                _ => {
                    let keys = pick(&mut seed);
                    let fresh = new_in(&model, &keys);
                    let r = inbox
                        .accept(keys.iter().map(|k| event(k)).collect())
                        .await
                        .unwrap();
                    assert_eq!(
                        r,
                        AcceptReport {
                            accepted: fresh.len(),
                            duplicates: keys.len() - fresh.len()
                        }
                    );
                    model.extend(fresh);
                }
            }
        }
        let mut keys = queued(&db).await;
        keys.sort();
        let expected: Vec<String> = model.into_iter().collect();
        assert_eq!(keys, expected, "each accepted key queued exactly once");
        assert!(rows(&db, "dedupe_keys").await > 0, "some merges ran");
        assert!(failures > 10, "{failures} failed deliveries");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_merger_waits_for_a_burst_unless_the_log_outgrows_its_bound() {
        let (_d, db, _clock, inbox) = setup().await;
        let inbox = inbox.with_merge_policy(MergePolicy {
            every: Duration::from_millis(20),
            chunk: 3,
            anyway_at: 10,
        });
        let pressure = Pressure::new(2);
        let burst: Vec<_> = (0..2).map(|_| pressure.enter()).collect();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let merger = inbox.spawn_merger(Some(pressure.clone()), stop_rx);

        let first: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        assert_eq!(accept(&inbox, &first).await, (5, 0));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(inbox.recent_keys(), 5, "no merge during the burst");

        let more: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
        let more: Vec<&str> = more.iter().map(String::as_str).collect();
        assert_eq!(accept(&inbox, &more).await, (6, 0));
        // 11 >= 10: one chunk of 3 goes, then the burst holds the rest.
        wait_until(|| inbox.recent_keys() == 8).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(inbox.recent_keys(), 8);
        assert_eq!(rows(&db, "dedupe_keys").await, 3);

        drop(burst);
        wait_until(|| inbox.recent_keys() == 0).await;
        assert_eq!(tables(&db).await, (0, 11));
        assert_eq!(accept(&inbox, &first).await, (0, 5));
        stop_tx.send(true).unwrap();
        merger.await.unwrap();
    }

    async fn wait_until(cond: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !cond() {
            assert!(started.elapsed() < Duration::from_secs(10), "timed out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
