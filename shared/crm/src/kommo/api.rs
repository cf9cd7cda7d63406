//! Kommo API v4 calls: the long-lived token as `Authorization: Bearer`, every call paced under
//! the account's 7 requests per second (`crate::pace::Spaced`: a 429 is not only a request
//! lost, repeated ones get the IP blocked, answered 403 for everything), a `204 No Content`
//! (Kommo's empty list or search) read as `Null`, and Kommo's problem bodies
//! (`{"title","type","status","detail"}`, 400s with `validation-errors`) shortened to their
//! words before they are classified (and masked).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::pace::Spaced;
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::config;
use wabridge_core::crm::CrmError;
use wabridge_http::retry_after;

/// Kommo's window: requests are counted per second.
pub const WINDOW: Duration = Duration::from_secs(1);
/// How long every sender holds back after a 429 Kommo gave no delay for (a full window).
const PAUSE_AFTER_429: Duration = Duration::from_secs(1);

pub(crate) struct Client {
    http: reqwest::Client,
    /// `https://{subdomain}.kommo.com`.
    base: String,
    token: String,
    pacer: Spaced,
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

impl Client {
    pub fn new(
        base: &str,
        token: &str,
        timeout: Duration,
        per_second: usize,
    ) -> Result<Client, ConfigError> {
        if token.is_empty() {
            return Err(ConfigError::Invalid {
                name: config::KOMMO_TOKEN,
                reason: "is required for CRM_KIND=kommo".into(),
            });
        }
        let base = url_setting(config::KOMMO_API_URL, base)?;
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 16,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(Client {
            http,
            base,
            token: token.to_string(),
            pacer: Spaced::new(per_second, WINDOW),
            refused: AtomicBool::new(false),
        })
    }

    /// Sends one request (JSON body when given), paced; a 2xx is its JSON body (`Null` for
    /// 204), anything else its class of error.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        self.pacer.slot().await;
        let mut request = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .header("accept", "application/json")
            .bearer_auth(&self.token);
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
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        if status == 429 {
            // Someone else spent the second (another integration on the account): nobody sends
            // until it is over, instead of each caller earning a 429 towards an IP block.
            let wait = hint.unwrap_or(PAUSE_AFTER_429).min(Duration::from_secs(60));
            self.pacer.pause_until(Instant::now() + wait);
        }
        Err(classify_status(status, hint, &words(&text)))
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
