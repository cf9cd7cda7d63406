//! Outgoing sends in the local gateway: the `Sends` service behind `POST /sends` and
//! `/consents`, the sender worker on the `sends` queue, and the `send` / `consent` commands
//! that call a gateway (this one or a deployed one) over HTTP.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::audit::Audit;
use wabridge_core::auth::ApiKeys;
use wabridge_core::config;
use wabridge_core::consumer::{run_worker, Settle, WorkerOptions};
use wabridge_core::media::upload::MediaLibrary;
use wabridge_core::numbers::{Number, Numbers};
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::language::LanguageMap;
use wabridge_core::sends::media::MediaUploader;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_core::sends::service::Sends;
use wabridge_graph::{GraphClient, GraphUploads};
use wabridge_sqlite::{Db, SqliteEngine, SqliteMediaUploads, SqliteQueue, SENDS_QUEUE};

use crate::error::CliError;
use crate::secrets::Secrets;

/// The sends service over the local SQLite store (see [`SqliteEngine::sends`]), with the
/// language map of `WABRIDGE_TEMPLATE_LANGUAGES`, the stored files sends may carry and the
/// mapping's agent catalogue.
pub fn service(
    db: &Db,
    keys: Arc<ApiKeys>,
    audit: Audit,
    media: MediaLibrary,
    numbers: Option<Arc<Numbers>>,
) -> Result<Arc<Sends>, CliError> {
    let languages = LanguageMap::from_lookup(|n| std::env::var(n).ok())?;
    // The agents `POST /sends` takes: the mapping crm-sync uses (`[agents] ids`).
    let kind = wabridge_core::config::crm_kind(|n| std::env::var(n).ok());
    wabridge_crm::check_kind(&kind)?;
    let agents = wabridge_core::mapping::Mapping::from_env(&kind)?.agents;
    let scope = wabridge_core::consent::ConsentScope::from_settings(|n| std::env::var(n).ok())?;
    let sends = SqliteEngine::new(db.clone())
        .with_consent_scope(scope)
        .sends(keys)
        .with_audit(audit)
        .with_languages(languages)
        .with_media(media)
        .with_agents(agents);
    Ok(Arc::new(match numbers {
        Some(numbers) => sends.with_numbers(numbers),
        None => sends,
    }))
}

/// The Graph client settings of a registered number: its path and its token (checked at start).
fn line_config(n: &Number, secrets: &Secrets) -> Result<GraphConfig, CliError> {
    let (base_url, version) = config::Settings::env().graph_api()?;
    let access_token = secrets
        .named(&n.token_key)
        .ok_or(config::ConfigError::Missing {
            name: config::WHATSAPP_ACCESS_TOKEN,
            consequence: "a registered number's token_key names no secret",
        })?;
    Ok(GraphConfig {
        base_url,
        version,
        phone_number_id: n.phone_number_id.clone(),
        access_token,
        timeout: std::time::Duration::from_secs(10),
    })
}

