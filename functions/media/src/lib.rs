//! `media` Lambda: an SQS batch of media jobs in, partial batch failures out
//! (`ReportBatchItemFailures`). Each job is handled by the core's [`MediaSync`] (docs/media.md):
//! the file is fetched from Meta with the Graph API token ([`GraphMedia`]), checked against
//! Meta's size and SHA-256 while it streams into the media bucket ([`S3MediaStore`], at most one
//! 8 MiB part in memory per job), recorded in the table's media index under the person who sent
//! it (erasure and retention read it), and its result reported as a `media_result` event on the
//! events queue, which crm-sync turns into the CRM's `media` record. Outcomes are applied with
//! `wabridge_aws::lambda::sqs_batch` as crm-sync's and the sender's are: a retry sets the job's
//! visibility to its backoff and reports it (past the retry horizon it dead-letters), a
//! quarantined file is moved to the dead-letter queue with its reason.
//!
//! Links: with `WABRIDGE_PUBLIC_URL` (the gateway's address, where ingest serves
//! `GET /media/{id}`), each stored file's record carries a link signed with
//! `WABRIDGE_MEDIA_LINK_KEY` from the secret; without it, files are stored and described only.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::engine::AwsEngine;
use wabridge_aws::s3_media::S3MediaStore;
use wabridge_aws::sdk::SdkConfig;
use wabridge_core::config::{self, ConfigError};
use wabridge_core::consumer::Handler;
use wabridge_core::media::fetch::MediaFetcher;
use wabridge_core::media::pipeline::MediaSync;
use wabridge_core::media::settings::MediaSettings;
use wabridge_core::queue::Queue;
use wabridge_core::retry::RetryPolicy;
use wabridge_graph::media::{GraphMedia, MediaConfig};

pub mod reload;

/// Jobs of one batch handled at once: each holds up to one 8 MiB part of its file in memory,
/// so eight stay within a 512 MB function with room for the runtime and the TLS buffers.
pub const CONCURRENCY: usize = 8;

/// One Graph API call's timeout, a download's whole body included: within the function's
/// 120 s, with time left to finish the upload to S3 and report the result. A larger file that
/// does not make it is retried from the start on the next receive.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// What the function reads at cold start (names from `wabridge_core::config`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub table: String,
    /// `MEDIA_QUEUE_URL` and `MEDIA_DLQ_URL`: the jobs and where quarantined ones go.
    pub queue_url: String,
    pub dlq_url: String,
    /// `EVENTS_QUEUE_URL`: where results go, for crm-sync.
    pub events_url: String,
    /// `MEDIA_BUCKET`.
    pub bucket: String,
    /// The Graph API (`WHATSAPP_API_URL`, `WHATSAPP_API_VERSION`, the token from the secret);
    /// its Debug leaves the token out.
    pub graph: MediaConfig,
    /// `WABRIDGE_MEDIA`, `WABRIDGE_PUBLIC_URL`, `WABRIDGE_MEDIA_LINK_KEY`.
    pub media: MediaSettings,
    /// `WABRIDGE_CONTENT_RETENTION_DAYS`: how long a link opens its file and an index item lives.
    pub content_retention: Duration,
    /// `WABRIDGE_RETRY_HORIZON`: how long a job waits out an outage of Meta or S3 (Meta keeps
    /// a media id 7 days).
    pub policy: RetryPolicy,
}

