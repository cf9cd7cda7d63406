//! The `ingest` Lambda behind a Function URL (or an HTTP API v2 route): `/webhook` (verify,
//! split, dedupe, durable enqueue, 200), `PATCH /conversations/{id}` and
//! `POST /conversations/{id}/tags` (written to the table, queued for crm-sync) and, with a
//! sends queue, `/sends` and `/consents`. It
//! wires the AWS engine (DynamoDB dedupe + SQS events queue, `AwsEngine::inbox`) once per
//! cold start. `/links` and `/conversions` are the attribution function's: they need a QR
//! encoder and an HTTP client, which this function does not link.
//!
//! With the media bucket (`MEDIA_BUCKET`) and the link key, `GET /media/{id}?t=` checks the
//! link's token and redirects (302) to a presigned S3 URL that lives five minutes; erasures
//! delete the person's files from the bucket; `POST /media/uploads` hands out presigned PUT
//! URLs for files to send and checks what arrives (`wabridge_aws::s3_media_uploads`). Both are signed with aws-sigv4
//! (`S3MediaLinks`): aws-sdk-s3 would take this package over its 3 MB goal (docs/media.md).

use std::sync::Arc;

use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::engine::AwsEngine;
use wabridge_aws::s3_media_links::S3MediaLinks;
use wabridge_aws::sdk::SdkConfig;
use wabridge_core::api::Api;
use wabridge_core::audit;
use wabridge_core::auth::ApiKeys;
use wabridge_core::config;
use wabridge_core::conversations::route::{Catalogues, ConversationsRoute};
use wabridge_core::dedupe::DEFAULT_DEDUPE_TTL;
use wabridge_core::http::{Method, Request, Response};
use wabridge_core::ingest::{IngestConfig, IngestService};
use wabridge_core::mapping::Mapping;
use wabridge_core::media::direct::UploadsRoute;
use wabridge_core::media::links::LinkSigner;
use wabridge_core::media::serve::MediaAccess;
use wabridge_core::media::upload::MediaLibrary;
use wabridge_core::numbers::topic::UnknownSeen;
use wabridge_core::numbers::{reload, Numbers};
use wabridge_core::sends::language::LanguageMap;
use wabridge_core::sends::service::NoEvents;

pub use wabridge_aws::function_url::{handle, to_core_request, to_lambda_response};

/// What the function reads at cold start (names from `wabridge_core::config`).
#[derive(Clone)]
pub struct Settings {
    pub table: String,
    pub events_queue_url: String,
    pub ingest: IngestConfig,
    /// `SENDS_QUEUE_URL`: without it `/sends` and `/consents` are not mounted (404).
    pub sends_queue_url: Option<String>,
    /// `WABRIDGE_API_KEY` and `WABRIDGE_API_KEYS` (secrets): without any key `/sends` and
    /// `/consents` answer 503 (fail closed).
    pub api_keys: Arc<ApiKeys>,
    /// `CLAIM_CHECK_BUCKET`: where events too large for SQS go (`wabridge_core::claim_check`).
    pub claim_check_bucket: Option<String>,
    /// `WABRIDGE_AUDIT_RETENTION_DAYS`: how long the audit lines of `/sends` and `/consents`
    /// are kept.
    pub audit_retention: std::time::Duration,
    /// `WABRIDGE_CONTENT_RETENTION_DAYS`: how long a send's content (parameters, text) is kept.
    pub content_retention: std::time::Duration,
    /// `WABRIDGE_TEMPLATE_LANGUAGES`: the language of a template send without one.
    pub template_languages: LanguageMap,
    /// `MEDIA_BUCKET`: the stack keeps files: `/sends` takes `header` and `media` (checked
    /// against the uploads' details in the table; the sender reads the bucket; without it they
    /// are refused, `media_unavailable`), erasures delete the person's media files there, and
    /// with [`Self::media_links`] `GET /media/{id}` redirects into it.
    pub media_bucket: Option<String>,
    /// `WABRIDGE_MEDIA_LINK_KEY` (secret): checks media links' tokens. Unset: `GET /media` is
    /// not served (404).
    pub media_links: Option<LinkSigner>,
    /// The mapping's catalogues (`WABRIDGE_MAPPING`, else the example of `CRM_KIND`, as
    /// crm-sync loads it): what `PATCH /conversations/{id}` and `POST /conversations/{id}/tags`
    /// take.
    pub catalogues: Catalogues,
    /// `WABRIDGE_CONVERSATION_IDLE_HOURS`, in ms.
    pub conversation_idle_ms: i64,
    /// `WABRIDGE_CONSENT_SCOPE`: whether an opt-out on one number holds for the others.
    pub consent_scope: wabridge_core::consent::ConsentScope,
}

