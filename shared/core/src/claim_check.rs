//! Claim-check for events too large for the queue: the event goes to an object store and the
//! queue message carries a small pointer to it.
//!
//! The events queue takes at most 256 KiB per message (its `MaximumMessageSize` in the template:
//! SQS allows up to 1 MiB, but bills every 64 KiB as one request, and Lambda hands a function at
//! most 6 MB per batch). Ingest accepts webhooks up to 1 MiB, so an event over
//! [`CLAIM_CHECK_BYTES`] (a large `unknown` change, an `nfm_reply` with a big Flow response)
//! would be refused by the queue and take the valid events of its delivery down with it.
//!
//! - Producer side, [`ClaimCheckQueue`]: a [`Queue`] decorator whose `send_batch` first writes
//!   every oversized body to the [`BlobStore`] (key: the SHA-256 of the body, so a resent event
//!   writes the same object), then enqueues pointers. Ingest acknowledges Meta only after both
//!   are durable, because `send_batch` returns only then.
//! - Consumer side, [`ClaimChecked`]: a [`Handler`] decorator that reads the object back,
//!   checks its length and digest, and hands the event to the real handler. When the work is
//!   `Done` it writes a zero-byte tombstone and deletes the object: the content is gone, and a
//!   later redelivery of the same pointer (SQS delivers at least once; a Lambda batch can be
//!   retried after a delete failed) finds the tombstone and is `Done` at once instead of being
//!   dead-lettered. A pointer whose object is missing without a tombstone (expired, deleted by
//!   hand) or corrupt is dead-lettered with that reason, never retried for ever; a store that
//!   cannot be reached is a transient failure (retried within the horizon).
//!
//! A dead-lettered event keeps its object (a redrive reads it again). The bucket's lifecycle
//! rule ends objects and tombstones after the dead-letter queue's retention, the longest any
//! pointer can live. The embedded engine (SQLite) has no size limit and no claim-check.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::consumer::{Handler, Outcome};
use crate::error::StoreError;
use crate::queue::{DeadLetter, Delivery, OutgoingMessage, Queue};
use crate::retry::backoff;

/// Bodies larger than this go to the object store: well under SQS's 256 KiB (the batch's
/// attributes and JSON escaping need room), and 10 of them stay under Lambda's 6 MB payload.
pub const CLAIM_CHECK_BYTES: usize = 200 * 1024;

/// Where event bodies are kept, under `events/`; tombstones under `done/`.
const CONTENT_PREFIX: &str = "events/";
const TOMBSTONE_PREFIX: &str = "done/";

/// Every pointer body starts with this, and no event body does (events serialize their own
/// fields first): the consumer tells the two apart without parsing.
const POINTER_START: &str = "{\"claim_check\":";

/// An object store: the claim-check's port (S3 on AWS).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes `body` under `key`, replacing what was there. Durable when it returns.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError>;
    /// The object under `key`, or `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes the object under `key` (no error when there is none).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Pointer {
    claim_check: Claim,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Claim {
    /// Object key of the body.
    key: String,
    /// The body's length in bytes and SHA-256 (hex): a truncated or replaced object is corrupt.
    bytes: usize,
    sha256: String,
}

impl Claim {
    fn tombstone(&self) -> String {
        format!("{TOMBSTONE_PREFIX}{}", self.sha256)
    }
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Whether a queue body is a claim-check pointer (for tools that show queue bodies).
pub fn is_pointer(body: &str) -> bool {
    body.starts_with(POINTER_START)
}

/// The [`Queue`] decorator of the producer side (see the module docs).
pub struct ClaimCheckQueue {
    inner: Arc<dyn Queue>,
    blobs: Arc<dyn BlobStore>,
    threshold: usize,
}

impl ClaimCheckQueue {
    pub fn new(inner: Arc<dyn Queue>, blobs: Arc<dyn BlobStore>) -> Self {
        ClaimCheckQueue {
            inner,
            blobs,
            threshold: CLAIM_CHECK_BYTES,
        }
    }

