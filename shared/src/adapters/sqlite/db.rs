//! The SQLite file behind the embedded engine: durable settings, schema, group commit, reads.
//!
//! Durability: WAL, and [`Db::write`] returns only once the WAL holding its transaction has been
//! synced to disk (`fdatasync`): an acknowledged write survives a crash or power loss.
//!
//! Speed: an fsync costs about as much for one row as for a thousand, so every write goes to ONE
//! writer thread that drains all closures waiting at that moment into one transaction and commits
//! once (group commit). Each closure runs inside its own SAVEPOINT: a failing closure rolls back
//! only its own changes and gets its own error, the others still commit.
//!
//! The sync is pipelined: SQLite runs with `synchronous=NORMAL` (a commit appends its frames to
//! the WAL without waiting for the disk; checkpoints still sync) and a second thread, the syncer,
//! syncs the WAL file and only then answers the writes of every transaction committed before the
//! sync began. Meanwhile the writer already runs the next transaction, so the disk wait no longer
//! stalls the CPU work, and one sync covers every transaction committed while the previous one
//! was in flight. A crash can only lose transactions nobody was told were written; the WAL's
//! checksums make recovery stop at the last whole transaction, so what survives is a prefix that
//! holds every acknowledged one. Anything that reads a queue goes through [`Db::write`] (a receive
//! marks the message), so it is answered only after the sync that also covers the enqueue.
//!
//! If a sync fails, the kernel may have dropped the dirty pages and a later sync could report
//! success for data that is gone; so the database fails closed: the writes waiting on that sync
//! and every later write get an error until the process restarts (and SQLite recovers the WAL).
//!
//! Reads use a small pool of read-only connections on the blocking thread pool; in WAL mode they
//! never block the writer nor wait for it.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use tokio::sync::{oneshot, Semaphore};

use crate::error::StoreError;

/// Tuning of a [`Db`]. The defaults suit both the tests and the load test.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// How long a statement waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// Read connections kept open (and concurrent reads allowed).
    pub readers: usize,
    /// Most write closures committed in one transaction.
    pub max_batch: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            max_batch: 2048,
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
    /// WAL syncs that succeeded (each one acknowledges every transaction committed before it).
    pub syncs: u64,
}

/// Time source of the adapters (Unix milliseconds). Tests use a manual clock to move past
/// visibility timeouts and TTLs without sleeping.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A clock that only moves when told to, starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(ms) = self {
            ms.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }
}

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

/// A write waiting for the writer thread: run it in the open transaction, then answer once the
/// transaction's fate is known.
trait WriteJob: Send {
    /// Runs the closure inside a savepoint. `Err` means the savepoint machinery itself failed and
    /// the whole transaction must be abandoned.
    fn run(&mut self, txn: &Transaction<'_>) -> Result<(), String>;
    /// Answers the caller: `batch_error` is `Some` when the transaction did not commit.
    fn finish(self: Box<Self>, batch_error: Option<&str>);
}

struct Job<T, F> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, txn: &Transaction<'_>) -> Result<(), String> {
        let Some(f) = self.f.take() else {
            return Ok(());
        };
        exec_cached(txn, "SAVEPOINT job")?;
        let result = catch_unwind(AssertUnwindSafe(|| f(txn)))
            .unwrap_or_else(|_| Err(StoreError::Unavailable("write closure panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        if ok {
            exec_cached(txn, "RELEASE job")
        } else {
            // After some errors (I/O, full disk) SQLite has already rolled the transaction back.
            if txn.is_autocommit() {
                return Err("SQLite rolled the transaction back".into());
            }
            exec_cached(txn, "ROLLBACK TO job")?;
            exec_cached(txn, "RELEASE job")
        }
    }

    fn finish(self: Box<Self>, batch_error: Option<&str>) {
        let out = match (self.result, batch_error) {
            // The closure's own error says more than the batch's.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (_, Some(e)) => Err(StoreError::Unavailable(format!(
                "write not acknowledged: {e}"
            ))),
            (None, None) => Err(StoreError::Unavailable("write never ran".into())),
        };
        // The caller may have gone away (request cancelled): the write stands regardless.
        let _ = self.reply.send(out);
    }
}

