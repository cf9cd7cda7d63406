//! The writer thread: group commit of the queued write jobs, one transaction and one fsync per
//! batch, with per-job savepoints only when a job fails.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;
use wabridge_core::error::StoreError;

use crate::checkpoint::Checkpointer;

/// Why a batch's transaction could not go on (its writes are answered with it).
#[derive(Debug, thiserror::Error)]
pub(super) enum BatchError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// After some errors (I/O, full disk) SQLite has already rolled the transaction back.
    #[error("SQLite rolled the transaction back")]
    RolledBack,
}

/// A write waiting for the writer thread: run it in the open transaction, then answer once the
/// transaction's fate is known. A job may run more than once (see [`run_batch`]); only the last
/// run's result is answered.
pub(super) trait WriteJob: Send {
    /// Runs the closure directly in the transaction (no savepoint); true when it succeeded.
    fn run_plain(&mut self, txn: &Transaction<'_>) -> bool;
    /// Runs the closure inside a savepoint, so a failure undoes only its own changes. `Err` means
    /// the savepoint machinery itself failed and the whole transaction must be abandoned.
    fn run_isolated(&mut self, txn: &Transaction<'_>) -> Result<(), BatchError>;
    /// Answers the caller: `batch_error` is `Some` when the transaction did not commit.
    fn finish(self: Box<Self>, batch_error: Option<&BatchError>);
}

pub(super) struct Job<T, F> {
    pub(super) f: F,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
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

    fn run_isolated(&mut self, txn: &Transaction<'_>) -> Result<(), BatchError> {
        exec_cached(txn, "SAVEPOINT job")?;
        if self.call(txn) {
            return exec_cached(txn, "RELEASE job");
        }
        // After some errors (I/O, full disk) SQLite has already rolled the transaction back.
        if txn.is_autocommit() {
            return Err(BatchError::RolledBack);
        }
        exec_cached(txn, "ROLLBACK TO job")?;
        exec_cached(txn, "RELEASE job")
    }

    fn finish(self: Box<Self>, batch_error: Option<&BatchError>) {
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
fn exec_cached(txn: &Transaction<'_>, sql: &str) -> Result<(), BatchError> {
    txn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(BatchError::from)
}

pub(super) fn writer_loop(
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
    let mut broken: Option<BatchError> = None;
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

fn begin(conn: &mut Connection) -> Result<Transaction<'_>, BatchError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Cannot even begin (locked by another process past the busy timeout, I/O error): refuse every
/// pending write; the callers retry.
fn refuse(
    ran: Vec<Box<dyn WriteJob>>,
    pending: &mut VecDeque<Box<dyn WriteJob>>,
    error: &BatchError,
) {
    for job in ran.into_iter().chain(pending.drain(..)) {
        job.finish(Some(error));
    }
}

fn commit(txn: Transaction<'_>, jobs: Vec<Box<dyn WriteJob>>, commits: &AtomicU64) {
    let batch_error = match txn.commit() {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => Some(BatchError::from(e)),
    };
    if let Some(e) = &batch_error {
        tracing::error!(error = %e, writes = jobs.len(), "sqlite transaction not committed");
    }
    for job in jobs {
        job.finish(batch_error.as_ref());
    }
}