    /// The message to enqueue for `message`: itself, or a pointer once its body is stored.
    async fn checked(&self, message: &OutgoingMessage) -> Result<OutgoingMessage, StoreError> {
        checked(self.blobs.as_ref(), message, self.threshold).await
    }
}

/// The body to send for `message`: itself when at most `threshold` bytes, else a pointer once
/// the body is stored in `blobs` (the queue's producer side, and the events topic's).
pub async fn checked(
    blobs: &dyn BlobStore,
    message: &OutgoingMessage,
    threshold: usize,
) -> Result<OutgoingMessage, StoreError> {
    if message.body.len() <= threshold {
        return Ok(message.clone());
    }
    let sha256 = sha256_hex(message.body.as_bytes());
    let claim = Claim {
        key: format!("{CONTENT_PREFIX}{sha256}"),
        bytes: message.body.len(),
        sha256,
    };
    blobs
        .put(&claim.key, message.body.as_bytes().to_vec())
        .await?;
    tracing::info!(key = %claim.key, bytes = claim.bytes, "event claim-checked");
    let body =
        serde_json::to_string(&Pointer { claim_check: claim }).map_err(StoreError::corrupt)?;
    Ok(OutgoingMessage {
        id: message.id.clone(),
        body,
        delay: message.delay,
    })
}

#[async_trait]
impl Queue for ClaimCheckQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), StoreError> {
        // Objects first, pointers second: a pointer never names an object not yet written.
        // One at a time: oversized events are rare, and most batches have none.
        let mut checked = Vec::with_capacity(messages.len());
        for message in messages {
            checked.push(self.checked(message).await?);
        }
        self.inner.send_batch(&checked).await
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
    async fn wake(&self) -> Result<usize, StoreError> {
        self.inner.wake().await
    }
}

/// The [`Handler`] decorator of the consumer side (see the module docs).
pub struct ClaimChecked {
    inner: Arc<dyn Handler>,
    /// `None`: a consumer deployed without the bucket. Its pointers wait (retried within the
    /// horizon) for the setting to be fixed, rather than fail as events they are not.
    blobs: Option<Arc<dyn BlobStore>>,
    /// Whether other queues' consumers read the same objects (an events topic fans each event
    /// out to several queues): then a done event leaves its object to the bucket's lifecycle
    /// rule, since a tombstone would make the other consumers skip an event they never saw.
    shared: bool,
}

impl ClaimChecked {
    pub fn new(inner: Arc<dyn Handler>, blobs: Option<Arc<dyn BlobStore>>) -> Self {
        ClaimChecked {
            inner,
            blobs,
            shared: false,
        }
    }

    /// Objects are read by more than this consumer: never tombstoned nor deleted here.
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    /// After the work is done: tombstone first, then delete, so that no moment exists where a
    /// redelivery finds neither. A failure here leaves the object to the lifecycle rule (and a
    /// redelivery does the work again, which the effects ledger makes harmless).
    async fn finish(blobs: &dyn BlobStore, claim: &Claim) {
        if let Err(e) = blobs.put(&claim.tombstone(), Vec::new()).await {
            tracing::warn!(error = %e, key = %claim.key, "claim-check tombstone not written; object kept");
            return;
        }
        if let Err(e) = blobs.delete(&claim.key).await {
            tracing::warn!(error = %e, key = %claim.key, "claim-checked object not deleted");
        }
    }

    /// The body the pointer names, or the outcome that ends the delivery without it.
    async fn resolve(
        blobs: &dyn BlobStore,
        delivery: &Delivery,
        claim: &Claim,
    ) -> Result<String, Outcome> {
        let store_failed = |e: StoreError| {
            let reason = format!("claim-check object {}: {e}", claim.key);
            if e.is_retryable() {
                Outcome::retry(backoff(delivery.receive_count, None), reason)
            } else {
                Outcome::DeadLetter(reason)
            }
        };
        let Some(bytes) = blobs.get(&claim.key).await.map_err(store_failed)? else {
            return match blobs.get(&claim.tombstone()).await.map_err(store_failed)? {
                Some(_) => {
                    tracing::info!(key = %claim.key, "claim-checked event already done");
                    Err(Outcome::Done)
                }
                None => Err(Outcome::DeadLetter(format!(
                    "claim-check object {} is missing (expired or deleted before its event was done)",
                    claim.key
                ))),
            };
        };
        let sha256 = sha256_hex(&bytes);
        if bytes.len() != claim.bytes || sha256 != claim.sha256 {
            return Err(Outcome::DeadLetter(format!(
                "claim-check object {} is corrupt: {} bytes with SHA-256 {sha256}, the pointer says {} bytes with {}",
                claim.key,
                bytes.len(),
                claim.bytes,
                claim.sha256
            )));
        }
        String::from_utf8(bytes).map_err(|e| {
            Outcome::DeadLetter(format!(
                "claim-check object {} is not UTF-8: {e}",
                claim.key
            ))
        })
    }
}