/// Runs a statement without parameters through the statement cache (savepoints run once per
/// write: parsing them every time would cost more than the write itself).
fn exec_cached(txn: &Transaction<'_>, sql: &str) -> Result<(), String> {
    txn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The jobs of one committed transaction, waiting for the WAL sync that makes them durable.
type Committed = Vec<Box<dyn WriteJob>>;

/// What the writer and the syncer share.
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    /// Set once when a WAL sync fails: from then on no write is acknowledged (see module docs).
    failed: OnceLock<String>,
    /// Committed transactions not yet synced. The writer waits while [`MAX_UNSYNCED`] are, so
    /// it overlaps one transaction's CPU work with the previous one's sync, but does not commit
    /// tiny transactions back to back (each rewrites partly filled pages into the WAL).
    unsynced: Mutex<usize>,
    synced: Condvar,
}

/// See [`Counters::unsynced`].
const MAX_UNSYNCED: usize = 2;

impl Counters {
    fn refusal(&self) -> Option<String> {
        self.failed
            .get()
            .map(|e| format!("database stopped after a failed disk sync ({e}); restart wabridge"))
    }
}

struct Inner {
    path: PathBuf,
    options: DbOptions,
    sender: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    writer: Option<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Arc<Semaphore>,
    counters: Arc<Counters>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel stops the writer after it has run every queued write; the writer's
        // end closes the syncer's channel, which stops once it has answered them all.
        self.sender.take();
        for handle in [self.writer.take(), self.syncer.take()]
            .into_iter()
            .flatten()
        {
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
        // NORMAL: commits do not wait for the disk; the syncer does, before answering.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(sql_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        // The migration's commit created the WAL file; the writer connection keeps it in place.
        let wal_path = wal_path(&path);
        let wal = std::fs::File::open(&wal_path).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", wal_path.display()))
        })?;
        Db::start(conn, path, options, wal)
    }

    /// Starts the writer and syncer threads over an open, migrated connection; `wal` is the
    /// handle the syncer syncs (tests pass one whose sync fails).
    fn start(
        conn: Connection,
        path: PathBuf,
        options: DbOptions,
        wal: std::fs::File,
    ) -> Result<Db, StoreError> {
        let (sender, receiver) = mpsc::channel::<Box<dyn WriteJob>>();
        let (sync_sender, sync_receiver) = mpsc::channel::<Committed>();
        let counters = Arc::new(Counters::default());
        let syncer = {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("sqlite-syncer".into())
                .spawn(move || syncer_loop(wal, sync_receiver, &counters))
                .map_err(StoreError::unavailable)?
        };
        let writer = {
            let counters = counters.clone();
            let max_batch = options.max_batch.max(1);
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || writer_loop(conn, receiver, sync_sender, max_batch, &counters))
                .map_err(StoreError::unavailable)?
        };
        let readers = options.readers.max(1);
        Ok(Db {
            inner: Arc::new(Inner {
                path,
                options,
                sender: Some(sender),
                writer: Some(writer),
                syncer: Some(syncer),
                readers: Mutex::new(Vec::new()),
                read_permits: Arc::new(Semaphore::new(readers)),
                counters,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn stats(&self) -> WriteStats {
        let c = &self.inner.counters;
        WriteStats {
            commits: c.commits.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` in the next group-commit transaction and returns its result once that
    /// transaction is committed and synced to disk. If `f` fails, its changes are rolled back (and only
    /// its own); if the commit fails, every write of the batch gets an error and none is kept.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job {
            f: Some(f),
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

/// Current schema version, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let txn = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let version: i64 = txn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this binary ({SCHEMA_VERSION})"
        )));
    }
    for schema in super::SCHEMAS {
        txn.execute_batch(schema).map_err(sql_err)?;
    }
    txn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
        .map_err(sql_err)?;
    txn.commit().map_err(sql_err)
}

/// The WAL file SQLite keeps beside the database.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn writer_loop(
    mut conn: Connection,
    receiver: mpsc::Receiver<Box<dyn WriteJob>>,
    syncer: mpsc::Sender<Committed>,
    max_batch: usize,
    counters: &Counters,
) {
    let mut pending: VecDeque<Box<dyn WriteJob>> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match receiver.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        {
            let mut unsynced = counters.unsynced.lock().unwrap_or_else(|p| p.into_inner());
            while *unsynced >= MAX_UNSYNCED {
                unsynced = counters
                    .synced
                    .wait(unsynced)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        // Whatever arrived while waiting joins this transaction.
        while pending.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        if let Some(refusal) = counters.refusal() {
            for job in pending.drain(..) {
                job.finish(Some(&refusal));
            }
            continue;
        }
        if let Some(committed) = run_batch(&mut conn, &mut pending, max_batch, counters) {
            *counters.unsynced.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            if let Err(mpsc::SendError(jobs)) = syncer.send(committed) {
                // Unreachable while the syncer thread lives (it only ends after the writer).
                *counters.unsynced.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                for job in jobs {
                    job.finish(Some("database syncer stopped"));
                }
            }
        }
    }
}

/// Runs up to `max_batch` pending jobs in one transaction. Returns the jobs of a committed
/// transaction (to be answered after the WAL sync); jobs of a transaction that did not commit
/// are answered here. Jobs not run (the transaction broke before them) stay pending for the next
/// transaction.
fn run_batch(
    conn: &mut Connection,
    pending: &mut VecDeque<Box<dyn WriteJob>>,
    max_batch: usize,
    counters: &Counters,
) -> Option<Committed> {
    let txn = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(txn) => txn,
        Err(e) => {
            // Cannot even begin (locked by another process past the busy timeout, I/O error):
            // refuse this batch; the callers retry.
            let message = e.to_string();
            for job in pending.drain(..) {
                job.finish(Some(&message));
            }
            return None;
        }
    };
    let mut ran: Vec<Box<dyn WriteJob>> = Vec::with_capacity(pending.len().min(max_batch));
    let mut broken: Option<String> = None;
    while ran.len() < max_batch {
        let Some(mut job) = pending.pop_front() else {
            break;
        };
        let outcome = job.run(&txn);
        counters.writes.fetch_add(1, Ordering::Relaxed);
        ran.push(job);
        if let Err(e) = outcome {
            broken = Some(e);
            break;
        }
    }
    let batch_error = match broken {
        Some(e) => {
            let _ = txn.rollback();
            e
        }
        None => match txn.commit() {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                return Some(ran);
            }
            Err(e) => e.to_string(),
        },
    };
    tracing::error!(error = %batch_error, writes = ran.len(), "sqlite transaction not committed");
    for job in ran {
        job.finish(Some(&batch_error));
    }
    None
}

/// Syncs the WAL for every committed transaction waiting, then answers their writes. Ends when
/// the writer has ended and every transaction it sent is answered.
fn syncer_loop(wal: std::fs::File, receiver: mpsc::Receiver<Committed>, counters: &Counters) {
    while let Ok(first) = receiver.recv() {
        let mut batches = vec![first];
        // Everything committed up to now is in the WAL file: one sync covers it all.
        while let Ok(more) = receiver.try_recv() {
            batches.push(more);
        }
        let failure = match counters.refusal() {
            Some(refusal) => Some(refusal),
            None => match wal.sync_data() {
                Ok(()) => {
                    counters.syncs.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    let _ = counters.failed.set(e.to_string());
                    tracing::error!(error = %e, "WAL sync failed: refusing every write from now on");
                    counters.refusal()
                }
            },
        };
        let count = batches.len();
        for job in batches.into_iter().flatten() {
            job.finish(failure.as_deref());
        }
        let mut unsynced = counters.unsynced.lock().unwrap_or_else(|p| p.into_inner());
        *unsynced = unsynced.saturating_sub(count);
        counters.synced.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db")).unwrap();
        (dir, db)
    }

    async fn count(db: &Db, sql: &'static str) -> i64 {
        db.read(move |c| c.query_row(sql, [], |r| r.get(0)).map_err(sql_err))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn opens_in_wal_and_leaves_the_sync_to_the_syncer() {
        let (_dir, db) = db();
        let (mode, sync) = db
            .write(|t| {
                let mode: String = t
                    .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(sql_err)?;
                let sync: i64 = t
                    .query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(sql_err)?;
                Ok((mode, sync))
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(
            sync, 1,
            "synchronous must be NORMAL (1): commits must not wait for the disk"
        );
    }

    /// Each write, one after the other, is answered only after a WAL sync that finished after it
    /// was submitted: if writes were answered at commit (or the sync skipped), the count of
    /// syncs would not have moved.
    #[tokio::test]
    async fn every_write_is_answered_after_a_wal_sync() {
        let (_dir, db) = db();
        db.write(|t| {
            t.execute_batch("CREATE TABLE n(v INTEGER PRIMARY KEY)")
                .map_err(sql_err)
        })
        .await
        .unwrap();
        for i in 0..20i64 {
            let before = db.stats().syncs;
            db.write(move |t| t.execute("INSERT INTO n VALUES (?1)", [i]).map_err(sql_err))
                .await
                .unwrap();
            let after = db.stats().syncs;
            assert!(after > before, "write {i} answered before any sync");
        }
    }

    /// A failed WAL sync (here: the syncer's handle is /dev/null, whose fdatasync fails) answers
    /// the writes it covered with an error and refuses every later write: nothing is acknowledged
    /// without the disk having it.
    #[tokio::test]
    async fn a_failed_sync_fails_the_writes_and_closes_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .unwrap();
        migrate(&mut conn).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let db = Db::start(conn, path.clone(), DbOptions::default(), null).unwrap();

        let first = db
            .write(|t| {
                t.execute_batch("CREATE TABLE n(v INTEGER); INSERT INTO n VALUES (1);")
                    .map_err(sql_err)
            })
            .await
            .unwrap_err();
        assert!(first.is_retryable(), "{first}");
        assert!(first.to_string().contains("failed disk sync"), "{first}");
        let later = db
            .write(|t| t.execute("INSERT INTO n VALUES (2)", []).map_err(sql_err))
            .await
            .unwrap_err();
        assert!(later.to_string().contains("restart"), "{later}");
        assert_eq!(db.stats().syncs, 0);
        assert_eq!(
            db.stats().commits,
            1,
            "the later write never reached SQLite"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land_in_few_transactions() {
        let (_dir, db) = db();
        db.write(|t| {
            t.execute_batch("CREATE TABLE n(v INTEGER PRIMARY KEY)")
                .map_err(sql_err)
        })
        .await
        .unwrap();
        let before = db.stats();
        let mut tasks = Vec::new();
        for i in 0..2000i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write(move |t| {
                    t.prepare_cached("INSERT INTO n(v) VALUES (?1)")
                        .and_then(|mut s| s.execute(params![i]))
                        .map_err(sql_err)
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(count(&db, "SELECT count(*) FROM n").await, 2000);
        let after = db.stats();
        assert_eq!(after.writes - before.writes, 2000);
        let commits = after.commits - before.commits;
        assert!(
            commits < 1000,
            "2000 concurrent writes took {commits} commits: no group commit"
        );
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_only_itself() {
        let (_dir, db) = db();
        db.write(|t| {
            t.execute_batch("CREATE TABLE n(v INTEGER PRIMARY KEY)")
                .map_err(sql_err)
        })
        .await
        .unwrap();
        // Three writes queued together: the middle one inserts a row and then fails.
        let ok1 = db.write(|t| t.execute("INSERT INTO n VALUES (1)", []).map_err(sql_err));
        let bad = db.write(|t| {
            t.execute("INSERT INTO n VALUES (2)", []).map_err(sql_err)?;
            Err::<(), _>(StoreError::Unavailable("injected".into()))
        });
        let ok3 = db.write(|t| t.execute("INSERT INTO n VALUES (3)", []).map_err(sql_err));
        let (a, b, c) = tokio::join!(ok1, bad, ok3);
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(StoreError::Unavailable(m)) if m == "injected"));
        assert_eq!(count(&db, "SELECT count(*) FROM n").await, 2);
        assert_eq!(count(&db, "SELECT count(*) FROM n WHERE v = 2").await, 0);
    }

    #[tokio::test]
    async fn writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let db = Db::open(&path).unwrap();
            db.write(|t| {
                t.execute_batch("CREATE TABLE n(v INTEGER); INSERT INTO n VALUES (7);")
                    .map_err(sql_err)
            })
            .await
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(count(&db, "SELECT sum(v) FROM n").await, 7);
    }
}