impl Settings {
    /// Reads the settings through `get` (secret names from the secret, the rest from the
    /// environment: see `Secrets::lookup`). Errors name what is missing or unusable, never a
    /// secret's value.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let settings = config::Settings::new(&get);
        let (base_url, version) = settings.graph_api()?;
        let content_retention = wabridge_core::retention::content_retention(get)?;
        let (policy, _) = config::retry_policies(get)?;
        Ok(Settings {
            table: settings
                .required(config::WABRIDGE_TABLE, "the media index lives in the table")?,
            queue_url: settings.required(config::MEDIA_QUEUE_URL, "the media jobs come from it")?,
            dlq_url: settings.required(
                config::MEDIA_DLQ_URL,
                "quarantined media jobs are moved there",
            )?,
            events_url: settings.required(
                config::EVENTS_QUEUE_URL,
                "media results would never reach the CRM",
            )?,
            bucket: settings.required(config::MEDIA_BUCKET, "media files are stored there")?,
            graph: MediaConfig {
                base_url,
                version,
                // Fails closed: without the token no file can be fetched.
                access_token: settings.required(
                    config::WHATSAPP_ACCESS_TOKEN,
                    "media cannot be fetched from Meta",
                )?,
                // Each job names the business number its message reached.
                phone_number_id: None,
                timeout: DOWNLOAD_TIMEOUT,
            },
            media: MediaSettings::from_lookup(get, content_retention)?,
            content_retention,
            policy,
        })
    }
}

pub struct App {
    pub handler: Arc<dyn Handler>,
    pub queue: Arc<dyn Queue>,
    pub policy: RetryPolicy,
}

/// The media consumer over the AWS engine, fetching with the one token of `settings`.
pub fn build(sdk: &SdkConfig, settings: Settings) -> App {
    build_with_numbers(sdk, settings, Vec::new())
}

/// The media consumer over the AWS engine (what [`cold_start`] builds from the environment
/// and the table's numbers registry): the files of a registered number (by phone_number_id)
/// are fetched with its own token; the others with the token of `settings`.
pub fn build_with_numbers(
    sdk: &SdkConfig,
    settings: Settings,
    tokens: Vec<(String, String)>,
) -> App {
    let engine =
        AwsEngine::new(sdk, settings.table).with_content_retention(settings.content_retention);
    let store = Arc::new(S3MediaStore::new(sdk, settings.bucket));
    let mut fetcher = MediaFetcher::new(Arc::new(GraphMedia::new(settings.graph.clone())), store);
    for (id, access_token) in tokens {
        let config = MediaConfig {
            access_token,
            phone_number_id: Some(id.clone()),
            ..settings.graph.clone()
        };
        fetcher = fetcher.with_number(&id, Arc::new(GraphMedia::new(config)));
    }
    // Results are small (no claim-check): the plain producer.
    let events = Arc::new(engine.producer(settings.events_url));
    let sync = MediaSync::new(fetcher, events, settings.media.links)
        .with_index(Arc::new(engine.media_index()));
    App {
        handler: Arc::new(sync),
        queue: Arc::new(engine.queue(settings.queue_url, settings.dlq_url)),
        policy: settings.policy,
    }
}

/// Everything built once per cold start: SDK clients, secrets, the Graph client, the store.
pub async fn cold_start() -> Result<App, lambda_runtime::Error> {
    let sdk = wabridge_aws::sdk::lambda_config().await;
    let secrets = wabridge_aws::secrets::secrets().await?;
    let table = secrets.lookup(config::WABRIDGE_TABLE).unwrap_or_default();
    let registry = DynamoNumbers::new(aws_sdk_dynamodb::Client::new(sdk), table);
    let numbers = registry.load().await?;
    // Each registered number's files come with its own token; the first number's is the
    // default when WHATSAPP_ACCESS_TOKEN is not in the secret.
    let tokens = reload::tokens(numbers.as_ref(), secrets)?;
    let settings = Settings::from_lookup(|name| {
        let first = || tokens.first().map(|(_, token)| token.clone());
        match secrets.lookup(name) {
            None if name == config::WHATSAPP_ACCESS_TOKEN => first(),
            value => value,
        }
    })?;
    if !settings.media.enabled {
        // Jobs queued before the switch still land: crm-sync enqueues no new ones.
        tracing::warn!(
            "{} is off: crm-sync enqueues no media jobs; queued ones are still fetched",
            config::WABRIDGE_MEDIA
        );
    }
    tracing::info!(
        links = settings.media.links.is_some(),
        "media function ready"
    );
    let registry = reload::Registry {
        table: registry,
        read_secret: wabridge_aws::secrets::reader(sdk),
        sdk: sdk.clone(),
        settings,
    };
    Ok(build_reloading(
        registry,
        tokens,
        wabridge_core::numbers::reload::RELOAD_EVERY,
    ))
}

