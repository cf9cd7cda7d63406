//! Pipedrive HTTP calls: the API token in `x-api-token` (Pipedrive's documented header for
//! every request, v1 and v2: a token in the query string would end up in proxy logs) or an
//! OAuth access token as `Authorization: Bearer` ([`PipedriveAuth`]), the
//! JSON envelope (`{"success", "data", "additional_data"}`), paced sends and error
//! classes (429 → its `Retry-After` / `x-ratelimit-reset`, 401/403 → credentials, other 4xx →
//! the record). Paced evenly (`crate::pace::Spaced`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::pace::Spaced;
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::config;
use wabridge_core::crm::CrmError;
use wabridge_http::retry_after;

/// Pipedrive's burst window.
pub const WINDOW: Duration = Duration::from_secs(2);
/// Search endpoints' own limit per [`WINDOW`] (Pipedrive's changelog, "Search API rate limit").
pub const SEARCH_LIMIT: usize = 10;

/// Which of Pipedrive's limits a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    General,
    /// Search endpoints: the general limit and the search limit.
    Search,
}

/// How calls authenticate.
#[derive(Clone)]
pub enum PipedriveAuth {
    /// A personal API token, sent as `x-api-token`.
    ApiToken(String),
    /// OAuth (Marketplace apps): each call asks `tokens` for a current access token, sent as
    /// `Authorization: Bearer`. Refreshing it is the token source's job.
    OAuth(Arc<dyn AccessTokens>),
}

/// Where OAuth access tokens come from (the shared OAuth token provider: refresh before
/// expiry, one refresh in flight, rotated refresh tokens stored back).
#[async_trait]
pub trait AccessTokens: Send + Sync {
    async fn access_token(&self) -> Result<String, CrmError>;
}

impl std::fmt::Debug for PipedriveAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipedriveAuth::ApiToken(_) => f.write_str("ApiToken(<secret>)"),
            PipedriveAuth::OAuth(_) => f.write_str("OAuth"),
        }
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    auth: PipedriveAuth,
    general: Spaced,
    search: Spaced,
    /// Whether the last answer refused our credentials (401/403): until a call succeeds
    /// again, nothing is answered from what this process remembers (see `refused`).
    refused: AtomicBool,
}

impl Client {
    pub fn new(
        base: &str,
        auth: &PipedriveAuth,
        timeout: Duration,
        limits: (usize, usize),
    ) -> Result<Client, ConfigError> {
        if matches!(auth, PipedriveAuth::ApiToken(t) if t.is_empty()) {
            return Err(ConfigError::Invalid {
                name: config::PIPEDRIVE_API_TOKEN,
                reason: "is required for CRM_KIND=pipedrive".into(),
            });
        }
        let parsed = url::Url::parse(base).map_err(|e| ConfigError::Invalid {
            name: config::PIPEDRIVE_API_URL,
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                name: config::PIPEDRIVE_API_URL,
                reason: "must be http(s)".into(),
            });
        }
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 64,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth: auth.clone(),
            general: Spaced::new(limits.0, WINDOW),
            search: Spaced::new(limits.1, WINDOW),
            refused: AtomicBool::new(false),
        })
    }

    /// Sends one request (JSON body when given), paced; a 2xx is its `data` (`Null` when
    /// absent), anything else its class of error.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        budget: Budget,
    ) -> Result<Value, CrmError> {
        self.exchange(method, path_and_query, body, budget)
            .await
            .map(|(data, _)| data)
    }

    /// A GET of a list: its `data` and its `additional_data` (cursors).
    pub async fn call_page(
        &self,
        method: Method,
        path_and_query: &str,
        budget: Budget,
    ) -> Result<(Value, Value), CrmError> {
        self.exchange(method, path_and_query, None, budget).await
    }

    async fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        budget: Budget,
    ) -> Result<(Value, Value), CrmError> {
        if budget == Budget::Search {
            self.search.slot().await;
        }
        self.general.slot().await;
        let request = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .header("accept", "application/json");
        let mut request = match &self.auth {
            PipedriveAuth::ApiToken(token) => request.header("x-api-token", token),
            PipedriveAuth::OAuth(tokens) => request.bearer_auth(tokens.access_token().await?),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.refused
            .store(matches!(status, 401 | 403), Ordering::Relaxed);
        if (200..300).contains(&status) {
            let text = response.text().await.map_err(transport_error)?;
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok((v["data"].clone(), v["additional_data"].clone()));
        }
        let reset = headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let hint = retry_after(&headers).or(if status == 429 { reset } else { None });
        if status == 429 {
            // The window was full after all (another user of the token): nobody sends until
            // it has room, instead of every caller spending a 429.
            let wait = hint.unwrap_or(WINDOW).min(Duration::from_secs(60));
            let pacer = if budget == Budget::Search {
                &self.search
            } else {
                &self.general
            };
            pacer.pause_until(Instant::now() + wait);
        }
        let text = response.text().await.unwrap_or_default();
        Err(classify_status(status, hint, &text))
    }
}

impl Client {
    /// Whether Pipedrive refused the credentials on the last call. A write skipped because
    /// this process already made it would then report success for a token that no longer
    /// works, and break the run of failures that opens the circuit (and its alarm).
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

/// `value` URL-encoded for a query string.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