impl std::fmt::Debug for Settings {
    // By hand: the API key must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("table", &self.table)
            .field("events_queue_url", &self.events_queue_url)
            .field("sends_queue_url", &self.sends_queue_url)
            .field("claim_check_bucket", &self.claim_check_bucket)
            .field("media_bucket", &self.media_bucket)
            .field("api_keys", &self.api_keys)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the settings through `get` (secret names from the secret store, the rest from the
    /// environment: see `Secrets::lookup`). Errors name what is missing or unusable.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, config::ConfigError> {
        let settings = config::Settings::new(&get);
        Ok(Settings {
            table: settings
                .required(config::WABRIDGE_TABLE, "the dedupe keys live in the table")?,
            events_queue_url: settings.required(
                config::EVENTS_QUEUE_URL,
                "accepted webhook events go on this queue",
            )?,
            ingest: IngestConfig::from_lookup(&get)?,
            sends_queue_url: settings.optional(config::SENDS_QUEUE_URL),
            api_keys: Arc::new(ApiKeys::from_lookup(|name| settings.optional(name))?),
            claim_check_bucket: settings.optional(config::CLAIM_CHECK_BUCKET),
            audit_retention: audit::retention(|name| settings.optional(name))?,
            content_retention: wabridge_core::retention::content_retention(|name| {
                settings.optional(name)
            })?,
            template_languages: LanguageMap::from_lookup(|name| settings.optional(name))?,
            media_bucket: settings.optional(config::MEDIA_BUCKET),
            media_links: match settings.optional(config::WABRIDGE_MEDIA_LINK_KEY) {
                None => None,
                // A key too short to be safe stops the start (no guessable links).
                Some(key) => Some(LinkSigner::new(key.as_bytes()).ok_or(
                    config::ConfigError::Invalid {
                        name: config::WABRIDGE_MEDIA_LINK_KEY,
                        value: "(hidden)".into(),
                        expected: "a secret of at least 32 bytes",
                    },
                )?),
            },
            catalogues: Catalogues::of(&mapping(&settings)?),
            conversation_idle_ms: wabridge_core::conversations::idle_ms(|name| {
                settings.optional(name)
            })?,
            consent_scope: wabridge_core::consent::ConsentScope::from_settings(|name| {
                settings.optional(name)
            })?,
        })
    }
}

/// The mapping crm-sync uses; one that cannot be loaded stops the cold start, naming it.
fn mapping<F: Fn(&str) -> Option<String>>(
    settings: &config::Settings<F>,
) -> Result<Mapping, config::ConfigError> {
    let path = settings.optional(config::WABRIDGE_MAPPING);
    let loaded = match &path {
        Some(path) => Mapping::load(path),
        None => Mapping::example(&config::crm_kind(|name| settings.optional(name))),
    };
    loaded.map_err(|e| config::ConfigError::Invalid {
        name: config::WABRIDGE_MAPPING,
        value: format!(
            "{} ({e})",
            path.as_deref().unwrap_or("the CRM_KIND example")
        ),
        expected: "a mapping wabridge can load (see mappings/)",
    })
}

/// The API this function serves, over the AWS engine: the webhook and, with a sends queue,
/// `/sends` and `/consents`.
pub fn build_api(sdk: &SdkConfig, settings: Settings) -> Api {
    build_api_with_numbers(sdk, settings, None)
}

/// [`build_api`] with the table's numbers registry: `POST /sends` resolves `from` against it
/// (422 `unknown_number` or `from_required`). None: the stack sends from its one number.
pub fn build_api_with_numbers(
    sdk: &SdkConfig,
    settings: Settings,
    numbers: Option<Arc<Numbers>>,
) -> Api {
    build_api_with_topic(sdk, settings, numbers, None, None)
}

