//! Zoho CRM API v8 calls: the OAuth access token as `Authorization: Zoho-oauthtoken` (from the
//! shared [`TokenProvider`]), at most `ZOHO_CONCURRENCY` calls in flight (and 10 heavy ones:
//! searches and writes of more than 10 records, Zoho's sub-concurrency), Zoho's error bodies
//! sorted into the error classes.
//!
//! A `401 INVALID_TOKEN` is an access token Zoho no longer takes (expired early, revoked): it is
//! invalidated in the token store and the call made once more with a fresh one. Refused again,
//! or the refresh itself refused (`invalid_code`: the grant was revoked), the credentials are
//! broken: the event waits and the circuit counts it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::pace::Concurrent;
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::crm::CrmError;
use wabridge_core::oauth::{OAuthError, TokenProvider};
use wabridge_http::retry_after;

/// Zoho's sub-concurrency limit for heavy APIs (search, COQL, writes of more than
/// [`HEAVY_WRITE`] records), per org and app.
pub const SEARCH_CONCURRENCY: usize = 10;
/// Records from which an insert, update or upsert counts against the sub-concurrency limit.
pub const HEAVY_WRITE: usize = 10;
/// How long every sender holds back after a 429 Zoho gave no delay for.
const PAUSE_AFTER_429: Duration = Duration::from_millis(500);

/// Which of Zoho's concurrency limits a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    General,
    /// Search, COQL and writes of more than [`HEAVY_WRITE`] records: the general limit and
    /// the sub-concurrency limit.
    Heavy,
}

pub(crate) struct Client {
    http: reqwest::Client,
    /// `https://www.zohoapis.<dc>`.
    base: String,
    tokens: Arc<TokenProvider>,
    general: Concurrent,
    heavy: Concurrent,
    /// Whether the last answer refused our credentials (see `refused`).
    refused: AtomicBool,
}

