//! Queue port: at-least-once delivery with a visibility timeout and a receive count; a message
//! is deleted only when its work succeeded, dead-lettered on a terminal failure or past its
//! retry horizon (see [`crate::retry`]), and after [`crate::retry::BACKSTOP_RECEIVES`] receives
//! whatever happened.
//!
//! Ordering: consumers never depend on order. Meta itself delivers unordered, so every consumer
//! is written to converge whatever the order (statuses only move forward, contact upserts merge,
//! activities are keyed by event). That lets us use standard (non-FIFO) SQS queues, whose
//! throughput and Lambda batching are better, and keeps the SQLite queue simple.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// A message to enqueue. `id` is the event key (or send id): adapters use it for logs and, where
/// the backend supports it, as a deduplication hint; consumers still dedupe themselves.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub id: String,
    pub body: String,
    /// Deliver no earlier than this from now.
    pub delay: Option<Duration>,
}

/// A received message, invisible to other consumers until its visibility timeout expires.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stable id of the message in the queue (SQS MessageId, SQLite row id).
    pub message_id: String,
    /// Handle for delete / visibility changes of this receipt.
    pub receipt: String,
    pub body: String,
    /// How many times the message was received, this time included (1 on first delivery).
    pub receive_count: u32,
    /// Unix ms when it was first enqueued (SQS's `SentTimestamp`): its age decides the retry
    /// horizon. `None` when the backend did not say (then the horizon cannot pass).
    pub enqueued_at: Option<i64>,
}

/// A message in the dead-letter queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub body: String,
    /// Why it is here (a validation rule, a terminal error), when the consumer said so; `None`
    /// when it moved after too many receives.
    pub reason: Option<String>,
    pub receive_count: u32,
    /// Unix milliseconds when it was dead-lettered, when known.
    pub dead_lettered_at: Option<i64>,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues all messages, or fails (then none, some or all may be enqueued: callers retry the
    /// whole batch, and consumers are idempotent).
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), StoreError>;
    /// Receives up to `max` visible messages and hides them for `visibility`. A message received
    /// more than the queue's max receives moves to the dead-letter queue instead.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError>;
    /// Work done: remove the message for good.
    async fn delete(&self, receipt: &str) -> Result<(), StoreError>;
    /// Work failed in a retryable way: make the message visible again after `delay`.
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError>;
    /// Work can never succeed: move the message to the dead-letter queue with a reason.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), StoreError>;
    /// Lists up to `limit` dead letters without consuming them.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Moves dead letters back to the main queue (one by id, or all); returns how many moved.
    /// A redriven message starts a new retry horizon.
    async fn redrive(&self, id: Option<&str>) -> Result<usize, StoreError>;
    /// Makes the messages waiting out a [`Queue::retry_later`] delay visible now (a circuit
    /// breaker closed: what waited for the service can go). Returns how many; a backend that
    /// cannot find them (SQS) returns 0 and they come back when their delay ends.
    async fn wake(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
}
