//! `crm-sync` Lambda: an SQS batch of events in, partial batch failures out
//! (`ReportBatchItemFailures`). Each message is handled by the core's [`wabridge_core::sync::CrmSync`] (identity,
//! mapping + validation, CRM, effects ledger) over DynamoDB; outcomes are applied with
//! `wabridge_aws::lambda::sqs_batch` without deleting successes (Lambda deletes every message not reported):
//! `Retry` sets the message's visibility to the delay and reports it (past the retry horizon it
//! dead-letters instead); `DeadLetter` moves it
//! to the DLQ with its reason.
//!
//! The sending side hears every event through [`SendingHooks`] over the same table: status
//! webhooks move sends forward (`Sends::apply_status`), template status updates feed the
//! template registry, STOP keywords and `user_preferences` the consent history, inbound messages
//! the 24-hour window; a 131050 status puts a `send_result` event back on the events queue.
//!
//! The conversation sweep (docs/conversations.md#sweeper): an EventBridge schedule invokes the
//! function with `{"sweep": true}` instead of an SQS batch; [`sweep`] queues its findings on the
//! events queue, where crm-sync applies them like any event.
//!
//! Several numbers (docs/numbers.md): with numbers registry items in the table, each event goes
//! to its number's CRM target ([`registry::Reloading`], which re-reads the registry on an unknown
//! number, at most once a minute); without, to the one CRM of `CRM_KIND`.
//!
//! Inbound media (docs/media.md): with `MEDIA_QUEUE_URL` (and `WABRIDGE_MEDIA` not `off`), an
//! activity is written with its media `pending` and one job per file goes on the media queue,
//! for the media function; the `media_result` events it reports come back on the events queue.

pub mod numbers;
pub mod registry;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::engine::AwsEngine;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::auth::ApiKeys;
use wabridge_core::config;
use wabridge_core::consumer::Handler;
use wabridge_core::conversations::sla::SlaPolicy;
use wabridge_core::conversations::sweep::{SweepReport, Sweeper};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Queue;
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sends::events::QueueEvents;
use wabridge_core::sends::hooks::SendingHooks;
use wabridge_core::sync::CrmSync;

/// Messages of one batch handled at once.
pub const CONCURRENCY: usize = 16;

pub struct App {
    pub handler: Arc<dyn Handler>,
    pub queue: Arc<dyn Queue>,
    /// The events' retry horizon (`WABRIDGE_RETRY_HORIZON`).
    pub policy: RetryPolicy,
}

/// Everything built once per cold start: SDK clients, secrets, mapping, CRM client; and the
/// conversation sweep of the scheduled invocations. With numbers registry items in the table,
/// each event goes to its number's CRM target ([`registry::Reloading`]); without, to the one
/// CRM of `CRM_KIND`, as before registries.
pub async fn cold_start() -> Result<(App, Sweeper), lambda_runtime::Error> {
    let sdk = wabridge_aws::sdk::lambda_config().await;
    let secrets = wabridge_aws::secrets::secrets().await?;
    let lookup = |name: &str| secrets.lookup(name).filter(|v| !v.trim().is_empty());
    let need = |name: &str| lookup(name).ok_or_else(|| format!("{name} is not set"));
    let table = need(config::WABRIDGE_TABLE)?;
    let queue_url = need(config::EVENTS_QUEUE_URL)?;
    let dlq_url = need(config::EVENTS_DLQ_URL)?;
    let (policy, _) = config::retry_policies(lookup)?;
    let engine = AwsEngine::new(sdk, table.clone())
        .with_claim_check(sdk, lookup(config::CLAIM_CHECK_BUCKET));
    let queue: Arc<dyn Queue> = Arc::new(engine.queue(queue_url, dlq_url));
    let ledger_retention = config::ledger_retention()?;
    let idle = wabridge_core::conversations::idle_ms(lookup)?;
    let media = media_queue(lookup)?;
    let registry = DynamoNumbers::new(engine.dynamo.clone(), table);
    let numbers = registry.load().await?;
    // Each number's business hours count in its SLA (the registry's `business_hours`).
    let sla = SlaPolicy::new(wabridge_core::conversations::sla::sla_minutes(lookup)?)
        .with_numbers(numbers.as_ref());
    let sweeper = Sweeper::new(
        engine.conversations(idle, ledger_retention),
        sla,
        queue.clone(),
    )
    .with_alerts(Arc::new(wabridge_aws::emf::EmfAlerts::stdout()));
    let mut hooks = sending_hooks(&engine, queue.clone());
    if numbers.is_some() {
        // A template webhook updates its WABA's (`entry[].id`) registry.
        hooks.templates = hooks.templates.per_waba();
    }
    let hooks = Arc::new(hooks);
    let attribution = AttributionConfig::from_env()?;
    let finish = {
        let (engine, media) = (engine.clone(), media.clone());
        move |sync: CrmSync| {
            let sync = sync.with_conversations(engine.conversations(idle, ledger_retention));
            match &media {
                Some(url) => with_media(&engine, sync, url),
                None => sync,
            }
        }
    };
    let handler: Arc<dyn Handler> = match numbers {
        Some(numbers) => {
            let labels: Vec<String> = numbers.all().iter().map(|n| n.label.clone()).collect();
            let shared = numbers::Shared {
                env: Arc::new(move |name: &str| {
                    secrets.lookup(name).filter(|v| !v.trim().is_empty())
                }),
                secret: Arc::new(|key: &str| secrets.get(key).map(str::to_string)),
                attribution,
                ledger_retention,
                hooks,
                finish: Arc::new(finish),
            };
            let every = registry::RELOAD_EVERY;
            let reloading =
                registry::Reloading::new(registry, engine.clone(), shared, numbers, every)?;
            tracing::info!(numbers = ?labels, media = media.is_some(), "crm-sync ready");
            Arc::new(reloading)
        }
        None => {
            let kind = config::crm_kind(lookup);
            wabridge_crm::check_kind(&kind)?;
            let mapping = match lookup(config::WABRIDGE_MAPPING) {
                Some(path) => Mapping::load(&path)?,
                None => Mapping::example(&kind)?,
            };
            let tokens = token_stores(&engine);
            let crm = wabridge_crm::from_lookup_with(&mapping, None, None, Some(tokens), lookup)?;
            let sync = engine.crm_sync(crm, mapping, attribution, ledger_retention, hooks);
            tracing::info!(crm = kind, media = media.is_some(), "crm-sync ready");
            Arc::new(finish(sync))
        }
    };
    let app = App {
        // Claim-checked events are read back from the bucket before crm-sync sees them.
        // Fed by the events topic (a stack with destinations), the destinations' consumers read
        // the same claim-checked objects: leave them to the bucket's lifecycle rule.
        handler: match lookup(config::EVENTS_TOPIC_ARN) {
            Some(_) => engine.claim_checked_shared(handler),
            None => engine.claim_checked(handler),
        },
        queue,
        policy,
    };
    Ok((app, sweeper))
}