/// [`build_api_with_numbers`] on a stack with destinations (`docs/destinations.md`):
/// `events_topic_arn` (`EVENTS_TOPIC_ARN`) is the topic the events queue and every
/// destination's queue subscribe to, and new webhook events are published to it once instead
/// of sent to the events queue. (Not a [`Settings`] field: the tests build those literally.)
/// An event of a number `numbers` lacks is noted in `unknown` ([`ReloadingApi`] reads the
/// registry again).
pub fn build_api_with_topic(
    sdk: &SdkConfig,
    settings: Settings,
    numbers: Option<Arc<Numbers>>,
    events_topic_arn: Option<String>,
    unknown: Option<UnknownSeen>,
) -> Api {
    if settings.claim_check_bucket.is_none() {
        tracing::warn!(
            "{} is not set: an event too large for SQS fails its delivery (503)",
            config::CLAIM_CHECK_BUCKET
        );
    }
    let mut engine = AwsEngine::new(sdk, settings.table)
        .with_claim_check(sdk, settings.claim_check_bucket)
        .with_content_retention(settings.content_retention)
        .with_consent_scope(settings.consent_scope);
    let keeps_files = settings.media_bucket.is_some();
    let media = settings
        .media_bucket
        .map(|bucket| Arc::new(S3MediaLinks::new(sdk, bucket)));
    if let Some(store) = &media {
        engine = engine.with_media(store.clone());
    }
    // With destinations, one publish to the topic is the durable write Meta's 200 waits for;
    // the events queue (and its other producers below) stay as they are.
    let inbox = match &events_topic_arn {
        Some(arn) => engine.topic_inbox(sdk, arn, numbers.clone(), unknown, DEFAULT_DEDUPE_TTL),
        None => engine.inbox(settings.events_queue_url.clone(), DEFAULT_DEDUPE_TTL),
    };
    let mut api = Api::new().with_ingest(Arc::new(IngestService::new(
        settings.ingest,
        Arc::new(inbox),
    )));
    // Conversations' outcome, agent and tags (`sends` scope): written to the table, then
    // queued on the events queue for crm-sync.
    api = api.with_conversations(Arc::new(ConversationsRoute::new(
        engine.conversation_updates(
            settings.conversation_idle_ms,
            settings.events_queue_url.clone(),
        ),
        settings.catalogues.clone(),
        settings.api_keys.clone(),
    )));
    let agents = settings.catalogues.agents;
    // Erasure (`DELETE /contacts/{id}`, admin scope): the CRM's erasure event goes on the
    // events queue this function already writes to.
    api = api.with_erasure(
        Arc::new(engine.erasure(
            settings.events_queue_url.clone(),
            engine.audit(settings.audit_retention),
        )),
        settings.api_keys.clone(),
    );
    if let Some(store) = &media {
        // Uploads by URL: the bytes go straight to the bucket, which is how a file larger than
        // a Function URL's 6 MB body reaches the stack; ingest checks them and records the
        // file in the table, where `POST /sends` finds it.
        let library = MediaLibrary::catalog_only(Arc::new(engine.media_uploads()));
        api = api.with_uploads(
            UploadsRoute::new(library, store.clone(), settings.api_keys.clone())
                .with_audit(engine.audit(settings.audit_retention)),
        );
    }
    match (media, settings.media_links) {
        (Some(store), Some(signer)) => api = api.with_media(MediaAccess::new(signer, store)),
        (Some(_), None) => tracing::warn!(
            "{} is not set: GET /media is not served",
            config::WABRIDGE_MEDIA_LINK_KEY
        ),
        (None, _) => {}
    }
    match settings.sends_queue_url {
        // Ingest only sends to the queue: it has no use for (nor IAM access to) its DLQ.
        Some(url) => {
            let mut sends = engine
                .sends(
                    Arc::new(engine.producer(url)),
                    Arc::new(NoEvents),
                    settings.api_keys,
                )
                .with_audit(engine.audit(settings.audit_retention))
                .with_languages(settings.template_languages)
                .with_agents(agents);
            // `from`: a label or phone_number_id of the registry (422 unknown_number or
            // from_required); without a registry the stack sends from its one number.
            if let Some(numbers) = numbers {
                sends = sends.with_numbers(numbers);
            }
            if keeps_files {
                // The uploads' details in the table, not the bucket: this function does not
                // link S3 (package size, no S3 call on the request's path). The sender opens
                // the file and fails a send whose file is gone (`media_object_not_found`).
                sends =
                    sends.with_media(MediaLibrary::catalog_only(Arc::new(engine.media_uploads())));
            }
            api = api.with_sends(Arc::new(sends));
        }
        None => tracing::warn!(
            "{} is not set: /sends and /consents are not served",
            config::SENDS_QUEUE_URL
        ),
    }
    api
}

/// The API over the table's numbers registry, built again when `POST /sends` or `POST
/// /consents` names a number it does not know (422 `unknown_number`), or a webhook's event on a
/// stack with destinations does ([`UnknownSeen`]), so a number added with `wabridge numbers add
/// --table T` is served, and labelled for the destinations' filters, without a recycle;
/// re-read at most once per `every` per instance ([`reload`], as crm-sync).
pub struct ReloadingApi {
    sdk: SdkConfig,
    settings: Settings,
    registry: DynamoNumbers,
    /// `EVENTS_TOPIC_ARN`: every API built again publishes to it too.
    topic: Option<String>,
    /// Told by the topic of events of a number the registry lacks.
    unknown: UnknownSeen,
    api: reload::Reloading<Api>,
}