/// Starts the sender worker when the Graph API is configured (`WHATSAPP_ACCESS_TOKEN`,
/// `WHATSAPP_PHONE_NUMBER_ID`); otherwise sends wait on the queue and a warning says why. A
/// rate setting that does not parse stops the start, configured or not.
pub fn spawn_sender(
    db: &Db,
    sends: &Sends,
    policy: RetryPolicy,
    lines: Option<(&Numbers, &Secrets)>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, CliError> {
    let (rate, _) = config::send_rate(|name| std::env::var(name).ok())?;
    let config = match (GraphConfig::from_env(), lines) {
        (Ok(c), _) => c,
        // A registry without the single-number settings: its first number is the default.
        (Err(config::ConfigError::Missing { .. }), Some((numbers, secrets))) => {
            line_config(&numbers.all()[0], secrets)?
        }
        // Not configured: a choice. Misconfigured: an error (below).
        (Err(why @ config::ConfigError::Missing { .. }), None) => {
            eprintln!("warning: {why}; accepted sends stay queued until it is set");
            return Ok(None);
        }
        (Err(e), _) => return Err(e.into()),
    };
    let mut sender = Sender::new(
        sends.clone(),
        Arc::new(GraphClient::new(config.clone())),
        Arc::new(RateLimiter::for_instances(rate, 1)),
    )
    .with_policy(policy)
    .with_alerts(Arc::new(SqliteEngine::new(db.clone()).alerts()));
    // Each number sends with its own token and path, at its own pace.
    // Files go to Meta from the same number, with the same token, as the messages.
    let uploader = |config: GraphConfig| {
        sends.media().map(|library| {
            Arc::new(MediaUploader::new(
                library.clone(),
                Arc::new(SqliteMediaUploads::new(db.clone())),
                Arc::new(GraphUploads::new(config)),
            ))
        })
    };
    if let Some((numbers, secrets)) = lines {
        for n in numbers.all() {
            let line = line_config(n, secrets)?;
            sender = sender.with_line(
                &n.phone_number_id,
                Arc::new(GraphClient::new(line.clone())),
                Arc::new(RateLimiter::for_instances(n.sends_per_second, 1)),
            );
            if let Some(media) = uploader(line) {
                sender = sender.with_line_media(&n.phone_number_id, media);
            }
        }
    }
    if let Some(media) = uploader(config) {
        sender = sender.with_media(media);
    }
    let breaker = sender.breaker.clone();
    Ok(Some(tokio::spawn(run_worker(
        Arc::new(SqliteQueue::new(db.clone(), SENDS_QUEUE)),
        Arc::new(sender),
        WorkerOptions {
            batch: 50,
            concurrency: 32,
            settle: Settle::new(policy, true),
            breaker: Some(breaker),
            ..WorkerOptions::default()
        },
        stop,
    ))))
}

/// The API key for the CLI: `--api-key`/`WABRIDGE_API_KEY`, else the data dir's dev secrets.
fn api_key(given: Option<String>, data: &Path) -> Result<String, CliError> {
    if let Some(k) = given.filter(|k| !k.is_empty()) {
        return Ok(k);
    }
    crate::secrets::read(data)?
        .map(|s| s.api_key)
        .ok_or(CliError::NoApiKey)
}

async fn post(
    url: &str,
    path: &str,
    key: &str,
    body: Value,
    idempotency: Option<&str>,
) -> Result<(), CliError> {
    let url = format!("{}{path}", url.trim_end_matches('/'));
    let mut req = reqwest::Client::new()
        .post(&url)
        .bearer_auth(key)
        .json(&body);
    if let Some(k) = idempotency {
        req = req.header("idempotency-key", k);
    }
    let response = match req.send().await {
        Ok(r) => r,
        Err(source) => return Err(CliError::Request { url, source }),
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("{body}");
    if status.is_success() {
        Ok(())
    } else {
        Err(CliError::HttpStatus { url, status, body })
    }
}

#[derive(clap::Args, Clone)]
pub struct SendArgs {
    /// Recipient phone number, any format (+52 1 55 1234 5678).
    #[arg(long, conflicts_with = "recipient")]
    pub to: Option<String>,
    /// Recipient BSUID (CC.xxxx) instead of a phone number.
    #[arg(long)]
    pub recipient: Option<String>,
    /// Template name.
    #[arg(long)]
    pub template: String,
    /// Template language code (es_MX, pt_BR, ...); without it the gateway picks the
    /// recipient's country's approved language (WABRIDGE_TEMPLATE_LANGUAGES).
    #[arg(long)]
    pub lang: Option<String>,
    /// MARKETING, UTILITY or AUTHENTICATION.
    #[arg(long)]
    pub category: Option<String>,
    /// A body parameter, in order (repeat the flag).
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// Idempotency-Key: the same key never sends twice.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The business number to send from: a label or phone_number_id of the numbers registry
    /// (required when it has several).
    #[arg(long)]
    pub from: Option<String>,
    /// Gateway base URL (local or deployed).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, env = config::WABRIDGE_API_KEY, hide_env_values = true)]
    pub api_key: Option<String>,
}

pub async fn send(args: SendArgs, data: &Path) -> Result<(), CliError> {
    let key = api_key(args.api_key, data)?;
    let mut body = json!({"template": args.template});
    if let Some(lang) = args.lang {
        body["language"] = json!(lang);
    }
    match (args.to, args.recipient) {
        (Some(to), _) => body["to"] = json!(to),
        (None, Some(r)) => body["recipient"] = json!(r),
        (None, None) => {
            return Err(CliError::argument(
                "--to",
                "give --to NUMBER or --recipient BSUID",
            ))
        }
    }
    if let Some(c) = args.category {
        body["category"] = json!(c);
    }
    if !args.params.is_empty() {
        body["parameters"] = json!(args.params);
    }
    if let Some(from) = args.from {
        body["from"] = json!(from);
    }
    post(
        &args.url,
        "/sends",
        &key,
        body,
        args.idempotency_key.as_deref(),
    )
    .await
}

#[derive(clap::Args, Clone)]
pub struct ConsentArgs {
    /// Phone number, any format.
    #[arg(long)]
    pub to: String,
    #[arg(long, conflicts_with = "opt_out", required_unless_present = "opt_out")]
    pub opt_in: bool,
    #[arg(long)]
    pub opt_out: bool,
    /// web_form, checkout, store or agent.
    #[arg(long)]
    pub source: String,
    /// marketing (default) or utility.
    #[arg(long, default_value = "marketing")]
    pub category: String,
    /// Free text or a URL proving the consent.
    #[arg(long)]
    pub evidence: Option<String>,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, env = config::WABRIDGE_API_KEY, hide_env_values = true)]
    pub api_key: Option<String>,
}

pub async fn consent(args: ConsentArgs, data: &Path) -> Result<(), CliError> {
    let key = api_key(args.api_key, data)?;
    let action = if args.opt_in { "opt_in" } else { "opt_out" };
    let mut body =
        json!({"to": args.to, "action": action, "source": args.source, "category": args.category});
    if let Some(e) = args.evidence {
        body["evidence"] = json!(e);
    }
    post(&args.url, "/consents", &key, body, None).await
}