#[async_trait]
impl Handler for ClaimChecked {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        if !is_pointer(&delivery.body) {
            return self.inner.handle(delivery).await;
        }
        let claim = match serde_json::from_str::<Pointer>(&delivery.body) {
            Ok(pointer) => pointer.claim_check,
            Err(e) => return Outcome::DeadLetter(format!("unreadable claim-check pointer: {e}")),
        };
        let Some(blobs) = self.blobs.as_deref() else {
            return Outcome::retry(
                backoff(delivery.receive_count, None),
                format!(
                    "claim-check pointer to {}, but this consumer has no bucket ({} is not set)",
                    claim.key,
                    crate::config::CLAIM_CHECK_BUCKET
                ),
            );
        };
        let body = match Self::resolve(blobs, delivery, &claim).await {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        // The queue keeps the pointer: a retry or dead letter settles the original delivery.
        let resolved = Delivery {
            body,
            ..delivery.clone()
        };
        let outcome = self.inner.handle(&resolved).await;
        if outcome == Outcome::Done && !self.shared {
            Self::finish(blobs, &claim).await;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_told_apart_from_events_without_parsing() {
        let claim = Claim {
            key: "events/ab".into(),
            bytes: 3,
            sha256: "ab".into(),
        };
        let body = serde_json::to_string(&Pointer { claim_check: claim }).unwrap();
        assert!(is_pointer(&body), "{body}");
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.into()).unwrap();
        let event = crate::event::Event {
            v: crate::event::EVENT_VERSION,
            key: "m:wamid.X".into(),
            kind: crate::event::EventKind::Message,
            field: "messages".into(),
            waba_id: "1".into(),
            entry_time: None,
            phone_number_id: None,
            display_phone_number: None,
            contact: None,
            item: raw(r#"{"claim_check":{}}"#),
            received_at: 0,
        }
        .to_json();
        assert!(!is_pointer(&event), "{event}");
    }

    /// An object store in memory.
    #[derive(Default)]
    struct Blobs(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

    #[async_trait]
    impl BlobStore for Blobs {
        async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
            self.0.lock().unwrap().insert(key.into(), body);
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
    }

    /// A consumer keeping the bodies it was handed.
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<String>>);

    #[async_trait]
    impl Handler for Seen {
        async fn handle(&self, delivery: &Delivery) -> Outcome {
            self.0.lock().unwrap().push(delivery.body.clone());
            Outcome::Done
        }
    }

    #[tokio::test]
    async fn a_shared_object_reaches_every_queues_consumer_and_an_unshared_one_is_finished() {
        let blobs: Arc<Blobs> = Arc::default();
        let big = OutgoingMessage {
            id: "k".into(),
            body: "x".repeat(300),
            delay: None,
        };
        let pointer = checked(blobs.as_ref(), &big, 100).await.unwrap();
        assert!(is_pointer(&pointer.body));
        let delivery = Delivery {
            message_id: "m".into(),
            receipt: "r".into(),
            body: pointer.body,
            receive_count: 1,
            enqueued_at: None,
        };
        // An events topic feeds two queues: the CRM's consumer and a destination's both read it.
        let (crm, bot): (Arc<Seen>, Arc<Seen>) = Default::default();
        let as_blobs = || Some(blobs.clone() as Arc<dyn BlobStore>);
        let crm_side = ClaimChecked::new(crm.clone(), as_blobs()).shared();
        let bot_side = ClaimChecked::new(bot.clone(), as_blobs()).shared();
        assert_eq!(crm_side.handle(&delivery).await, Outcome::Done);
        assert_eq!(bot_side.handle(&delivery).await, Outcome::Done);
        assert_eq!(*crm.0.lock().unwrap(), vec![big.body.clone()]);
        assert_eq!(*bot.0.lock().unwrap(), vec![big.body.clone()]);
        // One queue only: the object is tombstoned and deleted once done, so a second consumer
        // would be told `Done` without seeing the event (why topics share).
        let late: Arc<Seen> = Arc::default();
        assert_eq!(
            ClaimChecked::new(crm.clone(), as_blobs())
                .handle(&delivery)
                .await,
            Outcome::Done
        );
        assert_eq!(
            ClaimChecked::new(late.clone(), as_blobs())
                .handle(&delivery)
                .await,
            Outcome::Done
        );
        assert!(late.0.lock().unwrap().is_empty());
    }
}