impl ReloadingApi {
    /// The API of `numbers` (just read from `registry`).
    pub fn new(
        sdk: &SdkConfig,
        settings: Settings,
        registry: DynamoNumbers,
        numbers: Option<Arc<Numbers>>,
        every: std::time::Duration,
    ) -> ReloadingApi {
        ReloadingApi::with_topic(sdk, settings, registry, numbers, every, None)
    }

    /// [`ReloadingApi::new`] on a stack with destinations ([`build_api_with_topic`]).
    pub fn with_topic(
        sdk: &SdkConfig,
        settings: Settings,
        registry: DynamoNumbers,
        numbers: Option<Arc<Numbers>>,
        every: std::time::Duration,
        topic: Option<String>,
    ) -> ReloadingApi {
        let unknown = UnknownSeen::default();
        let first = build_api_with_topic(
            sdk,
            settings.clone(),
            numbers,
            topic.clone(),
            Some(unknown.clone()),
        );
        ReloadingApi {
            sdk: sdk.clone(),
            settings,
            registry,
            topic,
            unknown,
            api: reload::Reloading::new(first, every),
        }
    }

    /// Serves `request`; a send or consent naming an unknown number is served again by the
    /// API of a re-read registry when there is one. A webhook that published an unknown
    /// number's event has its 200 (the events are durable) after the re-read, so the webhooks
    /// after it are labelled by the new registry.
    pub async fn handle(&self, request: Request) -> Response {
        let seen = self.api.current();
        let again = (request.method == Method::Post).then(|| request.clone());
        let response = seen.handle(request).await;
        if self.unknown.take() {
            self.reread(&seen).await;
            return response;
        }
        let Some(request) = again.filter(|_| names_unknown_number(&response)) else {
            return response;
        };
        match self.reread(&seen).await {
            Some(next) => next.handle(request).await,
            None => response,
        }
    }

    /// The API of a registry read again, when `seen` is still current and the last read is
    /// old enough (else another task's newer one, or none).
    async fn reread(&self, seen: &Arc<Api>) -> Option<Arc<Api>> {
        self.api
            .newer(seen, || async {
                let numbers = self.registry.load().await.map_err(|e| e.to_string())?;
                Ok(build_api_with_topic(
                    &self.sdk,
                    self.settings.clone(),
                    numbers.map(Arc::new),
                    self.topic.clone(),
                    Some(self.unknown.clone()),
                ))
            })
            .await
    }
}

/// Whether `response` is a 422 `unknown_number`.
fn names_unknown_number(response: &Response) -> bool {
    response.status == 422
        && serde_json::from_slice::<serde_json::Value>(&response.body).is_ok_and(|v| {
            v.pointer("/error/code").and_then(|c| c.as_str())
                == Some(wabridge_core::numbers::UNKNOWN_NUMBER)
        })
}

/// [`handle`] over a [`ReloadingApi`]: the Function URL's request in, its response out.
pub async fn handle_reloading(
    api: &ReloadingApi,
    req: lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible> {
    let started = std::time::Instant::now();
    let request = to_core_request(req);
    let (method, path) = (request.method, request.path.clone());
    let response = api.handle(request).await;
    tracing::info!(
        ?method,
        %path,
        status = response.status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(to_lambda_response(response))
}

/// Cold start: the shared SDK configuration, the secrets (Secrets Manager on AWS), the settings
/// and the clients, once.
pub async fn cold_start() -> Result<ReloadingApi, lambda_http::Error> {
    let sdk = wabridge_aws::sdk::lambda_config().await;
    let secrets = wabridge_aws::secrets::secrets().await?;
    let settings = Settings::from_lookup(|name| secrets.lookup(name))?;
    let registry = DynamoNumbers::new(aws_sdk_dynamodb::Client::new(sdk), &settings.table);
    let numbers = registry.load().await?.map(Arc::new);
    let count = numbers.as_ref().map_or(0, |n| n.all().len());
    let topic = secrets
        .lookup(config::EVENTS_TOPIC_ARN)
        .filter(|v| !v.trim().is_empty());
    tracing::info!(table = %settings.table, numbers = count, topic = ?topic, "ingest ready");
    let every = reload::RELOAD_EVERY;
    Ok(ReloadingApi::with_topic(
        sdk, settings, registry, numbers, every, topic,
    ))
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
