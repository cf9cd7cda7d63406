//! `sender` Lambda: an SQS batch of sends in, partial batch failures out
//! (`ReportBatchItemFailures`). Each message is handled by the core's [`Sender`] (policy guards
//! again, rate limits, Graph API, error classes) over DynamoDB; outcomes are applied with
//! `wabridge_aws::lambda::sqs_batch` without deleting successes (Lambda deletes every message not reported).
//!
//! Throughput: each concurrent Lambda instance runs its own limiter at
//! `WABRIDGE_SENDS_PER_SECOND / WABRIDGE_SENDER_INSTANCES`; set `WABRIDGE_SENDER_INSTANCES` to
//! the event source's `MaximumConcurrency` so the instances together never exceed the number's
//! rate (80/s with MaximumConcurrency 4 → 20/s each). The pair limit holds across instances:
//! before calling Meta each send takes its recipient's pair window in the table (a conditional
//! write, [`wabridge_core::sends::store::SendStore::reserve_pair`]); a send that finds it taken
//! goes back on the queue for the rest of the window.
//!
//! Sends that end here (refused by a guard, failed at Meta's API, Meta's 131050) are reported
//! as `send_result` events on the EVENTS queue (`EVENTS_QUEUE_URL`, required), which crm-sync
//! turns into the CRM's outbound activity (and the 131050 consent record).
//!
//! The same function syncs the template registry from Meta's template list every hour (an
//! EventBridge schedule invokes it with [`TEMPLATE_SYNC_INPUT`]; see [`invoke`]), so on AWS too
//! `POST /sends` checks parameter counts, categories and statuses against what Meta holds. It
//! needs `WHATSAPP_BUSINESS_ACCOUNT_ID`; without it the schedule is off and the sync disabled.
//! With the table's numbers registry it syncs every WABA of it into that WABA's registry, with
//! a token of one of its numbers, and the guards read the sending number's WABA's.
//!
//! With `MEDIA_BUCKET` the sender sends files too (media templates' headers, media messages):
//! [`media_uploader`] uploads each from the S3 media store to Meta once per number and sends by
//! id, Meta's ids remembered in the table. Without it a send with a file fails
//! `media_unavailable`.

pub mod lines;
pub mod reload;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::engine::AwsEngine;
use wabridge_aws::s3_media::S3MediaStore;
use wabridge_aws::sdk::SdkConfig;
use wabridge_core::auth::ApiKeys;
use wabridge_core::config;
use wabridge_core::consumer::Handler;
use wabridge_core::media::upload::MediaLibrary;
use wabridge_core::numbers::Numbers;
use wabridge_core::queue::Queue;
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sends::events::QueueEvents;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::media::MediaUploader;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_core::sends::template_sync::{sync_each, TemplateSync, TemplateSyncConfig};
use wabridge_core::templates::TemplateRegistries;
use wabridge_graph::{GraphClient, GraphUploads};

/// Messages of one batch handled at once (the limiter paces them).
pub const CONCURRENCY: usize = 10;

/// The event the hourly schedule invokes the function with (`infra/template.yaml`).
pub const TEMPLATE_SYNC_INPUT: &str = "template_sync";

pub struct App {
    pub handler: Arc<dyn Handler>,
    pub queue: Arc<dyn Queue>,
    /// The sends' retry horizon (`WABRIDGE_SEND_RETRY_HORIZON`).
    pub policy: RetryPolicy,
    /// The registries the policy guards read (DynamoDB): per WABA with a numbers registry.
    pub templates: TemplateRegistries,
    /// The scheduled template sync (one per WABA), or why it is off (no WABA id, no token):
    /// the schedule's invocations then answer "disabled" with that reason.
    pub template_sync: Result<Vec<TemplateSync>, config::ConfigError>,
}

impl App {
    /// Turns on the scheduled template sync of one WABA (the implicit number's).
    pub fn with_template_sync(self, config: TemplateSyncConfig) -> App {
        self.with_template_syncs(vec![config])
    }

