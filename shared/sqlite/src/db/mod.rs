//! The SQLite file behind the embedded engine: durable settings, schema, group commit, reads.
//!
//! Durability: WAL with `synchronous=FULL`, so a committed transaction is fsynced to the WAL
//! before [`Db::write`] returns: an acknowledged write survives a crash or power loss.
//!
//! Speed: an fsync costs about as much for one row as for a thousand, so every write goes to ONE
//! writer thread that drains all closures waiting at that moment into one transaction and commits
//! once (group commit). A failing closure rolls back only its own changes and gets its own error,
//! the others still commit: the batch runs without savepoints and, only when a closure fails, runs
//! again with one SAVEPOINT per closure (see `run_batch`). While a commit is being fsynced the
//! next callers queue up, so the batch size grows with the load by itself.
//!
//! Reads use a small pool of read-only connections on the blocking thread pool; in WAL mode they
//! never block the writer nor wait for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, Transaction};
use tokio::sync::{oneshot, Semaphore};

mod schema;
#[cfg(test)]
pub(crate) use schema::SCHEMA_VERSION;
#[cfg(test)]
mod tests;
mod writer;

use crate::checkpoint::{CheckpointPolicy, Checkpointer, WalState};
use schema::migrate;
use wabridge_core::consumer::Pressure;
use wabridge_core::error::StoreError;
use writer::{writer_loop, Job, WriteJob};

/// Tuning of a [`Db`]. The defaults suit both the tests and the load test.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// How long a statement waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// Read connections kept open (and concurrent reads allowed).
    pub readers: usize,
    /// Most write closures committed in one transaction.
    pub max_batch: usize,
    /// When the writer checkpoints the WAL (see [`super::checkpoint`]).
    pub checkpoint: CheckpointPolicy,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            max_batch: 2048,
            checkpoint: CheckpointPolicy::default(),
        }
    }
}

/// Counters of the writer, for tests and the load report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed.
    pub commits: u64,
    /// Write closures that ran (committed or not).
    pub writes: u64,
    /// Checkpoints the writer ran (WAL pages copied back into the database file).
    pub checkpoints: u64,
    /// Pages in the WAL after the latest commit.
    pub wal_pages: u64,
}

/// The engine reads time through the core's clock (tests use a manual or scaled one).
pub use wabridge_core::clock::Clock;

/// Maps a driver error. Busy/locked, I/O, full disk and trigger aborts are transient from the
/// caller's point of view (retry later, nothing was acknowledged); undecodable data is corrupt.
pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt(e.to_string())
        }
        rusqlite::Error::SqliteFailure(..) => StoreError::Unavailable(e.to_string()),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

struct Inner {
    path: PathBuf,
    options: DbOptions,
    sender: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Arc<Semaphore>,
    commits: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
    wal: Arc<WalState>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel stops the writer after it has answered every queued write.
        self.sender.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// The embedded database. Cheap to clone; all clones share the writer thread and read pool.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database file with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Db, StoreError> {
        Db::open_with(path, DbOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: DbOptions) -> Result<Db, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(sql_err)?;
        conn.busy_timeout(options.busy_timeout).map_err(sql_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{} cannot use WAL journal mode (got {mode})",
                path.display()
            )));
        }
        // secure_delete: purged content and erased people are overwritten with zeros, not left
        // readable in free pages of the file.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
        )
        .map_err(sql_err)?;
        // Every adapter's statements stay prepared (re-preparing showed in profiles at 64).
        conn.set_prepared_statement_cache_capacity(256);
        migrate(&mut conn)?;
        // A new file's schema fills the WAL with tens of pages before the checkpointer is
        // installed: move them into the file now, so the WAL starts from empty (passive: it
        // never waits for another process's readers).
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(sql_err)?;
        let wal = Arc::new(WalState::default());
        let checkpointer =
            Checkpointer::install(&mut conn, options.checkpoint, wal.clone()).map_err(sql_err)?;

        let (sender, receiver) = mpsc::channel::<Box<dyn WriteJob>>();
        let commits = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let (commits, writes) = (commits.clone(), writes.clone());
            let max_batch = options.max_batch.max(1);
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || {
                    writer_loop(conn, receiver, max_batch, checkpointer, &commits, &writes)
                })
                .map_err(StoreError::unavailable)?
        };
        let readers = options.readers.max(1);
        Ok(Db {
            inner: Arc::new(Inner {
                path,
                options,
                sender: Some(sender),
                writer: Some(writer),
                readers: Mutex::new(Vec::new()),
                read_permits: Arc::new(Semaphore::new(readers)),
                commits,
                writes,
                wal,
            }),
        })
    }

    /// Defers checkpoints while `pressure` is busy (up to the policy's burst bound), so that a
    /// burst's acknowledgments never wait for one. Only the first call counts.
    pub fn defer_checkpoints_during(&self, pressure: Pressure) {
        let _ = self.inner.wal.burst.set(pressure);
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
            checkpoints: self.inner.wal.checkpoints.load(Ordering::Relaxed),
            wal_pages: self.inner.wal.frames.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` in the next group-commit transaction and returns its result once that
    /// transaction is durably committed. If `f` fails, its changes are rolled back (and only
    /// its own); if the commit fails, every write of the batch gets an error and none is kept.
    /// `f` may run twice (when another write of its batch fails): it must only act through the
    /// transaction it is given; the result of its last run is returned.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job {
            f,
            result: None,
            reply,
        });
        self.inner
            .sender
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("database closed".into()))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("database writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("database writer stopped".into()))?
    }

    /// Runs `f` on a read connection (a consistent snapshot of committed data).
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .inner
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("database closed".into()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&inner.path, &inner.options)?,
            };
            let result = f(&conn);
            inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

fn open_reader(path: &Path, options: &DbOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sql_err)?;
    conn.busy_timeout(options.busy_timeout).map_err(sql_err)?;
    conn.execute_batch("PRAGMA query_only=ON;")
        .map_err(sql_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}
