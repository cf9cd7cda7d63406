//! Kommo API v4 calls: the long-lived token, or an OAuth access token from the shared
//! [`TokenProvider`], as `Authorization: Bearer`, every call paced under
//! the account's 7 requests per second (`crate::pace::Spaced`: a 429 is not only a request
//! lost, repeated ones get the IP blocked, answered 403 for everything), a `204 No Content`
//! (Kommo's empty list or search) read as `Null`, and Kommo's problem bodies
//! (`{"title","type","status","detail"}`, 400s with `validation-errors`) shortened to their
//! words before they are classified (and masked).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::oauth::{oauth_error, KommoTokenEndpoint};
use super::KommoAuth;
use crate::pace::Spaced;
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::config;
use wabridge_core::crm::CrmError;
use wabridge_core::oauth::TokenProvider;
use wabridge_http::retry_after;

/// Kommo's window: requests are counted per second.
pub const WINDOW: Duration = Duration::from_secs(1);
/// How long every sender holds back after a 429 Kommo gave no delay for (a full window).
const PAUSE_AFTER_429: Duration = Duration::from_secs(1);

pub(crate) struct Client {
    http: reqwest::Client,
    /// `https://{subdomain}.kommo.com`.
    base: String,
    auth: Auth,
    /// Shared with the OAuth token endpoint: it is on the same account host.
    pacer: Arc<Spaced>,
    /// Whether the last answer refused our credentials (see `refused`).
    refused: AtomicBool,
}

/// Checks an http(s) URL setting.
pub(crate) fn url_setting(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(value).map_err(|e| ConfigError::Invalid {
        name,
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be http(s)".into(),
        });
    }
    Ok(value.trim_end_matches('/').to_string())
}

enum Auth {
    LongLived(String),
    OAuth(Arc<TokenProvider>),
}

impl Client {
    pub fn new(
        base: &str,
        auth: &KommoAuth,
        timeout: Duration,
        per_second: usize,
    ) -> Result<Client, ConfigError> {
        let base = url_setting(config::KOMMO_API_URL, base)?;
        let pacer = Arc::new(Spaced::new(per_second, WINDOW));
        let auth = match auth {
            KommoAuth::Token(token) if token.is_empty() => {
                return Err(ConfigError::Invalid {
                    name: config::KOMMO_TOKEN,
                    reason: "is required for CRM_KIND=kommo".into(),
                })
            }
            KommoAuth::Token(token) => Auth::LongLived(token.clone()),
            KommoAuth::OAuth(oauth) => {
                let store = oauth.store.clone();
                let configured = oauth.refresh_token.clone();
                let endpoint =
                    KommoTokenEndpoint::new(&base, oauth.clone(), timeout, pacer.clone())?;
                Auth::OAuth(Arc::new(TokenProvider::new(
                    Arc::new(endpoint),
                    store,
                    configured,
                )))
            }
        };
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 16,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(Client {
            http,
            base,
            auth,
            pacer,
            refused: AtomicBool::new(false),
        })
    }

    /// The bearer token for the next call.
    async fn token(&self) -> Result<String, CrmError> {
        match &self.auth {
            Auth::LongLived(token) => Ok(token.clone()),
            Auth::OAuth(tokens) => {
                let token = tokens.access_token().await.map_err(oauth_error);
                if matches!(token, Err(CrmError::Unauthorized(_))) {
                    // The refresh was refused: as good as a 401 (see `refused`).
                    self.refused.store(true, Ordering::Relaxed);
                }
                token
            }
        }
    }

    /// Sends one request (JSON body when given), paced; a 2xx is its JSON body (`Null` for
    /// 204), anything else its class of error.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let (status, answer) = self.send(&method, path_and_query, body, &token).await?;
            match &self.auth {
                // A 401 (not a 403: the account or the IP refused, which a new token does not
                // change) for a token expired before its time, or revoked: a fresh one, once.
                Auth::OAuth(tokens) if status == 401 && !retried => {
                    tracing::info!("kommo: access token refused (401); refreshing");
                    tokens.invalidate(&token).await;
                    retried = true;
                }
                _ => return answer,
            }
        }
    }

    /// One paced request with `token`: the answer's status and what it means.
    async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Result<(u16, Result<Value, CrmError>), CrmError> {
        self.pacer.slot().await;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path_and_query}", self.base))
            .header("accept", "application/json")
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let hint = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        self.refused
            .store(matches!(status, 401 | 403), Ordering::Relaxed);
        if (200..300).contains(&status) {
            return Ok((
                status,
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
            ));
        }
        if status == 429 {
            // Someone else spent the second (another integration on the account): nobody sends
            // until it is over, instead of each caller earning a 429 towards an IP block.
            let wait = hint.unwrap_or(PAUSE_AFTER_429).min(Duration::from_secs(60));
            self.pacer.pause_until(Instant::now() + wait);
        }
        Ok((status, Err(classify_status(status, hint, &words(&text)))))
    }

    /// Waits until the pacer would let a call go now (see `Spaced::ready`).
    pub async fn ready(&self) {
        self.pacer.ready().await
    }

    /// Whether Kommo refused the credentials on the last call: a write skipped because this
    /// process already made it would report success for a token that no longer works.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The words of a Kommo error body: its `title` and `detail`, then each validation error's
/// `path` and `detail`; the body itself when it is not Kommo's JSON (a 429 may be HTML).
pub(crate) fn words(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    let mut parts: Vec<String> = ["title", "detail"]
        .iter()
        .filter_map(|k| v[*k].as_str().map(String::from))
        .collect();
    for request in v["validation-errors"].as_array().into_iter().flatten() {
        for e in request["errors"].as_array().into_iter().flatten() {
            let path = e["path"].as_str().unwrap_or("");
            let detail = e["detail"].as_str().unwrap_or("");
            parts.push(format!("{path}: {detail}"));
        }
    }
    if parts.is_empty() {
        body.to_string()
    } else {
        parts.join("; ")
    }
}

/// `value` URL-encoded for a query string.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kommo_bodies_shorten_to_their_words() {
        let body = r#"{"validation-errors":[{"request_id":"0","errors":[{"code":"NotSupportedChoice",
            "path":"custom_fields_values.0.field_id","detail":"The value you've selected is not valid."}]}],
            "title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}"#;
        assert_eq!(
            words(body),
            "Bad Request; Request validation failed; custom_fields_values.0.field_id: The value you've selected is not valid."
        );
        assert_eq!(words("<html>429</html>"), "<html>429</html>");
    }
}