    /// Turns on the scheduled template sync of each WABA (`TemplateSyncConfig::per_waba`).
    pub fn with_template_syncs(mut self, configs: Vec<TemplateSyncConfig>) -> App {
        let syncs = configs.into_iter().map(wabridge_graph::template_sync);
        self.template_sync = Ok(syncs.collect());
        self
    }
}

/// Everything built once per cold start: SDK clients, secrets, Graph client, limiter.
pub async fn cold_start() -> Result<App, lambda_runtime::Error> {
    let sdk = wabridge_aws::sdk::lambda_config().await;
    let secrets = wabridge_aws::secrets::secrets().await?;
    let lookup = |name: &str| secrets.lookup(name).filter(|v| !v.trim().is_empty());
    let need = |name: &str| lookup(name).ok_or_else(|| format!("{name} is not set"));
    let table = need(config::WABRIDGE_TABLE)?;
    let queue_url = need(config::SENDS_QUEUE_URL)?;
    let dlq_url = need(config::SENDS_DLQ_URL)?;
    // Fails closed: without the events queue, sends ending here would never reach the CRM.
    let events_url = need(config::EVENTS_QUEUE_URL)?;
    let (rate, instances) = config::send_rate(lookup)?;
    let (_, policy) = config::retry_policies(lookup)?;
    let scope = wabridge_core::consent::ConsentScope::from_settings(lookup)?;
    let engine = AwsEngine::new(sdk, table.clone()).with_consent_scope(scope);
    let registry = DynamoNumbers::new(engine.dynamo.clone(), table);
    let numbers = registry.load().await?;
    let secret = |key: &str| secrets.get(key).map(str::to_string);
    // Fails closed: no token or phone number id, no sender. With a registry and without the
    // single-number settings, its first number is the default line.
    let graph_config = match (GraphConfig::from_lookup(lookup), &numbers) {
        (Ok(c), _) => c,
        (Err(config::ConfigError::Missing { .. }), Some(numbers)) => {
            lines::graph_config(&numbers.all()[0], lookup, secret)?
        }
        (Err(e), _) => return Err(e.into()),
    };
    let graph = GraphClient::new(graph_config.clone());
    let bucket = lookup(config::MEDIA_BUCKET);
    let uploads = engine.clone();
    let uploader = move |graph: GraphConfig| {
        let bucket = bucket.clone()?;
        Some(Arc::new(media_uploader(sdk, &uploads, bucket, graph)))
    };
    let media = uploader(graph_config);
    if media.is_none() {
        tracing::warn!(
            "{} is not set: sends with a file fail (media_unavailable)",
            config::MEDIA_BUCKET
        );
    }
    // Each registered number sends with its own token and path, at its own pace, and uploads
    // its files from itself.
    let mut lines = match &numbers {
        Some(numbers) => lines::lines(numbers, instances, lookup, secret)?,
        None => Vec::new(),
    };
    for line in &mut lines {
        line.media = uploader(line.graph.clone());
    }
    let count = lines.len();
    // A number added to the table later is read, with its token, when a send names it.
    let registry = reload::Registry {
        table: registry,
        read_secret: wabridge_aws::secrets::reader(sdk),
        settings: Arc::new(move |name: &str| secrets.lookup(name).filter(|v| !v.trim().is_empty())),
        instances,
        uploader: Arc::new(uploader),
    };
    let mut app = build_with_numbers(
        engine.clone(),
        Names {
            queue_url,
            dlq_url,
            events_url,
        },
        graph,
        RateLimiter::for_instances(rate, instances),
        policy,
        media,
        lines,
        numbers.clone().map(Arc::new),
        Some((registry, wabridge_core::numbers::reload::RELOAD_EVERY)),
    );
    let configs = match &numbers {
        Some(numbers) => TemplateSyncConfig::per_waba(lookup, numbers, secret),
        None => TemplateSyncConfig::from_lookup(lookup).map(|c| vec![c]),
    };
    match configs {
        Ok(configs) => app = app.with_template_syncs(configs),
        Err(why) => app.template_sync = Err(why),
    }
    tracing::info!(
        rate,
        instances,
        template_sync = app.template_sync.is_ok(),
        numbers = count,
        "sender ready"
    );
    Ok(app)
}

