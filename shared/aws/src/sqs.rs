//! The queue port over SQS standard queues (see `queue.rs` for why order is not needed).
//!
//! Dead letters: SQS itself moves a message to the dead-letter queue once it was received more
//! than the redrive policy's `maxReceiveCount` (set in the template). [`Queue::dead_letter`]
//! moves one explicitly, tagged with message attributes: `reason`, `receive_count`,
//! `dead_lettered_at` and `source_message_id`. Listing dead letters receives them with a short
//! visibility timeout and makes them visible again at once, so listing consumes nothing.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use crate::sdk::{store_error, whole_seconds};
use wabridge_core::error::StoreError;
use wabridge_core::queue::{DeadLetter, Delivery, OutgoingMessage, Queue};

/// SendMessageBatch takes at most 10 entries...
pub const SEND_BATCH_MAX: usize = 10;
/// ...and at most 256 KiB of message bodies and attributes together.
pub const SEND_BATCH_BYTES: usize = 256 * 1024;
/// SQS caps DelaySeconds at 15 minutes and visibility timeouts at 12 hours.
const MAX_DELAY_SECS: u64 = 900;
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;
/// Rounds of resending entries SQS reported as failed for a transient reason.
const SEND_ATTEMPTS: u32 = 4;
/// How long listed or redriven dead letters stay hidden while we look at them.
const PEEK_VISIBILITY_SECS: i32 = 30;
/// Upper bound of receive rounds when walking the dead-letter queue (each long-polls 1 s when
/// empty: a short poll of a standard queue samples only some servers and may miss messages).
const MAX_DLQ_ROUNDS: usize = 1000;

