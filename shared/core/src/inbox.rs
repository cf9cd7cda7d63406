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

/// The inbox for engines whose dedupe table and queue are separate services (DynamoDB + SQS):
/// filter seen keys, enqueue the rest, then mark them seen. A crash between enqueue and mark
/// re-enqueues on Meta's retry, which the consumers' effects ledger absorbs; the opposite order
/// could lose events, so it is never used. (The SQLite engine does all three in one transaction.)
pub struct StagedInbox {
    dedupe: Arc<dyn Dedupe>,
    queue: Arc<dyn Queue>,
    ttl: Duration,
}

impl StagedInbox {
    pub fn new(dedupe: Arc<dyn Dedupe>, queue: Arc<dyn Queue>, ttl: Duration) -> Self {
        StagedInbox { dedupe, queue, ttl }
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
        let messages: Vec<OutgoingMessage> = fresh.iter().map(|e| e.to_message()).collect();
        self.queue.send_batch(&messages).await?;
        let fresh_keys: Vec<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        self.dedupe.mark(&fresh_keys, self.ttl).await?;
        Ok(AcceptReport {
            accepted: fresh.len(),
            duplicates,
        })
    }
}
