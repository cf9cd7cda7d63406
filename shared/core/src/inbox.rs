//! Inbox port: the durable hand-off at the end of ingest. When `accept` returns Ok, every event
//! not accepted before is on the queue, and ingest may answer 200.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::dedupe::Dedupe;
use crate::error::StoreError;
use crate::event::Event;
use crate::queue::{OutgoingMessage, Queue};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptReport {
    /// Events enqueued by this call.
    pub accepted: usize,
    /// Events skipped because their key was accepted before.
    pub duplicates: usize,
}

#[async_trait]
pub trait Inbox: Send + Sync {
    async fn accept(&self, events: Vec<Event>) -> Result<AcceptReport, StoreError>;
}

/// The other queues an accepted event also goes to (fan-out destinations, see
/// `numbers::destinations`): an inbox enqueues it on each in the same durable write as on the
/// events queue, so a destination misses nothing that the CRM gets, and a redelivery Meta
/// makes (a duplicate key) goes to none.
pub trait Fanout: Send + Sync + std::fmt::Debug {
    fn queues(&self, event: &Event) -> Vec<String>;
}

/// A topic every consumer's queue subscribes to (the events topic of an AWS stack with
/// destinations, `numbers::topic`): one durable write hands an event to the CRM's queue and to
/// each destination's queue whose filter matches.
#[async_trait]
pub trait EventTopic: Send + Sync {
    /// Publishes every event once, or fails (then none, some or all may be published: Meta
    /// retries the delivery, and the consumers are idempotent).
    async fn publish(&self, events: &[&Event]) -> Result<(), StoreError>;
}

/// Where a [`StagedInbox`] hands new events.
enum Outbox {
    Queue(Arc<dyn Queue>),
    Topic(Arc<dyn EventTopic>),
}

/// The inbox for engines whose dedupe table and queue are separate services (DynamoDB + SQS):
/// filter seen keys, enqueue the rest, then mark them seen. A crash between enqueue and mark
/// re-enqueues on Meta's retry, which the consumers' effects ledger absorbs; the opposite order
/// could lose events, so it is never used. (The SQLite engine does all three in one transaction.)
pub struct StagedInbox {
    dedupe: Arc<dyn Dedupe>,
    outbox: Outbox,
    ttl: Duration,
}

impl StagedInbox {
    pub fn new(dedupe: Arc<dyn Dedupe>, queue: Arc<dyn Queue>, ttl: Duration) -> Self {
        StagedInbox {
            dedupe,
            outbox: Outbox::Queue(queue),
            ttl,
        }
    }

    /// New events are published to `topic` instead of sent to a queue; the same order (publish,
    /// then mark) keeps a crash from losing an event.
    pub fn publishing(dedupe: Arc<dyn Dedupe>, topic: Arc<dyn EventTopic>, ttl: Duration) -> Self {
        StagedInbox {
            dedupe,
            outbox: Outbox::Topic(topic),
            ttl,
        }
    }
}

#[async_trait]
impl Inbox for StagedInbox {
    async fn accept(&self, events: Vec<Event>) -> Result<AcceptReport, StoreError> {
        if events.is_empty() {
            return Ok(AcceptReport::default());
        }
        let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
        let seen = self.dedupe.seen(&keys).await?;
        let fresh: Vec<&Event> = events
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| !**seen)
            .map(|(e, _)| e)
            .collect();
        let duplicates = events.len() - fresh.len();
        if fresh.is_empty() {
            return Ok(AcceptReport {
                accepted: 0,
                duplicates,
            });
        }
        match &self.outbox {
            Outbox::Queue(queue) => {
                let messages: Vec<OutgoingMessage> = fresh.iter().map(|e| e.to_message()).collect();
                queue.send_batch(&messages).await?;
            }
            Outbox::Topic(topic) => topic.publish(&fresh).await?,
        }
        let fresh_keys: Vec<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        self.dedupe.mark(&fresh_keys, self.ttl).await?;
        Ok(AcceptReport {
            accepted: fresh.len(),
            duplicates,
        })
    }
}