/// The queues the sender uses.
pub struct Names {
    /// The sends queue and its dead-letter queue.
    pub queue_url: String,
    pub dlq_url: String,
    /// The events queue, where sends that end here are reported (`send_result` events).
    pub events_url: String,
}

/// Files of media sends, read from the S3 media store in `bucket` and uploaded to Meta as the
/// number and token of `graph` (the messages'); Meta's ids and what uploads recorded are in the
/// engine's table.
pub fn media_uploader(
    sdk: &SdkConfig,
    engine: &AwsEngine,
    bucket: impl Into<String>,
    graph: GraphConfig,
) -> MediaUploader {
    let uploads = Arc::new(engine.media_uploads());
    let library = MediaLibrary::new(Arc::new(S3MediaStore::new(sdk, bucket)), uploads.clone());
    MediaUploader::new(library, uploads, Arc::new(GraphUploads::new(graph)))
}

/// The sender over the AWS engine, sending no files (see [`build_with_media`]).
pub fn build(
    engine: AwsEngine,
    names: Names,
    graph: GraphClient,
    limiter: RateLimiter,
    policy: RetryPolicy,
) -> App {
    build_with_media(engine, names, graph, limiter, policy, None)
}

/// The sender over the AWS engine; `media` sends files, none fails sends with one
/// (`media_unavailable`).
pub fn build_with_media(
    engine: AwsEngine,
    names: Names,
    graph: GraphClient,
    limiter: RateLimiter,
    policy: RetryPolicy,
    media: Option<Arc<MediaUploader>>,
) -> App {
    build_with_lines(engine, names, graph, limiter, policy, media, Vec::new())
}

/// The sender over the AWS engine (what [`cold_start`] builds from the environment and the
/// table's numbers registry): a send `from` a registered number goes out through its line;
/// one without `from` through `graph`.
pub fn build_with_lines(
    engine: AwsEngine,
    names: Names,
    graph: GraphClient,
    limiter: RateLimiter,
    policy: RetryPolicy,
    media: Option<Arc<MediaUploader>>,
    lines: Vec<lines::Line>,
) -> App {
    build_with_numbers(
        engine, names, graph, limiter, policy, media, lines, None, None,
    )
}

/// [`build_with_lines`] with the numbers registry the lines come from: the guards read the
/// template registry of the sending number's WABA. With `reload` (the table's registry and how
/// often it may be read), the sender is built again when a send is `from` a number added since
/// ([`reload::ReloadingSender`]): what [`cold_start`] builds with a registry.
#[allow(clippy::too_many_arguments)]
pub fn build_with_numbers(
    engine: AwsEngine,
    names: Names,
    graph: GraphClient,
    limiter: RateLimiter,
    policy: RetryPolicy,
    media: Option<Arc<MediaUploader>>,
    lines: Vec<lines::Line>,
    numbers: Option<Arc<Numbers>>,
    reload: Option<(reload::Registry, std::time::Duration)>,
) -> App {
    let (sender, queue) = assemble(engine, names, graph, limiter, policy, media, lines, numbers);
    let templates = sender.sends.policy.templates.clone();
    let handler: Arc<dyn Handler> = match reload {
        Some((registry, every)) => Arc::new(reload::ReloadingSender::new(sender, registry, every)),
        None => Arc::new(sender),
    };
    app(handler, queue, policy, templates)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    engine: AwsEngine,
    names: Names,
    graph: GraphClient,
    limiter: RateLimiter,
    policy: RetryPolicy,
    media: Option<Arc<MediaUploader>>,
    lines: Vec<lines::Line>,
    numbers: Option<Arc<Numbers>>,
) -> (Sender, Arc<dyn Queue>) {
    let queue: Arc<dyn Queue> = Arc::new(engine.queue(names.queue_url, names.dlq_url));
    let events = QueueEvents::new(Arc::new(engine.producer(names.events_url)));
    // The sender serves no HTTP.
    let mut sends = engine.sends(queue.clone(), Arc::new(events), Arc::new(ApiKeys::none()));
    if let Some(numbers) = numbers {
        sends = sends.with_numbers(numbers);
    }
    let mut sender = Sender::new(sends, Arc::new(graph), Arc::new(limiter))
        .with_policy(policy)
        .with_alerts(Arc::new(wabridge_aws::emf::EmfAlerts::stdout()));
    if let Some(media) = media {
        sender = sender.with_media(media);
    }
    (lines::with_lines(sender, lines), queue)
}

