//! Salesforce REST calls: the OAuth access token as `Authorization: Bearer` (from the shared
//! [`TokenProvider`]), at most `SALESFORCE_CONCURRENCY` calls in flight, the org's usage read
//! from `Sforce-Limit-Info`, and Salesforce's error arrays (`[{"message","errorCode","fields"}]`)
//! sorted into the error classes:
//! - 401 `INVALID_SESSION_ID`: the session ended early (timeout, revoked); the token is
//!   invalidated and the call made once more with a new grant. A refused grant means the app
//!   is broken: the event waits and the circuit counts it.
//! - 403 `REQUEST_LIMIT_EXCEEDED`: Salesforce's throttle (it never answers 429). "TotalRequests"
//!   is the org's rolling 24-hour allocation spent: events wait [`DAILY_LIMIT_WAIT`]; otherwise
//!   the long-running concurrency cap: a short pause for every sender.
//! - other 401/403 (`API_DISABLED_FOR_ORG`, a missing permission) and 404 `NOT_FOUND` of a
//!   wrong object or field: the org's set-up; events wait.
//! - 400 (`INVALID_FIELD`, `REQUIRED_FIELD_MISSING`, `MALFORMED_ID`…): the record's fault,
//!   dead-lettered with Salesforce's words, masked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::oauth::Instance;
use crate::pace::Concurrent;
use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::crm::CrmError;
use wabridge_core::oauth::{OAuthError, TokenProvider};

/// How long events wait once the org's daily allocation is spent (it is a rolling 24 h: calls
/// of a day ago free room gradually).
pub const DAILY_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long every sender holds back after the concurrency cap refused a call.
const PAUSE_AFTER_CAP: Duration = Duration::from_millis(500);
/// Usage of the daily allocation, in percent, from which each answer's usage is logged as a
/// warning (once per crossing).
pub const USAGE_WARN_PERCENT: u64 = 80;

pub(crate) struct Client {
    http: reqwest::Client,
    /// The My Domain URL (used until a grant of this process names its `instance_url`).
    login: String,
    /// `/services/data/v62.0`.
    prefix: String,
    instance: Instance,
    tokens: Arc<TokenProvider>,
    slots: Concurrent,
    /// Whether the last answer refused our credentials (see `refused`).
    refused: AtomicBool,
    /// The last `Sforce-Limit-Info` api-usage: (used, allocation).
    usage: Mutex<Option<(u64, u64)>>,
    warned: AtomicBool,
}

