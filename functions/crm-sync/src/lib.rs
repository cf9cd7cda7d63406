//! `crm-sync` Lambda: an SQS batch of events in, partial batch failures out
//! (`ReportBatchItemFailures`). Each message is handled by the core's [`CrmSync`] (identity,
//! mapping + validation, CRM, effects ledger) over DynamoDB; outcomes are applied with
//! [`settle`] without deleting successes (Lambda deletes every message not reported):
//! `RetryAfter` sets the message's visibility to the delay and reports it; `DeadLetter` moves it
//! to the DLQ with its reason.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use wabridge_core::adapters::dynamo::attribution::DynamoAttribution;
use wabridge_core::adapters::dynamo::identity::DynamoIdentityStore;
use wabridge_core::adapters::dynamo::ledger::DynamoLedger;
use wabridge_core::adapters::sqs::SqsQueue;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::config;
use wabridge_core::consumer::{settle, Handler, Outcome};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{Delivery, Queue};
use wabridge_core::sync::{crm_from_lookup, CrmSync};

/// Messages of one batch handled at once.
pub const CONCURRENCY: usize = 16;

pub struct App {
    pub handler: Arc<dyn Handler>,
    pub queue: Arc<dyn Queue>,
}

/// Everything built once per cold start: SDK clients, secrets, mapping, CRM client.
pub async fn cold_start() -> Result<App, lambda_runtime::Error> {
    let sdk = wabridge_core::adapters::aws::sdk_config().await;
    let secrets = wabridge_core::secrets::secrets().await?;
    let lookup = |name: &str| secrets.lookup(name).filter(|v| !v.trim().is_empty());
    let need = |name: &str| lookup(name).ok_or_else(|| format!("{name} is not set"));
    let table = need(config::WABRIDGE_TABLE)?;
    let queue_url = need(config::EVENTS_QUEUE_URL)?;
    let dlq_url = need(config::EVENTS_DLQ_URL)?;
    let kind = lookup(config::CRM_KIND).unwrap_or_else(|| "webhook".into());
    let mapping = match lookup(config::WABRIDGE_MAPPING) {
        Some(path) => Mapping::load(&path)?,
        None => Mapping::example(&kind)?,
    };
    let crm = crm_from_lookup(&mapping, None, lookup)?;
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let attribution_config = AttributionConfig::from_env()?;
    let sync = CrmSync::new(
        Arc::new(DynamoIdentityStore::new(dynamo.clone(), table.clone())),
        Arc::new(DynamoLedger::new(dynamo.clone(), table.clone())),
        crm,
        Arc::new(mapping),
    )
    .with_attribution(
        Arc::new(DynamoAttribution::new(dynamo, table)),
        attribution_config,
    );
    tracing::info!(crm = kind, "crm-sync ready");
    Ok(App {
        handler: Arc::new(sync),
        queue: Arc::new(SqsQueue::new(sqs, queue_url, dlq_url)),
    })
}

/// The delivery of an SQS record (`ApproximateReceiveCount` from its attributes).
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
    })
}

/// Handles a batch; returns the messages that must stay on the queue.
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let failures: Vec<String> = stream::iter(event.records)
        .map(|message| async move {
            let Some(delivery) = delivery_of(&message) else {
                // Without an id or receipt nothing can be settled; Lambda's retry will tell.
                return message.message_id.clone();
            };
            let outcome = app.handler.handle(&delivery).await;
            match settle(app.queue.as_ref(), &delivery, &outcome, false).await {
                Ok(true) => Some(delivery.message_id),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(error = %e, message_id = %delivery.message_id, "settle failed");
                    // A dead letter not moved, or a retry delay not set: keep the message.
                    (outcome != Outcome::Done).then_some(delivery.message_id)
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}
