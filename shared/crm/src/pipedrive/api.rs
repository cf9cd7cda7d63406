//! Pipedrive HTTP calls: the API token in `x-api-token` (Pipedrive's documented header for
//! every request, v1 and v2: a token in the query string would end up in proxy logs) or an
//! OAuth access token from the shared [`TokenProvider`] as `Authorization: Bearer`
//! ([`PipedriveAuth`]), the JSON envelope (`{"success", "data", "additional_data"}`), paced
//! sends and error classes (429 → its `Retry-After` / `x-ratelimit-reset`, 401/403 →
//! credentials, other 4xx → the record). Paced evenly (`crate::pace::Spaced`).
//!
//! OAuth: a 401 is an access token Pipedrive no longer takes (expired early, revoked): it is
//! invalidated in the token store and the call made once more with a fresh one. Refused again,
//! or the refresh itself refused, the credentials are broken: the event waits and the circuit
//! counts it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::oauth::ApiDomain;
use crate::pace::Spaced;
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::config;
use wabridge_core::crm::CrmError;
use wabridge_core::oauth::{OAuthError, TokenProvider};
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
    /// OAuth (an app installed in the company): each call asks `tokens` for a current access
    /// token, sent as `Authorization: Bearer`, to the `api_domain` of the last refresh when
    /// this process made one.
    OAuth {
        tokens: Arc<TokenProvider>,
        api_domain: ApiDomain,
    },
}

impl std::fmt::Debug for PipedriveAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipedriveAuth::ApiToken(_) => f.write_str("ApiToken(<secret>)"),
            PipedriveAuth::OAuth { api_domain, .. } => f
                .debug_struct("OAuth")
                .field("api_domain", &api_domain.get())
                .finish_non_exhaustive(),
        }
    }
}

/// An OAuth failure in the CRM's error classes.
pub(crate) fn oauth_error(e: OAuthError) -> CrmError {
    match e {
        OAuthError::Rejected(why) => CrmError::Unauthorized(format!(
            "Pipedrive refused the OAuth refresh token or client ({why}): re-authorise the app and put the new PIPEDRIVE_REFRESH_TOKEN in the secret"
        )),
        OAuthError::Unavailable(why) => CrmError::Transient(format!("Pipedrive OAuth: {why}")),
        OAuthError::Store(e) => CrmError::Transient(format!("OAuth token store: {e}")),
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
        let mut retried = false;
        loop {
            let bearer = match &self.auth {
                PipedriveAuth::ApiToken(_) => None,
                PipedriveAuth::OAuth { tokens, .. } => match tokens.access_token().await {
                    Ok(token) => Some(token),
                    Err(e) => {
                        if matches!(e, OAuthError::Rejected(_)) {
                            self.refused.store(true, Ordering::Relaxed);
                        }
                        return Err(oauth_error(e));
                    }
                },
            };
            let response = self
                .send(&method, path_and_query, body, budget, bearer.as_deref())
                .await?;
            if let (PipedriveAuth::OAuth { tokens, .. }, Some(token), 401, false) =
                (&self.auth, &bearer, response.status().as_u16(), retried)
            {
                // Expired before its time (or revoked): a fresh one, once.
                tracing::info!("pipedrive: access token refused (401); refreshing");
                tokens.invalidate(token).await;
                retried = true;
                continue;
            }
            return self.answer(response, budget).await;
        }
    }

    /// One paced request with `bearer` (OAuth) or the API token.
    async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&Value>,
        budget: Budget,
        bearer: Option<&str>,
    ) -> Result<reqwest::Response, CrmError> {
        if budget == Budget::Search {
            self.search.slot().await;
        }
        self.general.slot().await;
        let base = match &self.auth {
            PipedriveAuth::OAuth { api_domain, .. } => api_domain.get(),
            PipedriveAuth::ApiToken(_) => None,
        };
        let base = base.as_deref().unwrap_or(&self.base);
        let request = self
            .http
            .request(method.clone(), format!("{base}{path_and_query}"))
            .header("accept", "application/json");
        let mut request = match (&self.auth, bearer) {
            (PipedriveAuth::ApiToken(token), _) => request.header("x-api-token", token),
            (PipedriveAuth::OAuth { .. }, Some(token)) => request.bearer_auth(token),
            (PipedriveAuth::OAuth { .. }, None) => request,
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(transport_error)
    }

    /// A 2xx's `data` and `additional_data`, anything else its class of error.
    async fn answer(
        &self,
        response: reqwest::Response,
        budget: Budget,
    ) -> Result<(Value, Value), CrmError> {
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
