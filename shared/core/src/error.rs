//! Errors at the port boundary: what a store, queue or remote service adapter can report.

use thiserror::Error;

/// Failure of a port (store, queue, dedupe table, ledger). Adapters map their SDK or driver
/// errors into these so services can decide: `Unavailable` is retryable, the rest are not.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backing service could not be reached or refused for a transient reason (throttling,
    /// timeout, I/O, lock). The caller should retry later; nothing was acknowledged.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional write lost (the item exists already, or the version moved on).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The requested item does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data could not be decoded: a bug or a manual edit, never retried.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The call asked for something the store cannot serve as asked (e.g. a report range past
    /// what it keeps an index for): never retried.
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(e.to_string())
    }
    pub fn corrupt(e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(e.to_string())
    }
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
