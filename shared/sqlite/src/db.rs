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

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use tokio::sync::{oneshot, Semaphore};

use super::checkpoint::{CheckpointPolicy, Checkpointer, WalState};
use wabridge_core::consumer::Pressure;
use wabridge_core::error::StoreError;

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
            Clock::System => wabridge_core::clock::now_ms(),
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
/// transaction's fate is known. A job may run more than once (see [`run_batch`]); only the last
/// run's result is answered.
trait WriteJob: Send {
    /// Runs the closure directly in the transaction (no savepoint); true when it succeeded.
    fn run_plain(&mut self, txn: &Transaction<'_>) -> bool;
    /// Runs the closure inside a savepoint, so a failure undoes only its own changes. `Err` means
    /// the savepoint machinery itself failed and the whole transaction must be abandoned.
    fn run_isolated(&mut self, txn: &Transaction<'_>) -> Result<(), String>;
    /// Answers the caller: `batch_error` is `Some` when the transaction did not commit.
    fn finish(self: Box<Self>, batch_error: Option<&str>);
}

struct Job<T, F> {
    f: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job<T, F>
where
    F: Fn(&Transaction<'_>) -> Result<T, StoreError>,
{
    fn call(&mut self, txn: &Transaction<'_>) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| (self.f)(txn)))
            .unwrap_or_else(|_| Err(StoreError::Unavailable("write closure panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send + 'static,
    F: Fn(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run_plain(&mut self, txn: &Transaction<'_>) -> bool {
        self.call(txn)
    }

    fn run_isolated(&mut self, txn: &Transaction<'_>) -> Result<(), String> {
        exec_cached(txn, "SAVEPOINT job")?;
        if self.call(txn) {
            return exec_cached(txn, "RELEASE job");
        }
        // After some errors (I/O, full disk) SQLite has already rolled the transaction back.
        if txn.is_autocommit() {
            return Err("SQLite rolled the transaction back".into());
        }
        exec_cached(txn, "ROLLBACK TO job")?;
        exec_cached(txn, "RELEASE job")
    }

    fn finish(self: Box<Self>, batch_error: Option<&str>) {
        let out = match (self.result, batch_error) {
            // The closure's own error says more than the batch's.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (_, Some(e)) => Err(StoreError::Unavailable(format!("write not committed: {e}"))),
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
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(sql_err)?;
        // Every adapter's statements stay prepared (re-preparing showed in profiles at 64).
        conn.set_prepared_statement_cache_capacity(256);
        migrate(&mut conn)?;
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

/// Current schema version, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // Deferred first: when the schema is already there, `CREATE ... IF NOT EXISTS` takes no
    // write lock, so a read-only command (`stats`, `records`) opens while `serve`'s writer
    // keeps the lock busy (waiting for it there starved the open past its busy timeout).
    match migrate_in(conn, TransactionBehavior::Deferred) {
        Err(StoreError::Unavailable(_)) => migrate_in(conn, TransactionBehavior::Immediate),
        done => done,
    }
}

fn migrate_in(conn: &mut Connection, behavior: TransactionBehavior) -> Result<(), StoreError> {
    let txn = conn.transaction_with_behavior(behavior).map_err(sql_err)?;
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
    if version != SCHEMA_VERSION {
        txn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .map_err(sql_err)?;
    }
    txn.commit().map_err(sql_err)
}

fn writer_loop(
    mut conn: Connection,
    receiver: mpsc::Receiver<Box<dyn WriteJob>>,
    max_batch: usize,
    mut checkpointer: Checkpointer,
    commits: &AtomicU64,
    writes: &AtomicU64,
) {
    let mut pending: VecDeque<Box<dyn WriteJob>> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match receiver.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        while pending.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut pending, max_batch, commits, writes);
        // After the batch was answered, so no acknowledgment waits for the checkpoint.
        checkpointer.after_batch(&conn);
    }
}

/// Runs up to `max_batch` pending jobs in one transaction and answers them. Jobs not run (the
/// transaction broke before them) stay pending for the next transaction.
///
/// Fast path first: every job runs straight in the transaction. A SAVEPOINT per job would copy
/// each page a job touches into the statement journal (a tenth of the writer's time under load),
/// and jobs almost never fail. Only when one does is the transaction rolled back and the same
/// jobs run again, each in its own savepoint, so the failing one gets its error and the others
/// still commit. Write closures only touch the transaction, so running them again is safe.
fn run_batch(
    conn: &mut Connection,
    pending: &mut VecDeque<Box<dyn WriteJob>>,
    max_batch: usize,
    commits: &AtomicU64,
    writes: &AtomicU64,
) {
    let mut ran: Vec<Box<dyn WriteJob>> = Vec::with_capacity(pending.len().min(max_batch));
    while ran.len() < max_batch {
        let Some(job) = pending.pop_front() else {
            break;
        };
        ran.push(job);
    }
    let txn = match begin(conn) {
        Ok(txn) => txn,
        Err(message) => return refuse(ran, pending, &message),
    };
    let mut all_ok = true;
    for job in ran.iter_mut() {
        writes.fetch_add(1, Ordering::Relaxed);
        if !job.run_plain(&txn) {
            all_ok = false;
            break;
        }
    }
    if all_ok {
        return commit(txn, ran, commits);
    }
    let _ = txn.rollback();

    let txn = match begin(conn) {
        Ok(txn) => txn,
        Err(message) => return refuse(ran, pending, &message),
    };
    let mut done: Vec<Box<dyn WriteJob>> = Vec::with_capacity(ran.len());
    let mut jobs = ran.into_iter();
    let mut broken: Option<String> = None;
    for mut job in jobs.by_ref() {
        let outcome = job.run_isolated(&txn);
        done.push(job);
        if let Err(e) = outcome {
            broken = Some(e);
            break;
        }
    }
    // Jobs after a broken one never ran in this transaction: back to the front of the line.
    for job in jobs.rev() {
        pending.push_front(job);
    }
    match broken {
        Some(e) => {
            let _ = txn.rollback();
            tracing::error!(error = %e, writes = done.len(), "sqlite transaction not committed");
            for job in done {
                job.finish(Some(&e));
            }
        }
        None => commit(txn, done, commits),
    }
}

fn begin(conn: &mut Connection) -> Result<Transaction<'_>, String> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())
}

/// Cannot even begin (locked by another process past the busy timeout, I/O error): refuse every
/// pending write; the callers retry.
fn refuse(ran: Vec<Box<dyn WriteJob>>, pending: &mut VecDeque<Box<dyn WriteJob>>, message: &str) {
    for job in ran.into_iter().chain(pending.drain(..)) {
        job.finish(Some(message));
    }
}

fn commit(txn: Transaction<'_>, jobs: Vec<Box<dyn WriteJob>>, commits: &AtomicU64) {
    let batch_error = match txn.commit() {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => Some(e.to_string()),
    };
    if let Some(e) = &batch_error {
        tracing::error!(error = %e, writes = jobs.len(), "sqlite transaction not committed");
    }
    for job in jobs {
        job.finish(batch_error.as_deref());
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

    /// A database with one table, `n(v INTEGER PRIMARY KEY)`.
    async fn db_with_numbers() -> (tempfile::TempDir, Db) {
        let (dir, db) = db();
        db.write(|t| {
            t.execute_batch("CREATE TABLE n(v INTEGER PRIMARY KEY)")
                .map_err(sql_err)
        })
        .await
        .unwrap();
        (dir, db)
    }

    async fn count(db: &Db, sql: &'static str) -> i64 {
        db.read(move |c| c.query_row(sql, [], |r| r.get(0)).map_err(sql_err))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn opens_in_wal_with_full_sync() {
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
        assert_eq!(sync, 2, "synchronous must be FULL (2)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land_in_few_transactions() {
        let (_dir, db) = db_with_numbers().await;
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
        let (_dir, db) = db_with_numbers().await;
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

    /// Five writes forced into one transaction (the writer is held by an earlier write while they
    /// queue): two fail after inserting a row (an error, a panic). The batch first runs without
    /// savepoints, fails, and is run again with one savepoint per write: each write is answered
    /// from that second run, the failing ones lose only their own rows, and the three others
    /// still commit together in one transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_in_one_batch_fall_back_to_isolated_writes() {
        let (_dir, db) = db_with_numbers().await;
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Mutex::new(held);
        let hold = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(move |_| {
                    let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = db.stats();
        let insert_and_count = |v: i64| {
            move |t: &Transaction<'_>| -> Result<i64, StoreError> {
                t.execute("INSERT INTO n VALUES (?1)", params![v])
                    .map_err(sql_err)?;
                t.query_row("SELECT count(*) FROM n", [], |r| r.get(0))
                    .map_err(sql_err)
            }
        };
        // Queued one by one, in this order, while the writer is held.
        async fn queue<T, F>(db: &Db, f: F) -> tokio::task::JoinHandle<Result<T, StoreError>>
        where
            T: Send + 'static,
            F: Fn(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        {
            let db = db.clone();
            let handle = tokio::spawn(async move { db.write(f).await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            handle
        }
        let w1 = queue(&db, insert_and_count(1)).await;
        let w2 = queue(&db, |t| {
            t.execute("INSERT INTO n VALUES (2)", []).map_err(sql_err)?;
            Err::<i64, _>(StoreError::Unavailable("injected".into()))
        })
        .await;
        let w3 = queue(&db, insert_and_count(3)).await;
        let w4 = queue(&db, |t| -> Result<i64, StoreError> {
            t.execute("INSERT INTO n VALUES (4)", []).map_err(sql_err)?;
            panic!("injected panic")
        })
        .await;
        let w5 = queue(&db, insert_and_count(5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
        hold.await.unwrap().unwrap();

        assert_eq!(w1.await.unwrap().unwrap(), 1);
        assert!(matches!(w2.await.unwrap(), Err(StoreError::Unavailable(m)) if m == "injected"));
        assert_eq!(w3.await.unwrap().unwrap(), 2);
        assert!(
            matches!(w4.await.unwrap(), Err(StoreError::Unavailable(m)) if m.contains("panicked"))
        );
        assert_eq!(w5.await.unwrap().unwrap(), 3);
        let kept: Vec<i64> = db
            .read(|c| {
                let mut s = c.prepare("SELECT v FROM n ORDER BY v").map_err(sql_err)?;
                let rows = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
                rows.collect::<Result<_, _>>().map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(kept, vec![1, 3, 5]);
        let after = db.stats();
        // The held write's transaction, then ONE for the five (not one per write).
        assert_eq!(after.commits - before.commits, 2);
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

    #[tokio::test]
    async fn an_up_to_date_database_opens_while_another_connection_holds_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Db::open(&path).unwrap());
        // Another process's writer in the middle of a transaction (as `serve` is under load).
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "BEGIN IMMEDIATE; INSERT INTO dedupe_log(seq, key, expires_at) VALUES (1, 'k', 0);",
            )
            .unwrap();
        let options = DbOptions {
            busy_timeout: Duration::from_millis(100),
            ..DbOptions::default()
        };
        let db = Db::open_with(&path, options).expect("no write lock needed to open");
        assert_eq!(count(&db, "SELECT count(*) FROM dedupe_log").await, 0);
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(count(&db, "SELECT count(*) FROM dedupe_log").await, 1);
    }
}
