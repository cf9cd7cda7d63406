//! Lambda's SQS event source: a batch in, partial batch failures out
//! (`ReportBatchItemFailures`), each record handled by a core [`Handler`] and settled on its
//! queue.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use std::time::{Duration, Instant};

use wabridge_core::consumer::{settle, with_deadline, Handler, Outcome, Settle};
use wabridge_core::queue::{Delivery, Queue};
use wabridge_core::retry::RetryPolicy;

/// The delivery of an SQS record from a Lambda event (`ApproximateReceiveCount` and
/// `SentTimestamp` from its attributes); `None` when the record lacks an id or a receipt handle.
pub fn delivery_of(message: &SqsMessage) -> Option<Delivery> {
    Some(Delivery {
        message_id: message.message_id.clone()?,
        receipt: message.receipt_handle.clone()?,
        body: message.body.clone().unwrap_or_default(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        enqueued_at: message
            .attributes
            .get("SentTimestamp")
            .and_then(|v| v.parse().ok()),
    })
}

/// Time kept back from Lambda's deadline to settle outcomes and answer.
pub const SETTLE_MARGIN: Duration = Duration::from_millis(1500);

/// Lambda's deadline (Unix ms, `Context::deadline`) as an instant of this process, less
/// [`SETTLE_MARGIN`]: the time the records' work must end by. `None` when the runtime gave
/// none (0: an emulator without the header), rather than a deadline already past.
pub fn work_deadline(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let left = (deadline_ms as i64 - wabridge_core::clock::now_ms()).max(0) as u64;
    Some(Instant::now() + Duration::from_millis(left).saturating_sub(SETTLE_MARGIN))
}

/// Handles an SQS batch delivered by Lambda, `concurrency` records at a time, and returns the
/// records that must stay on the queue (partial batch failures). Lambda deletes the rest, so
/// `Done` is not deleted here; a retry past `policy`'s horizon is dead-lettered. With a
/// `deadline` ([`work_deadline`]), handlers start no outside call that would not end by it, and
/// a record still running then (or not started) is reported as a failure, so the invocation
/// answers in time instead of timing out with the whole batch.
pub async fn sqs_batch(
    queue: &dyn Queue,
    handler: &dyn Handler,
    event: SqsEvent,
    concurrency: usize,
    policy: RetryPolicy,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let how = &Settle::new(policy, false);
    let failures: Vec<String> = stream::iter(event.records)
        .map(|message| async move {
            let Some(delivery) = delivery_of(&message) else {
                // Without an id or receipt nothing can be settled; Lambda's retry will tell.
                return message.message_id.clone();
            };
            let work = with_deadline(deadline, handler.handle(&delivery));
            let outcome = match deadline {
                Some(at) => match tokio::time::timeout_at(at.into(), work).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        // Stays on the queue; its visibility timeout brings it back.
                        tracing::warn!(message_id = %delivery.message_id, "not finished before the invocation's deadline");
                        return Some(delivery.message_id);
                    }
                },
                None => work.await,
            };
            let done = outcome == Outcome::Done;
            match settle(queue, &delivery, outcome, how).await {
                Ok(true) => Some(delivery.message_id),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                    // A dead letter not moved, or a retry delay not set: keep the message.
                    (!done).then_some(delivery.message_id)
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|f| async move { f })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