/// An OAuth failure in the CRM's error classes.
pub(crate) fn oauth_error(e: OAuthError) -> CrmError {
    match e {
        OAuthError::Rejected(why) => CrmError::Unauthorized(format!(
            "Salesforce refused the client-credentials grant ({why}): check SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET and the app's run-as user (docs/crm/salesforce.md)"
        )),
        OAuthError::Unavailable(why) => CrmError::Transient(format!("Salesforce OAuth: {why}")),
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

/// Checks `SALESFORCE_API_VERSION`: `62.0` (a leading `v` is dropped), 46.0 or later (sObject
/// Collections upsert).
pub(crate) fn version_setting(value: &str) -> Result<String, ConfigError> {
    let v = value.trim().trim_start_matches(['v', 'V']);
    let major = v
        .strip_suffix(".0")
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| ConfigError::Invalid {
            name: wabridge_core::config::SALESFORCE_API_VERSION,
            reason: format!("`{value}` is not a version such as 62.0"),
        })?;
    if major < 46 {
        return Err(ConfigError::Invalid {
            name: wabridge_core::config::SALESFORCE_API_VERSION,
            reason: format!("{v}: sObject Collections upsert needs 46.0 or later"),
        });
    }
    Ok(format!("{major}.0"))
}

/// `(used, allocation)` of a `Sforce-Limit-Info` value (`api-usage=18/5000; per-app-…`).
pub(crate) fn api_usage(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// The first `errorCode` and `message` of Salesforce's error array.
fn first_error(body: &Value) -> (&str, &str) {
    let first = &body[0];
    (
        first["errorCode"].as_str().unwrap_or_default(),
        first["message"].as_str().unwrap_or_default(),
    )
}

impl Client {
    pub fn new(
        login: &str,
        version: &str,
        instance: Instance,
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
            login: login.trim_end_matches('/').to_string(),
            prefix: format!("/services/data/v{version}"),
            instance,
            tokens,
            slots: Concurrent::new(concurrency),
            refused: AtomicBool::new(false),
            usage: Mutex::new(None),
            warned: AtomicBool::new(false),
        })
    }

    /// Sends one request (JSON body when given) to `{instance}/services/data/vXX.X{path}`; a
    /// 2xx is its JSON body (`Null` when empty), anything else its class of error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let mut retried = false;
        loop {
            let token = self.tokens.access_token().await.map_err(oauth_error)?;
            match self.send(&method, path, body, &token).await? {
                Answer::Ok(v) => return Ok(v),
                Answer::ExpiredSession(_) if !retried => {
                    tracing::info!("salesforce: session refused (INVALID_SESSION_ID); new grant");
                    self.tokens.invalidate(&token).await;
                    retried = true;
                }
                Answer::ExpiredSession(e) | Answer::Failed(e) => return Err(e),
            }
        }
    }

    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
    ) -> Result<Answer, CrmError> {
        let _slot = self.slots.slot().await;
        let base = self.instance.get().unwrap_or_else(|| self.login.clone());
        let mut request = self
            .http
            .request(method.clone(), format!("{base}{}{path}", self.prefix))
            .header("accept", "application/json")
            .header("authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        if let Some(info) = response
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
        {
            self.note_usage(info);
        }
        let text = response.text().await.unwrap_or_default();
        self.refused
            .store(matches!(status, 401 | 403), Ordering::Relaxed);
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(Answer::Ok(parsed));
        }
        let (code, message) = first_error(&parsed);
        if status == 403 && code == "REQUEST_LIMIT_EXCEEDED" {
            if message.contains("TotalRequests") {
                tracing::warn!(
                    "salesforce: the org's daily API allocation is spent; events wait {DAILY_LIMIT_WAIT:?}"
                );
                return Ok(Answer::Failed(CrmError::RateLimited(Some(
                    DAILY_LIMIT_WAIT,
                ))));
            }
            // The cap on long-running calls in flight (another process of this org): nobody
            // starts a call until the pause is over.
            self.slots.pause_until(Instant::now() + PAUSE_AFTER_CAP);
            return Ok(Answer::Failed(CrmError::RateLimited(None)));
        }
        if status == 404 {
            // A wrong object, field or API version: the org's set-up, not the record.
            return Ok(Answer::Failed(CrmError::Unauthorized(format!(
                "HTTP 404 {code}: {} (SALESFORCE_API_VERSION, SALESFORCE_OBJECT, the mapping's External ID fields)",
                wabridge_core::redact::mask_digit_runs(message)
            ))));
        }
        let error = classify_status(status, None, &text);
        if status == 401 && code == "INVALID_SESSION_ID" {
            return Ok(Answer::ExpiredSession(error));
        }
        Ok(Answer::Failed(error))
    }

    fn note_usage(&self, info: &str) {
        let Some((used, max)) = api_usage(info) else {
            return;
        };
        *self.usage.lock().unwrap() = Some((used, max));
        let high = max > 0 && used * 100 >= max * USAGE_WARN_PERCENT;
        if high && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                used,
                allocation = max,
                "salesforce: the org has used {USAGE_WARN_PERCENT}% or more of its daily API allocation"
            );
        } else if !high {
            self.warned.store(false, Ordering::Relaxed);
        }
    }

    /// The org's API usage from the last answer's `Sforce-Limit-Info`.
    pub fn usage(&self) -> Option<(u64, u64)> {
        *self.usage.lock().unwrap()
    }

    /// Whether the usage warning is raised now (usage at or past [`USAGE_WARN_PERCENT`]).
    pub fn usage_warned(&self) -> bool {
        self.warned.load(Ordering::Relaxed)
    }

    /// Whether Salesforce refused the credentials on the last call: a write skipped because
    /// this process already made it would report success for credentials that no longer work.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

enum Answer {
    Ok(Value),
    ExpiredSession(CrmError),
    Failed(CrmError),
}

/// `value` as a SOQL string literal: quotes and backslashes escaped.
pub(crate) fn soql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `value` URL-encoded for a query string.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_versions_and_literals() {
        assert_eq!(api_usage("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            api_usage("api-usage=4100/5000; per-app-api-usage=17/250(appName=wabridge)"),
            Some((4100, 5000))
        );
        assert_eq!(api_usage("per-app-api-usage=17/250"), None);
        assert_eq!(version_setting("v62.0").unwrap(), "62.0");
        let e = version_setting("45.0").unwrap_err().to_string();
        assert!(
            e.contains("SALESFORCE_API_VERSION") && e.contains("46.0"),
            "{e}"
        );
        assert!(version_setting("latest").is_err());
        assert_eq!(soql_literal("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn oauth_failures_wait_and_never_dead_letter() {
        assert!(matches!(
            oauth_error(OAuthError::Rejected("invalid_client".into())),
            CrmError::Unauthorized(m) if m.contains("invalid_client") && m.contains("SALESFORCE_CLIENT_SECRET")
        ));
        assert!(matches!(
            oauth_error(OAuthError::Unavailable("503".into())),
            CrmError::Transient(_)
        ));
    }
}
