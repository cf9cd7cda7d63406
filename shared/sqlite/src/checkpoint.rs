//! When the writer folds the WAL back into the database file (a checkpoint).
//!
//! SQLite's default checkpoints inside the commit once the WAL holds 1,000 pages: it copies
//! those pages into the database file and fsyncs it, and every acknowledgment of that batch,
//! and of the batch queued behind it, waits for that fsync. Mid-burst that happened about 20
//! times a second and was most of the load test's p99 (12–18 ms with it, 6.5–8.5 ms without).
//!
//! So the writer checkpoints itself, after it has answered the batch, and while a burst is on
//! (see [`Pressure`]) it lets the WAL grow up to [`CheckpointPolicy::burst_pages`] first: the
//! burst's commits only append to the WAL, and the pages are copied once, when it is over.
//! Past that bound it checkpoints even mid-burst, so the WAL (disk, and the time a crash
//! recovery takes to read it back) stays bounded under a load that never ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

use wabridge_core::consumer::Pressure;

/// How many WAL pages (4 KiB each) the writer lets pile up before it checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Without a burst: SQLite's own default.
    pub pages: u64,
    /// During a burst: 128 Ki pages = 512 MiB, about 200,000 webhooks (the load test's WAL
    /// peaked at 250 MB over 100,000, the CRM sync's writes during the burst included).
    pub burst_pages: u64,
    /// The WAL file is cut back to this size when it restarts after a checkpoint (SQLite keeps
    /// the file at its largest otherwise).
    pub keep_bytes: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            pages: 1000,
            burst_pages: 128 * 1024,
            keep_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the writer thread and the [`super::Db`] handles share about the WAL.
#[derive(Debug, Default)]
pub(crate) struct WalState {
    /// Pages in the WAL after the latest commit (from SQLite's WAL hook).
    pub(crate) frames: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
    /// The foreground load that defers checkpoints, once the owner has set it.
    pub(crate) burst: OnceLock<Pressure>,
}

/// The writer thread's side: decides after each batch whether to checkpoint now.
pub(crate) struct Checkpointer {
    policy: CheckpointPolicy,
    state: Arc<WalState>,
    /// WAL pages already copied by the last checkpoint (SQLite keeps them until the WAL
    /// restarts): only the pages after them count towards the next checkpoint.
    backfilled: u64,
}

impl Checkpointer {
    /// Takes checkpoints over from SQLite on the writer's connection: the WAL hook replaces the
    /// automatic checkpoint and only records the WAL's size.
    pub(crate) fn install(
        conn: &mut Connection,
        policy: CheckpointPolicy,
        state: Arc<WalState>,
    ) -> rusqlite::Result<Checkpointer> {
        conn.pragma_update(None, "journal_size_limit", policy.keep_bytes as i64)?;
        let frames = state.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            frames.frames.store(pages.max(0) as u64, Ordering::Relaxed);
            Ok(())
        }))?;
        Ok(Checkpointer {
            policy,
            state,
            backfilled: 0,
        })
    }

    /// Called between batches, outside any transaction.
    pub(crate) fn after_batch(&mut self, conn: &Connection) {
        let frames = self.state.frames.load(Ordering::Relaxed);
        if frames < self.backfilled {
            // The WAL restarted from its beginning since the last checkpoint.
            self.backfilled = 0;
        }
        let threshold = Pressure::bound(
            self.state.burst.get(),
            self.policy.pages,
            self.policy.burst_pages,
        );
        if frames - self.backfilled < threshold.max(1) {
            return;
        }
        // PASSIVE: copies what no reader still needs and never waits; what it leaves is
        // copied by a later checkpoint.
        let started = std::time::Instant::now();
        match conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
            Ok((log, copied)) => {
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(wal_pages = log, copied, took_ms, "sqlite checkpoint");
                self.backfilled = copied.max(0) as u64;
                self.state.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // Not retried after every commit: the next try comes one threshold later.
                self.backfilled = frames;
                tracing::warn!(error = %e, "sqlite checkpoint failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql_err;
    use crate::{Db, DbOptions};

    const SMALL: CheckpointPolicy = CheckpointPolicy {
        pages: 40,
        burst_pages: 400,
        keep_bytes: 1024 * 1024,
    };

    fn open(policy: CheckpointPolicy) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let options = DbOptions {
            checkpoint: policy,
            ..DbOptions::default()
        };
        let db = Db::open_with(dir.path().join("t.db"), options).unwrap();
        (dir, db)
    }

    /// One commit of a row of about two pages; returns the WAL pages after it.
    async fn write_one(db: &Db, i: i64) -> u64 {
        db.write(move |t| {
            t.execute_batch("CREATE TABLE IF NOT EXISTS b(i INTEGER PRIMARY KEY, v BLOB)")
                .map_err(sql_err)?;
            t.execute(
                "INSERT INTO b(i, v) VALUES (?1, zeroblob(6000))",
                rusqlite::params![i],
            )
            .map_err(sql_err)
        })
        .await
        .unwrap();
        db.stats().wal_pages
    }

    async fn rows(db: &Db) -> i64 {
        db.read(|c| {
            c.query_row("SELECT count(*) FROM b", [], |r| r.get(0))
                .map_err(sql_err)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn without_a_burst_the_wal_is_checkpointed_at_the_small_bound() {
        let (_dir, db) = open(SMALL);
        let mut most = 0;
        for i in 0..200 {
            most = most.max(write_one(&db, i).await);
        }
        let stats = db.stats();
        assert!(stats.checkpoints >= 5, "{stats:?}");
        // The bound plus the pages of the commit that crossed it.
        assert!(most < SMALL.pages + 10, "WAL grew to {most} pages");
        assert_eq!(rows(&db).await, 200);
    }

    #[tokio::test]
    async fn a_burst_defers_checkpoints_to_its_bound_and_its_end() {
        let (_dir, db) = open(SMALL);
        let pressure = Pressure::new(2);
        db.defer_checkpoints_during(pressure.clone());
        let burst = (pressure.enter(), pressure.enter());

        let mut i = 0;
        let mut most = 0;
        while db.stats().checkpoints == 0 {
            most = most.max(write_one(&db, i).await);
            i += 1;
            assert!(i < 1000, "no checkpoint even past the burst bound");
        }
        // Nothing was checkpointed at the small bound: the WAL reached the burst bound first.
        assert!(most >= SMALL.burst_pages, "checkpointed at {most} pages");
        assert!(most < SMALL.burst_pages + 10, "WAL grew to {most} pages");

        // After the burst (and its hold), the next commit over the small bound checkpoints.
        drop(burst);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!pressure.busy());
        let before = db.stats().checkpoints;
        let mut most = 0;
        for _ in 0..100 {
            most = most.max(write_one(&db, i).await);
            i += 1;
        }
        assert!(db.stats().checkpoints > before);
        assert!(most < SMALL.pages + 10, "WAL grew to {most} pages");
        assert_eq!(rows(&db).await, i);
    }
}
