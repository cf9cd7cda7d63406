//! Salesforce's side of the shared OAuth token provider: the client-credentials grant
//! (`POST {My Domain}/services/oauth2/token`, `grant_type=client_credentials`), which runs as
//! the integration user the External Client App names.
//!
//! The grant has no refresh token and its answer no `expires_in` (the session lasts the org's
//! timeout, 2 h by default): the provider assumes its short default lifetime, and a 401
//! `INVALID_SESSION_ID` (a session ended early) invalidates the token for a new grant. Every
//! process shares one token through the engine's store: each grant is a login, and Salesforce
//! limits logins per user per hour.
//!
//! The answer's `instance_url` is where the REST API lives; it is kept for this process's calls
//! ([`Instance`]). A process that took its token from the store calls the My Domain URL, which
//! serves the same API.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::oauth::{Grant, OAuthError, TokenEndpoint};

use crate::ConfigError;

/// What the provider passes for a refresh token: the client-credentials grant has none.
pub const NO_REFRESH_TOKEN: &str = "client-credentials";

/// The `instance_url` of this process's last grant, shared with the API client.
#[derive(Debug, Clone, Default)]
pub struct Instance(Arc<RwLock<Option<String>>>);

impl Instance {
    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap().clone()
    }

    fn set(&self, url: &str) {
        *self.0.write().unwrap() = Some(url.trim_end_matches('/').to_string());
    }
}

/// The org's token endpoint for one client. Its `Debug` shows no secret.
pub struct ClientCredentials {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: String,
    instance: Instance,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// `login_url`: the org's My Domain (`https://acme.my.salesforce.com`); the
    /// client-credentials flow is not served by `login.salesforce.com`.
    pub fn new(
        login_url: &str,
        client_id: &str,
        client_secret: &str,
        instance: Instance,
        timeout: Duration,
    ) -> Result<ClientCredentials, ConfigError> {
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 2,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(ClientCredentials {
            http,
            url: format!("{}/services/oauth2/token", login_url.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            instance,
        })
    }
}

/// Salesforce's OAuth errors that mean the client or its set-up is wrong (a wrong secret, no
/// integration user, the flow not enabled): someone must fix the app.
const REFUSALS: &[&str] = &[
    "invalid_client",
    "invalid_client_id",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "inactive_user",
    "inactive_org",
];

#[async_trait]
impl TokenEndpoint for ClientCredentials {
    async fn refresh(&self, _no_refresh_token: &str) -> Result<Grant, OAuthError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .finish();
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(error) = body["error"].as_str() {
            // `error_description` names the problem ("invalid client credentials"), no secret.
            let why = format!(
                "{error}: {}",
                body["error_description"].as_str().unwrap_or_default()
            );
            return Err(if REFUSALS.contains(&error) {
                OAuthError::Rejected(why)
            } else {
                OAuthError::Unavailable(format!("HTTP {status}: {why}"))
            });
        }
        // No refresh token and no `expires_in`: the org's session timeout applies.
        let grant = Grant::from_answer(status, &body)?;
        if let Some(url) = body["instance_url"].as_str() {
            if url.starts_with("https://") || url.starts_with("http://") {
                self.instance.set(url);
            }
        }
        Ok(grant)
    }
}
