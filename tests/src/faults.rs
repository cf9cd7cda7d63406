//! Failure injection: port wrappers that fail on a chosen call, around the real adapters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wabridge_core::dedupe::Dedupe;
use wabridge_core::error::StoreError;
use wabridge_core::queue::{DeadLetter, Delivery, OutgoingMessage, Queue};

/// A queue whose `fail_on`-th `send_batch` call (1-based) forwards only its first `pass`
/// messages and then fails with `Unavailable`, like an SQS batch of which some entries were
/// taken before the connection dropped. Every other call goes straight to `inner`.
pub struct FailingQueue {
    pub inner: Arc<dyn Queue>,
    pub fail_on: usize,
    pub pass: usize,
    calls: AtomicUsize,
}

impl FailingQueue {
    pub fn new(inner: Arc<dyn Queue>, fail_on: usize, pass: usize) -> FailingQueue {
        FailingQueue {
            inner,
            fail_on,
            pass,
            calls: AtomicUsize::new(0),
        }
    }

    /// How many `send_batch` calls were made.
    pub fn sends(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Queue for FailingQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), StoreError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.fail_on {
            self.inner
                .send_batch(&messages[..self.pass.min(messages.len())])
                .await?;
            return Err(StoreError::Unavailable(
                "injected: queue connection reset".into(),
            ));
        }
        self.inner.send_batch(messages).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        self.inner.receive(max, visibility).await
    }
    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        self.inner.delete(receipt).await
    }
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.inner.retry_later(receipt, delay).await
    }
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), StoreError> {
        self.inner.dead_letter(delivery, reason).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(limit).await
    }
    async fn redrive(&self, id: Option<&str>) -> Result<usize, StoreError> {
        self.inner.redrive(id).await
    }
}

/// A dedupe table whose `fail_on`-th `mark` call (1-based) fails with `Unavailable` without
/// writing anything; `seen` always goes to `inner`.
pub struct FailingDedupe {
    pub inner: Arc<dyn Dedupe>,
    pub fail_on: usize,
    marks: AtomicUsize,
}

impl FailingDedupe {
    pub fn new(inner: Arc<dyn Dedupe>, fail_on: usize) -> FailingDedupe {
        FailingDedupe {
            inner,
            fail_on,
            marks: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Dedupe for FailingDedupe {
    async fn seen(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        self.inner.seen(keys).await
    }
    async fn mark(&self, keys: &[&str], ttl: Duration) -> Result<(), StoreError> {
        if self.marks.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on {
            return Err(StoreError::Unavailable(
                "injected: dedupe table throttled".into(),
            ));
        }
        self.inner.mark(keys, ttl).await
    }
}
