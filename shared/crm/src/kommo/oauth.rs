//! Kommo's side of the shared OAuth token provider: its token endpoint
//! (`POST https://{subdomain}.kommo.com/oauth2/access_token`, JSON body, refresh-token grant).
//!
//! Kommo access tokens live a day; its refresh tokens are single-use: every refresh answers a
//! new one and the old one dies. Two processes refreshing with the same one would break the
//! connection until someone re-authorises, which is what the provider's store and lease are
//! for. The endpoint is on the account's host, so its calls take turns on the account's pacer
//! like every API call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::time::Instant;
use wabridge_core::crm::CrmError;
use wabridge_core::oauth::{Grant, OAuthError, TokenEndpoint, TokenStore};
use wabridge_http::retry_after;

use crate::pace::Spaced;
use crate::ConfigError;

/// The OAuth settings of a Kommo integration. Its `Debug` shows no secret.
#[derive(Clone)]
pub struct KommoOAuth {
    /// The integration's ID (`KOMMO_CLIENT_ID`).
    pub client_id: String,
    /// The integration's secret key (`KOMMO_CLIENT_SECRET`).
    pub client_secret: String,
    /// The redirect URI the integration was registered with, sent as it is: Kommo compares it.
    pub redirect_uri: String,
    /// The refresh token from the secret (`KOMMO_REFRESH_TOKEN`): used before the first
    /// refresh, and again when the stored one is refused (an operator re-authorised).
    pub refresh_token: String,
    /// Where the rotated tokens live, shared by every process (the engine's store).
    pub store: Arc<dyn TokenStore>,
}

impl std::fmt::Debug for KommoOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KommoOAuth")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Kommo's token endpoint for one integration and account.
pub(crate) struct KommoTokenEndpoint {
    http: reqwest::Client,
    url: String,
    oauth: KommoOAuth,
    pacer: Arc<Spaced>,
}

impl KommoTokenEndpoint {
    /// `base`: the account's host (`https://acme.kommo.com`); `pacer`: the account's.
    pub fn new(
        base: &str,
        oauth: KommoOAuth,
        timeout: Duration,
        pacer: Arc<Spaced>,
    ) -> Result<KommoTokenEndpoint, ConfigError> {
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 2,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(KommoTokenEndpoint {
            http,
            url: format!("{}/oauth2/access_token", base.trim_end_matches('/')),
            oauth,
            pacer,
        })
    }
}

#[async_trait]
impl TokenEndpoint for KommoTokenEndpoint {
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, OAuthError> {
        let body = json!({
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "redirect_uri": self.oauth.redirect_uri,
        });
        self.pacer.slot().await;
        let response = self
            .http
            .post(&self.url)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let hint = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        grant(status, &text).inspect_err(|_| {
            if status == 429 {
                // The account's second is spent: every sender holds back, as for API calls.
                let wait = hint
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(60));
                self.pacer.pause_until(Instant::now() + wait);
            }
        })
    }
}

/// Kommo's answer to a refresh: the grant, or why not. A 400 or 401 is the refresh token or the
/// client refused (`{"hint":"Token has been revoked", …}` for a spent refresh token): someone
/// must re-authorise. Only the answer's words reach the error, never a token.
fn grant(status: u16, text: &str) -> Result<Grant, OAuthError> {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        // The refresh token rotates on every refresh: the grant carries the new one.
        return Grant::from_answer(status, &body);
    }
    let words: Vec<&str> = ["hint", "title", "detail"]
        .iter()
        .filter_map(|k| body[*k].as_str())
        .collect();
    let why = format!("HTTP {status}: {}", words.join("; "));
    match status {
        400 | 401 => Err(OAuthError::Rejected(why)),
        // 403 included: Kommo answers it to everything from an IP it blocked after repeated
        // 429s, which passes; the credentials are not at fault.
        _ => Err(OAuthError::Unavailable(why)),
    }
}

/// An OAuth failure in the CRM's error classes: refused credentials wait (the circuit counts
/// them, the alarm fires); an unavailable endpoint or store is retried.
pub(crate) fn oauth_error(e: OAuthError) -> CrmError {
    match e {
        OAuthError::Rejected(why) => CrmError::Unauthorized(format!(
            "Kommo refused the OAuth refresh token or integration ({why}): re-authorise the integration and put the new KOMMO_REFRESH_TOKEN in the secret"
        )),
        OAuthError::Unavailable(why) => {
            CrmError::Transient(format!("Kommo token endpoint: {why}"))
        }
        OAuthError::Store(e) => CrmError::Transient(format!("OAuth token store: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kommo_answers_become_grants_or_refusals() {
        let ok = grant(
            200,
            r#"{"token_type":"Bearer","expires_in":86400,"access_token":"at-1","refresh_token":"rt-2"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token, "at-1");
        assert_eq!(ok.refresh_token.as_deref(), Some("rt-2"));
        assert_eq!(ok.expires_in, Some(Duration::from_secs(86_400)));
        // A spent refresh token, as Kommo answers it.
        let spent = r#"{"hint":"Token has been revoked","title":"Invalid request","type":"https://developers.kommo.com/v3/errors/OAuthProblemJson","status":401,"detail":"Some parameters are missing or invalid"}"#;
        for status in [400, 401] {
            match grant(status, spent) {
                Err(OAuthError::Rejected(why)) => {
                    assert!(why.contains("Token has been revoked"), "{why}")
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [403, 429, 500, 503] {
            assert!(matches!(
                grant(status, "<html>busy</html>"),
                Err(OAuthError::Unavailable(_))
            ));
        }
        assert!(matches!(grant(200, "{}"), Err(OAuthError::Unavailable(_))));
        assert!(matches!(
            oauth_error(OAuthError::Rejected("x".into())),
            CrmError::Unauthorized(m) if m.contains("KOMMO_REFRESH_TOKEN")
        ));
    }
}