/// An OAuth failure in the CRM's error classes.
pub(crate) fn oauth_error(e: OAuthError) -> CrmError {
    match e {
        OAuthError::Rejected(why) => CrmError::Unauthorized(format!(
            "Zoho refused the OAuth refresh token or client ({why}): re-authorise and put the new ZOHO_REFRESH_TOKEN in the secret"
        )),
        OAuthError::Unavailable(why) => CrmError::Transient(format!("Zoho accounts: {why}")),
        OAuthError::Store(e) => CrmError::Transient(format!("OAuth token store: {e}")),
    }
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
        tokens: Arc<TokenProvider>,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Client, ConfigError> {
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: concurrency.max(1),
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            tokens,
            general: Concurrent::new(concurrency),
            heavy: Concurrent::new(concurrency.min(SEARCH_CONCURRENCY)),
            refused: AtomicBool::new(false),
        })
    }

    /// Sends one request (JSON body when given) to `/crm/v8{path}`; a 2xx is its JSON body
    /// (`Null` for 204, Zoho's "no content"), anything else its class of error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        budget: Budget,
    ) -> Result<Value, CrmError> {
        self.request(method, path, body, budget, None).await
    }

    /// Sends `body`, whose `data` holds `n` records, and returns Zoho's answer for each, in
    /// order: from a 2xx (207 Multi-Status when some failed) or a 400 naming every record's
    /// error. Any other answer is the call's, for all its records.
    pub async fn write_records(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        n: usize,
    ) -> Result<Vec<Value>, CrmError> {
        let budget = if n > HEAVY_WRITE {
            Budget::Heavy
        } else {
            Budget::General
        };
        let answer = self
            .request(method, path, Some(body), budget, Some(n))
            .await?;
        match answer["data"].as_array() {
            Some(data) if data.len() == n => Ok(data.clone()),
            other => Err(CrmError::Transient(format!(
                "Zoho answered {} results for {n} records",
                other.map_or(0, Vec::len)
            ))),
        }
    }

    /// Waits until a call could start (a free place, no pause), without taking the place.
    pub async fn ready(&self) {
        drop(self.general.slot().await);
    }

    /// `records`: the call writes that many records and wants each one's answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        budget: Budget,
        records: Option<usize>,
    ) -> Result<Value, CrmError> {
        let mut retried = false;
        loop {
            let token = self.tokens.access_token().await.map_err(oauth_error)?;
            let answer = self
                .send(&method, path, body, budget, records, &token)
                .await?;
            match answer {
                Answer::Ok(v) => return Ok(v),
                Answer::ExpiredToken(_) if !retried => {
                    // Expired before its time (or revoked): a fresh one, once.
                    tracing::info!("zoho: access token refused (INVALID_TOKEN); refreshing");
                    self.tokens.invalidate(&token).await;
                    retried = true;
                }
                Answer::ExpiredToken(e) | Answer::Failed(e) => return Err(e),
            }
        }
    }

    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        budget: Budget,
        records: Option<usize>,
        token: &str,
    ) -> Result<Answer, CrmError> {
        let _heavy = match budget {
            Budget::Heavy => Some(self.heavy.slot().await),
            Budget::General => None,
        };
        let _slot = self.general.slot().await;
        let mut request = self
            .http
            .request(method.clone(), format!("{}/crm/v8{path}", self.base))
            .header("accept", "application/json")
            .header("authorization", format!("Zoho-oauthtoken {token}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let hint = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        self.refused
            .store(matches!(status, 401 | 403), Ordering::Relaxed);
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let each = parsed["data"]
            .as_array()
            .filter(|d| Some(d.len()) == records && d.iter().all(|r| r["status"].is_string()));
        if records.is_some() && (status == 400 || (200..300).contains(&status)) && each.is_some() {
            // Every record answered for itself (all refused: a 400): the caller sorts them.
            return Ok(Answer::Ok(parsed));
        }
        if (200..300).contains(&status) {
            // A call of one record (`call`): its own error (in a 2xx or 207) is the record's.
            if let Some(first) = parsed["data"].as_array().and_then(|d| d.first()) {
                if first["status"] == "error" {
                    let words = serde_json::to_string(first).unwrap_or_default();
                    return Ok(Answer::Failed(classify_status(400, None, &words)));
                }
            }
            return Ok(Answer::Ok(parsed));
        }
        if status == 429 {
            // Credits or concurrency spent (another process of this app): nobody starts a
            // call until the pause is over, instead of each spending a 429.
            let until = Instant::now() + hint.unwrap_or(PAUSE_AFTER_429).min(PAUSE_AFTER_429);
            self.general.pause_until(until);
        }
        let error = classify_status(status, hint, &text);
        if status == 401 && parsed["code"] == "INVALID_TOKEN" {
            return Ok(Answer::ExpiredToken(error));
        }
        Ok(Answer::Failed(error))
    }

    /// Whether Zoho refused the credentials on the last call: a write skipped because this
    /// process already made it would report success for credentials that no longer work.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

enum Answer {
    Ok(Value),
    ExpiredToken(CrmError),
    Failed(CrmError),
}

/// `value` URL-encoded for a query string.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A search criterion `(field:equals:value)`, with Zoho's escapes: `(`, `)` and `,` take a
/// backslash; the whole is URL-encoded (a `+` would read as a space).
pub(crate) fn equals(field: &str, value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('(', "\\(")
        .replace(')', "\\)")
        .replace(',', "\\,");
    encode(&format!("({field}:equals:{escaped})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_are_escaped_and_encoded() {
        assert_eq!(
            equals("WhatsApp_ID", "+5215512345678"),
            "%28WhatsApp_ID%3Aequals%3A%2B5215512345678%29"
        );
        assert_eq!(
            equals("X", "a(b),c"),
            encode("(X:equals:a\\(b\\)\\,c)").as_str()
        );
    }

    #[test]
    fn oauth_failures_wait_and_never_dead_letter() {
        assert!(matches!(
            oauth_error(OAuthError::Rejected("invalid_code".into())),
            CrmError::Unauthorized(m) if m.contains("invalid_code") && m.contains("ZOHO_REFRESH_TOKEN")
        ));
        assert!(matches!(
            oauth_error(OAuthError::Unavailable("503".into())),
            CrmError::Transient(_)
        ));
    }
}