pub const ATTR_REASON: &str = "reason";
pub const ATTR_RECEIVE_COUNT: &str = "receive_count";
pub const ATTR_DEAD_LETTERED_AT: &str = "dead_lettered_at";
pub const ATTR_SOURCE_MESSAGE_ID: &str = "source_message_id";

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// `None` for a producer that only sends (ingest): dead-letter operations then fail.
    dlq_url: Option<String>,
    /// Long-poll wait of `receive` (0 = short poll).
    wait: Duration,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
            dlq_url: Some(dlq_url.into()),
            wait: Duration::ZERO,
        }
    }

    /// A queue and its dead-letter queue over the CLI's AWS configuration (aws-config's
    /// standard chain: region, credentials, profiles, `AWS_ENDPOINT_URL`), as the CLI uses them.
    #[cfg(feature = "credential-chain")]
    pub async fn from_env(queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        let config = crate::sdk::chain_config().await;
        SqsQueue::new(Client::new(config), queue_url, dlq_url)
    }

    /// A queue used only to send (and receive) without access to its dead-letter queue, as
    /// ingest does (least privilege: its role cannot touch the DLQ).
    pub fn producer(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
            dlq_url: None,
            wait: Duration::ZERO,
        }
    }

    /// Long-polls `receive` up to `wait` (at most 20 s) when the queue is empty.
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn dlq_url(&self) -> Option<&str> {
        self.dlq_url.as_deref()
    }

    fn require_dlq(&self) -> Result<&str, StoreError> {
        self.dlq_url.as_deref().ok_or_else(|| {
            StoreError::NotFound(format!(
                "no dead-letter queue configured for {}",
                self.queue_url
            ))
        })
    }

    /// Sends up to 10 messages in one request; resends the entries that failed for a transient
    /// reason. An entry SQS blames on the sender (`SenderFault`) fails the call at once.
    async fn send_chunk(&self, chunk: &[&OutgoingMessage]) -> Result<(), StoreError> {
        // Entry ids only need to be unique within the request; the index maps failures back.
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        for attempt in 1..=SEND_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|&i| {
                    let m = chunk[i];
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(&m.body)
                        .set_delay_seconds(m.delay.map(|d| whole_seconds(d, MAX_DELAY_SECS)))
                        .build()
                        .map_err(StoreError::corrupt)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store_error("SendMessageBatch", e))?;
            if out.failed.is_empty() {
                return Ok(());
            }
            let mut retry = Vec::new();
            for failure in &out.failed {
                let index: usize = failure
                    .id
                    .strip_prefix('m')
                    .and_then(|i| i.parse().ok())
                    .filter(|i| *i < chunk.len())
                    .ok_or_else(|| {
                        StoreError::corrupt(format!("unknown batch entry id {}", failure.id))
                    })?;
                let detail = format!(
                    "SendMessageBatch entry {} ({}): {} {}",
                    index,
                    chunk[index].id,
                    failure.code,
                    failure.message.as_deref().unwrap_or("")
                );
                if failure.sender_fault {
                    return Err(StoreError::Corrupt(detail));
                }
                tracing::warn!(attempt, %detail, "SQS did not take a message; resending");
                retry.push(index);
            }
            pending = retry;
            crate::dynamo::backoff(attempt).await;
        }
        Err(StoreError::Unavailable(format!(
            "SendMessageBatch: {} message(s) still refused after {SEND_ATTEMPTS} attempts",
            pending.len()
        )))
    }

    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        visibility_secs: i32,
        wait_secs: i32,
    ) -> Result<Vec<Message>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility_secs)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| store_error("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Makes the given receipts of `url` visible again now.
    async fn release(&self, url: &str, receipts: &[String]) -> Result<(), StoreError> {
        for chunk in receipts.chunks(SEND_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("r{i}"))
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .map_err(StoreError::corrupt)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store_error("ChangeMessageVisibilityBatch", e))?;
            for failure in out.failed {
                // The message becomes visible anyway when its short timeout expires.
                tracing::warn!(code = %failure.code, "could not release a dead letter");
            }
        }
        Ok(())
    }

    /// Walks the dead-letter queue: every message is received once (hidden for a short while),
    /// `visit` decides whether it was taken (`true`) or must be released.
    async fn walk_dlq<F, Fut>(&self, limit: usize, mut visit: F) -> Result<(), StoreError>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>, StoreError>>,
    {
        let dlq_url = self.require_dlq()?;
        let mut to_release = Vec::new();
        let mut looked = 0usize;
        let mut result = Ok(());
        for _ in 0..MAX_DLQ_ROUNDS {
            if looked >= limit {
                break;
            }
            let batch = match self
                .receive_from(dlq_url, limit - looked, PEEK_VISIBILITY_SECS, 1)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for message in batch {
                if result.is_err() {
                    // Not visited after an error: release it rather than hide it for a while.
                    to_release.extend(message.receipt_handle);
                    continue;
                }
                looked += 1;
                let receipt = message.receipt_handle.clone();
                match visit(message).await {
                    Ok(Some(receipt)) => to_release.push(receipt),
                    Ok(None) => {}
                    Err(e) => {
                        // The visit failed (say, a redrive whose send was refused): the message
                        // is still in the DLQ; make it visible again at once. Had the send
                        // succeeded and the delete failed, it now sits on both queues: a
                        // duplicate the consumers absorb, never a loss.
                        to_release.extend(receipt);
                        result = Err(e);
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        // Release what we only looked at, whatever happened above.
        let released = self.release(dlq_url, &to_release).await;
        result.and(released)
    }

    async fn delete_from(&self, url: &str, receipt: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| store_error("DeleteMessage", e))?;
        Ok(())
    }
}

fn receive_count(message: &Message) -> u32 {
    message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn string_attr(value: impl Into<String>) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

fn number_attr(value: i64) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value.to_string())
        .build()
        .expect("data type is set")
}

fn attr<'a>(
    attrs: &'a Option<HashMap<String, MessageAttributeValue>>,
    name: &str,
) -> Option<&'a str> {
    attrs.as_ref()?.get(name)?.string_value.as_deref()
}

fn sent_at(message: &Message) -> Option<i64> {
    message
        .attributes
        .as_ref()?
        .get(&MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()
}

fn delivery(message: Message) -> Result<Delivery, StoreError> {
    let receive_count = receive_count(&message);
    let enqueued_at = sent_at(&message);
    Ok(Delivery {
        message_id: message
            .message_id
            .ok_or_else(|| StoreError::corrupt("message without id"))?,
        receipt: message
            .receipt_handle
            .ok_or_else(|| StoreError::corrupt("message without receipt"))?,
        body: message.body.unwrap_or_default(),
        receive_count,
        enqueued_at,
    })
}

fn dead_letter_of(message: &Message) -> DeadLetter {
    let attrs = &message.message_attributes;
    DeadLetter {
        id: message.message_id.clone().unwrap_or_default(),
        body: message.body.clone().unwrap_or_default(),
        reason: attr(attrs, ATTR_REASON).map(str::to_string),
        // Moved by us: the count when we moved it. Moved by SQS after too many receives: the
        // count is carried over, and our own look at it just added one.
        receive_count: attr(attrs, ATTR_RECEIVE_COUNT)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| receive_count(message).saturating_sub(1)),
        dead_lettered_at: attr(attrs, ATTR_DEAD_LETTERED_AT).and_then(|v| v.parse().ok()),
    }
}