/// The app of `handler`; its template sync is off until turned on.
fn app(
    handler: Arc<dyn Handler>,
    queue: Arc<dyn Queue>,
    policy: RetryPolicy,
    templates: TemplateRegistries,
) -> App {
    App {
        handler,
        queue,
        policy,
        templates,
        template_sync: Err(config::ConfigError::Missing {
            name: config::WHATSAPP_BUSINESS_ACCOUNT_ID,
            consequence: "the template sync is disabled",
        }),
    }
}

/// Handles a batch; returns the messages that must stay on the queue (see `crm_sync::handle`
/// for `deadline`).
pub async fn handle(
    app: &App,
    event: SqsEvent,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let (queue, handler) = (app.queue.as_ref(), app.handler.as_ref());
    wabridge_aws::lambda::sqs_batch(queue, handler, event, CONCURRENCY, app.policy, deadline).await
}

/// Why an invocation could not be served (the Lambda reports it as a failed invocation; the
/// schedule's asynchronous invocation is retried, the next hour's runs anyway).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("not an SQS batch nor {{\"wabridge\": \"{TEMPLATE_SYNC_INPUT}\"}}: {0}")]
    Unrecognised(String),
    #[error("template sync failed: {0}")]
    TemplateSync(String),
}

/// Serves one invocation: an SQS batch from the sends queue (answered with the partial batch
/// failures), or the hourly `{"wabridge": "template_sync"}` (answered with the sync's report).
pub async fn invoke(
    app: &App,
    event: Value,
    deadline: Option<std::time::Instant>,
) -> Result<Value, InvokeError> {
    if event.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(event)
            .map_err(|e| InvokeError::Unrecognised(format!("SQS batch: {e}")))?;
        let response = handle(app, batch, deadline).await;
        return serde_json::to_value(response)
            .map_err(|e| InvokeError::Unrecognised(e.to_string()));
    }
    if event.get("wabridge").and_then(Value::as_str) != Some(TEMPLATE_SYNC_INPUT) {
        let keys: Vec<&str> = event
            .as_object()
            .map(|o| o.keys().map(String::as_str).take(8).collect())
            .unwrap_or_default();
        return Err(InvokeError::Unrecognised(format!(
            "top-level keys {keys:?}"
        )));
    }
    let syncs = match &app.template_sync {
        Ok(syncs) => syncs,
        Err(why) => {
            // Names a missing setting only, never a value.
            tracing::warn!(reason = %why, "template sync invoked while disabled");
            return Ok(json!({"template_sync": "disabled", "reason": why.to_string()}));
        }
    };
    let mut reports = Vec::new();
    let mut failed = None;
    for (waba, result) in sync_each(syncs, &app.templates).await {
        match result {
            Ok(report) => {
                tracing::info!(
                    waba = %waba,
                    pages = report.pages,
                    templates = report.templates,
                    statuses_written = report.statuses_written,
                    skipped = report.skipped,
                    "template registry synced"
                );
                reports.push((waba, report));
            }
            Err(e) => {
                // The next WABA is still synced: one failing account does not stale the rest.
                tracing::error!(waba = %waba, error = %e, retryable = e.is_retryable(), "template sync failed");
                failed.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = failed {
        return Err(InvokeError::TemplateSync(e));
    }
    if !app.templates.is_per_waba() {
        if let [(_, report)] = reports.as_slice() {
            return Ok(json!({"template_sync": report}));
        }
    }
    let per_waba: Vec<Value> = reports
        .into_iter()
        .map(|(waba, report)| {
            let mut v = json!(report);
            v["waba_id"] = json!(waba);
            v
        })
        .collect();
    Ok(json!({"template_sync": per_waba}))
}
