//! Queue consumers: one handler shape for both engines. The local gateway polls a queue with
//! [`run_worker`]; the Lambdas get batches from the SQS event source and use [`settle`] to turn
//! outcomes into partial batch failures. Handlers never see which engine runs them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::queue::{Delivery, Queue};

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Work done (or already done before): delete the message.
    Done,
    /// Transient failure (CRM 429/5xx, timeout, store unavailable): deliver again after this delay.
    RetryAfter(Duration),
    /// Can never succeed (validation failed, terminal error): dead-letter with this reason.
    DeadLetter(String),
}

#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(&self, delivery: &Delivery) -> Outcome;
}

/// Applies an outcome to the queue. Returns whether the message must be reported as a batch item
/// failure (Lambda), i.e. whether it stays on the queue for another attempt.
pub async fn settle(
    queue: &dyn Queue,
    delivery: &Delivery,
    outcome: &Outcome,
    delete_on_done: bool,
) -> Result<bool, StoreError> {
    match outcome {
        Outcome::Done => {
            if delete_on_done {
                queue.delete(&delivery.receipt).await?;
            }
            Ok(false)
        }
        Outcome::RetryAfter(delay) => {
            queue.retry_later(&delivery.receipt, *delay).await?;
            Ok(true)
        }
        Outcome::DeadLetter(reason) => {
            tracing::warn!(message_id = %delivery.message_id, %reason, "dead-lettered");
            queue.dead_letter(delivery, reason).await?;
            Ok(false)
        }
    }
}

/// Polling options of the local worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub batch: usize,
    pub visibility: Duration,
    /// Sleep when the queue was empty.
    pub idle: Duration,
    /// How many deliveries of one batch are handled at once.
    pub concurrency: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch: 10,
            visibility: Duration::from_secs(30),
            idle: Duration::from_millis(50),
            concurrency: 10,
        }
    }
}

/// Receives and handles messages until `stop` resolves. Store errors are logged and retried
/// after the idle delay: the messages stay on the queue, nothing is lost.
pub async fn run_worker(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    options: WorkerOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    use futures::stream::{self, StreamExt};
    loop {
        if *stop.borrow() {
            return;
        }
        let deliveries = match queue.receive(options.batch, options.visibility).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "queue receive failed");
                tokio::time::sleep(options.idle).await;
                continue;
            }
        };
        if deliveries.is_empty() {
            let mut stop = stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(options.idle) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        stream::iter(deliveries)
            .for_each_concurrent(options.concurrency.max(1), |delivery| {
                let queue = queue.clone();
                let handler = handler.clone();
                async move {
                    let outcome = handler.handle(&delivery).await;
                    if let Err(e) = settle(queue.as_ref(), &delivery, &outcome, true).await {
                        // The message becomes visible again when its timeout expires.
                        tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                    }
                }
            })
            .await;
    }
}

/// The delivery of an SQS record from a Lambda event (`ApproximateReceiveCount` from its
/// attributes); `None` when the record lacks an id or a receipt handle.
pub fn delivery_of(message: &aws_lambda_events::event::sqs::SqsMessage) -> Option<Delivery> {
    Some(Delivery {
        message_id: message.message_id.clone()?,
        receipt: message.receipt_handle.clone()?,
        body: message.body.clone().unwrap_or_default(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
    })
}

/// Handles an SQS batch delivered by Lambda, `concurrency` records at a time, and returns the
/// records that must stay on the queue (partial batch failures). Lambda deletes the rest, so
/// `Done` is not deleted here.
pub async fn sqs_batch(
    queue: &dyn Queue,
    handler: &dyn Handler,
    event: aws_lambda_events::event::sqs::SqsEvent,
    concurrency: usize,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    use futures::stream::{self, StreamExt};
    let failures: Vec<String> = stream::iter(event.records)
        .map(|message| async move {
            let Some(delivery) = delivery_of(&message) else {
                // Without an id or receipt nothing can be settled; Lambda's retry will tell.
                return message.message_id.clone();
            };
            let outcome = handler.handle(&delivery).await;
            match settle(queue, &delivery, &outcome, false).await {
                Ok(true) => Some(delivery.message_id),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                    // A dead letter not moved, or a retry delay not set: keep the message.
                    (outcome != Outcome::Done).then_some(delivery.message_id)
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