/// Whether an invocation is the schedule's (`{"sweep": true}`) rather than an SQS batch.
pub fn is_sweep(payload: &serde_json::Value) -> bool {
    payload.get("sweep").and_then(serde_json::Value::as_bool) == Some(true)
}

/// One conversation sweep; an error fails the invocation (EventBridge retries it, and the
/// findings' event keys make a repeated sweep harmless).
pub async fn sweep(sweeper: &Sweeper) -> Result<SweepReport, lambda_runtime::Error> {
    Ok(sweeper.sweep(wabridge_core::clock::now_ms()).await?)
}

/// The OAuth CRMs' token stores: one `oauth#<connection>` item of the stack's table each, shared
/// by every crm-sync instance (see `docs/oauth.md`).
pub fn token_stores(engine: &AwsEngine) -> wabridge_crm::TokenStores {
    let (dynamo, table) = (engine.dynamo.clone(), engine.table.clone());
    Arc::new(move |connection: &str| {
        Arc::new(wabridge_aws::dynamo::oauth_tokens::DynamoTokenStore::new(
            dynamo.clone(),
            table.clone(),
            connection,
        )) as Arc<dyn wabridge_core::oauth::TokenStore>
    })
}

/// The media queue's URL when inbound media is fetched: `MEDIA_QUEUE_URL` set and
/// `WABRIDGE_MEDIA` not `off` (a value other than `on` or `off` stops the cold start, naming it).
pub fn media_queue(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, config::ConfigError> {
    if !wabridge_core::media::settings::enabled(&lookup)? {
        return Ok(None);
    }
    Ok(lookup(config::MEDIA_QUEUE_URL).filter(|v| !v.trim().is_empty()))
}

/// `sync` enqueuing one job per inbound media file on the media queue at `url`. The function
/// only sends there: it needs no access to the queue's dead letters.
pub fn with_media(engine: &AwsEngine, sync: CrmSync, url: &str) -> CrmSync {
    sync.with_media(Arc::new(engine.producer(url)))
}

/// The sending side's hooks over the engine's table; `events_queue` carries the `send_result`
/// events `Sends::apply_status` emits (Meta's 131050 in a status webhook).
pub fn sending_hooks(engine: &AwsEngine, events_queue: Arc<dyn Queue>) -> SendingHooks {
    let sends = engine.sends(
        // Never used here: crm-sync applies statuses, it does not accept sends.
        events_queue.clone(),
        Arc::new(QueueEvents::new(events_queue)),
        Arc::new(ApiKeys::none()),
    );
    SendingHooks::new(Arc::new(sends))
}

/// Handles a batch; returns the messages that must stay on the queue. `deadline`: when the
/// work must end ([`wabridge_aws::lambda::work_deadline`] of the invocation's deadline).
pub async fn handle(
    app: &App,
    event: SqsEvent,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let (queue, handler) = (app.queue.as_ref(), app.handler.as_ref());
    wabridge_aws::lambda::sqs_batch(queue, handler, event, CONCURRENCY, app.policy, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_input_is_a_sweep_and_an_sqs_batch_is_not() {
        // The template's schedule sends `{"sweep": true}`.
        assert!(is_sweep(&serde_json::json!({"sweep": true})));
        assert!(!is_sweep(&serde_json::json!({"Records": []})));
        assert!(!is_sweep(&serde_json::json!({"sweep": "yes"})));
    }

    #[test]
    fn media_jobs_are_enqueued_only_with_a_queue_and_media_on() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            media_queue(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        const URL: (&str, &str) = ("MEDIA_QUEUE_URL", "http://q/media");
        assert_eq!(with(&[URL]).unwrap().as_deref(), Some("http://q/media"));
        assert_eq!(
            with(&[URL, ("WABRIDGE_MEDIA", "on")]).unwrap().as_deref(),
            Some("http://q/media")
        );
        assert_eq!(with(&[URL, ("WABRIDGE_MEDIA", "off")]).unwrap(), None);
        assert_eq!(with(&[]).unwrap(), None);
        let err = with(&[URL, ("WABRIDGE_MEDIA", "yes")]).unwrap_err();
        assert!(err.to_string().contains("WABRIDGE_MEDIA"), "{err}");
    }
}