/// Splits messages into send batches of at most 10 entries and 256 KiB.
fn batches(messages: &[OutgoingMessage]) -> Vec<Vec<&OutgoingMessage>> {
    let mut out: Vec<Vec<&OutgoingMessage>> = Vec::new();
    let mut size = 0;
    for m in messages {
        let len = m.body.len();
        match out.last_mut() {
            Some(batch) if batch.len() < SEND_BATCH_MAX && size + len <= SEND_BATCH_BYTES => {
                batch.push(m);
                size += len;
            }
            _ => {
                out.push(vec![m]);
                size = len;
            }
        }
    }
    out
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), StoreError> {
        let chunks = batches(messages);
        futures::future::try_join_all(chunks.iter().map(|c| self.send_chunk(c))).await?;
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        let messages = self
            .receive_from(
                &self.queue_url,
                max,
                whole_seconds(visibility, MAX_VISIBILITY_SECS),
                whole_seconds(self.wait, 20),
            )
            .await?;
        messages.into_iter().map(delivery).collect()
    }

    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        self.delete_from(&self.queue_url, receipt).await
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(whole_seconds(delay, MAX_VISIBILITY_SECS))
            .send()
            .await
            .map_err(|e| store_error("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), StoreError> {
        // Send first, delete second: a crash in between leaves a copy on both queues (the
        // consumers are idempotent), never on neither.
        self.client
            .send_message()
            .queue_url(self.require_dlq()?)
            .message_body(&delivery.body)
            .message_attributes(ATTR_REASON, string_attr(reason))
            .message_attributes(
                ATTR_RECEIVE_COUNT,
                number_attr(i64::from(delivery.receive_count)),
            )
            .message_attributes(
                ATTR_DEAD_LETTERED_AT,
                number_attr(wabridge_core::clock::now_ms()),
            )
            .message_attributes(ATTR_SOURCE_MESSAGE_ID, string_attr(&delivery.message_id))
            .send()
            .await
            .map_err(|e| store_error("SendMessage (dead letter)", e))?;
        self.delete(&delivery.receipt).await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut found = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let found_ref = &mut found;
        self.walk_dlq(limit, |message| {
            // A walk longer than the peek visibility may meet a message twice: list it once.
            let letter = dead_letter_of(&message);
            if ids.insert(letter.id.clone()) {
                found_ref.push(letter);
            }
            async move { Ok(message.receipt_handle) }
        })
        .await?;
        Ok(found)
    }

    async fn redrive(&self, id: Option<&str>) -> Result<usize, StoreError> {
        let mut moved = 0usize;
        let moved_ref = &mut moved;
        self.walk_dlq(usize::MAX, |message| {
            let take = id.is_none_or(|id| message.message_id.as_deref() == Some(id));
            if take {
                *moved_ref += 1;
            }
            async move {
                if !take {
                    return Ok(message.receipt_handle);
                }
                self.client
                    .send_message()
                    .queue_url(&self.queue_url)
                    .message_body(message.body.unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| store_error("SendMessage (redrive)", e))?;
                if let Some(receipt) = &message.receipt_handle {
                    self.delete_from(self.require_dlq()?, receipt).await?;
                }
                Ok(None)
            }
        })
        .await?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: usize) -> OutgoingMessage {
        OutgoingMessage {
            id: "k".into(),
            body: "x".repeat(len),
            delay: None,
        }
    }

    #[test]
    fn batches_respect_count_and_size_limits() {
        let small: Vec<_> = (0..23).map(|_| msg(10)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 3]);

        let big: Vec<_> = (0..5).map(|_| msg(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(batches(&[]).is_empty());
    }
}