/// [`build_with_numbers`] over the table's registry, built again when a job names a number
/// added since ([`reload::ReloadingMedia`], re-read at most once per `every`): what
/// [`cold_start`] builds.
pub fn build_reloading(
    registry: reload::Registry,
    tokens: Vec<(String, String)>,
    every: Duration,
) -> App {
    let app = build_with_numbers(&registry.sdk, registry.settings.clone(), tokens.clone());
    let first = reload::Built::new(app.handler, &tokens);
    App {
        handler: Arc::new(reload::ReloadingMedia::new(first, registry, every)),
        ..app
    }
}

/// Handles a batch; returns the jobs that must stay on the queue (see `crm_sync::handle` for
/// `deadline`).
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

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "EAAG-secret-token";

    fn lookup(name: &str) -> Option<String> {
        Some(
            match name {
                "WABRIDGE_TABLE" => "t",
                "MEDIA_QUEUE_URL" => "http://q/media",
                "MEDIA_DLQ_URL" => "http://q/media-dlq",
                "EVENTS_QUEUE_URL" => "http://q/events",
                "MEDIA_BUCKET" => "b",
                "WHATSAPP_ACCESS_TOKEN" => TOKEN,
                "WABRIDGE_MEDIA_LINK_KEY" => KEY,
                _ => return None,
            }
            .to_string(),
        )
    }

    #[test]
    fn settings_read_everything_and_print_no_secret() {
        let s = Settings::from_lookup(lookup).unwrap();
        assert_eq!((s.bucket.as_str(), s.table.as_str()), ("b", "t"));
        assert!(s.media.links.is_none(), "no public URL, no links");
        assert_eq!(s.graph.base_url, config::DEFAULT_WHATSAPP_API_URL);
        let shown = format!("{s:?}");
        assert!(!shown.contains(TOKEN) && !shown.contains(KEY), "{shown}");

        let s = Settings::from_lookup(|name| match name {
            "WABRIDGE_PUBLIC_URL" => Some("https://gw.example.com/".into()),
            other => lookup(other),
        })
        .unwrap();
        assert_eq!(s.media.links.unwrap().public_url, "https://gw.example.com");

        // Without a key: files are fetched and stored, without links; a public URL then asks
        // for links it cannot sign, and the start names the key.
        let no_key = |name: &str| match name {
            "WABRIDGE_MEDIA_LINK_KEY" => None,
            other => lookup(other),
        };
        assert!(Settings::from_lookup(no_key).unwrap().media.links.is_none());
        let err = Settings::from_lookup(|name| match name {
            "WABRIDGE_PUBLIC_URL" => Some("https://gw.example.com/".into()),
            other => no_key(other),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("WABRIDGE_MEDIA_LINK_KEY"), "{err}");
    }

    #[test]
    fn a_missing_setting_is_named() {
        for missing in [
            "MEDIA_QUEUE_URL",
            "MEDIA_DLQ_URL",
            "EVENTS_QUEUE_URL",
            "MEDIA_BUCKET",
            "WHATSAPP_ACCESS_TOKEN",
        ] {
            // Blank is unset: the template's secret starts with empty values.
            let err = Settings::from_lookup(|name| match name {
                n if n == missing => Some(" ".into()),
                other => lookup(other),
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(missing), "{missing}: {err}");
            assert!(!err.contains(TOKEN) && !err.contains(KEY), "{err}");
        }
    }
}
