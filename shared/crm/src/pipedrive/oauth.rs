//! Pipedrive's side of the shared OAuth token provider: the refresh-token grant at Pipedrive's
//! OAuth server (`POST https://oauth.pipedrive.com/oauth/token`, form-encoded
//! `grant_type=refresh_token&refresh_token=…`, the app's client id and secret as HTTP Basic
//! client authentication).
//!
//! Access tokens live an hour (`expires_in` 3599). Pipedrive documents a refused refresh token
//! as "not valid for provided client credentials or it was already exchanged": the answer's
//! `refresh_token` is kept as the new one (the provider stores it before the access token is
//! used), so a rotation never loses it. Every answer since June 2020 names `api_domain`, the
//! company's own host (`https://acme.pipedrive.com`); calls go there ([`ApiDomain`]). A process
//! that took its token from the store, not from its own refresh, calls `PIPEDRIVE_API_URL`,
//! which serves the same API for OAuth tokens.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::oauth::{Grant, OAuthError, TokenEndpoint};

use crate::ConfigError;

/// The `api_domain` of this process's last refresh, shared with the API client.
#[derive(Debug, Clone, Default)]
pub struct ApiDomain(Arc<RwLock<Option<String>>>);

impl ApiDomain {
    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap().clone()
    }

    fn set(&self, url: String) {
        *self.0.write().unwrap() = Some(url);
    }
}

/// `value` as an API host to call: an https origin (no credentials, path or query), or exactly
/// the configured base (a test server on http). Anything else is ignored: a token answer must
/// not send our bearer to an arbitrary place.
pub(crate) fn checked_api_domain(value: &str, configured: &str) -> Option<String> {
    let value = value.trim().trim_end_matches('/');
    if value == configured.trim_end_matches('/') {
        return Some(value.to_string());
    }
    let url = url::Url::parse(value).ok()?;
    let origin_only = url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    (url.scheme() == "https" && url.host_str().is_some() && origin_only).then(|| value.to_string())
}

/// Pipedrive's token endpoint for one OAuth app. Its `Debug` shows no secret.
pub struct PipedriveTokenEndpoint {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: String,
    /// `PIPEDRIVE_API_URL`: accepted as an `api_domain` even over http (tests).
    configured_base: String,
    api_domain: ApiDomain,
}

impl std::fmt::Debug for PipedriveTokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveTokenEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PipedriveTokenEndpoint {
    /// `oauth_url`: Pipedrive's OAuth server (`https://oauth.pipedrive.com`); `configured_base`:
    /// `PIPEDRIVE_API_URL`; each refresh's `api_domain` goes to `api_domain`.
    pub fn new(
        oauth_url: &str,
        client_id: &str,
        client_secret: &str,
        configured_base: &str,
        api_domain: ApiDomain,
        timeout: Duration,
    ) -> Result<PipedriveTokenEndpoint, ConfigError> {
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 2,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(PipedriveTokenEndpoint {
            http,
            url: format!("{}/oauth/token", oauth_url.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            configured_base: configured_base.into(),
            api_domain,
        })
    }
}

/// Pipedrive's words for an answer (`message`, or OAuth's `error` / `error_description`), never
/// a token: its error bodies name the problem only.
fn words(body: &Value, status: u16) -> String {
    let message = body["message"]
        .as_str()
        .or(body["error_description"].as_str())
        .or(body["error"].as_str());
    match message {
        Some(m) => format!("HTTP {status}: {}", m.chars().take(200).collect::<String>()),
        None => format!("HTTP {status}"),
    }
}

#[async_trait]
impl TokenEndpoint for PipedriveTokenEndpoint {
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, OAuthError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .finish();
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 429 || status >= 500 {
            return Err(OAuthError::Unavailable(words(&body, status)));
        }
        if !(200..300).contains(&status) {
            // 400 "Invalid grant: refresh_token is invalid" (revoked, spent, unused for 60
            // days), 401 "Invalid client: client is invalid": someone must re-authorise.
            return Err(OAuthError::Rejected(words(&body, status)));
        }
        let grant = Grant::from_answer(status, &body)?;
        if let Some(domain) = body["api_domain"].as_str() {
            match checked_api_domain(domain, &self.configured_base) {
                Some(url) => self.api_domain.set(url),
                None => tracing::warn!(
                    "pipedrive: ignoring the token answer's api_domain (not an https origin)"
                ),
            }
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_domains_are_https_origins_or_the_configured_base() {
        let base = "http://127.0.0.1:9000";
        let ok = |v: &str| checked_api_domain(v, base);
        assert_eq!(
            ok("https://acme.pipedrive.com/").as_deref(),
            Some("https://acme.pipedrive.com")
        );
        assert_eq!(ok("http://127.0.0.1:9000").as_deref(), Some(base));
        for bad in [
            "http://acme.pipedrive.com",
            "https://acme.pipedrive.com/api/v1",
            "https://user:pw@acme.pipedrive.com",
            "https://acme.pipedrive.com?x=1",
            "acme.pipedrive.com",
            "javascript:alert(1)",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
        let shown = format!(
            "{:?}",
            PipedriveTokenEndpoint::new(
                "https://oauth.pipedrive.com",
                "id",
                "s3cret",
                base,
                ApiDomain::default(),
                Duration::from_secs(1)
            )
            .unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
