//! Zoho's side of the shared OAuth token provider: its data centres (accounts server and API
//! domain) and its token endpoint (`POST {accounts}/oauth/v2/token`, refresh-token grant).
//!
//! Zoho access tokens live an hour and refresh tokens do not rotate; a refresh token makes at
//! most ten access tokens in ten minutes (then Zoho blocks it for the rest of them), which is
//! why every process and Lambda shares one token through the engine's store instead of each
//! refreshing its own.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::config;
use wabridge_core::oauth::{Grant, OAuthError, TokenEndpoint};

use crate::ConfigError;

/// Zoho's data centres: `ZOHO_DATA_CENTER` → (accounts server, API domain) (Zoho's "Multi DC"
/// pages for CRM and Accounts).
pub const DATA_CENTERS: &[(&str, &str, &str)] = &[
    (
        "us",
        "https://accounts.zoho.com",
        "https://www.zohoapis.com",
    ),
    ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    ("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
    (
        "au",
        "https://accounts.zoho.com.au",
        "https://www.zohoapis.com.au",
    ),
    ("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    (
        "ca",
        "https://accounts.zohocloud.ca",
        "https://www.zohoapis.ca",
    ),
    ("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    ("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    (
        "cn",
        "https://accounts.zoho.com.cn",
        "https://www.zohoapis.com.cn",
    ),
];

/// The accounts server and API domain of data centre `dc` (`us`, `eu`, … or a domain suffix
/// such as `com.au`).
pub fn data_center(dc: &str) -> Result<(&'static str, &'static str), ConfigError> {
    let dc = dc.trim().trim_start_matches('.').to_ascii_lowercase();
    let alias = match dc.as_str() {
        "com" => "us",
        "com.au" => "au",
        "com.cn" => "cn",
        other => other,
    };
    DATA_CENTERS
        .iter()
        .find(|(name, _, _)| *name == alias)
        .map(|(_, accounts, api)| (*accounts, *api))
        .ok_or_else(|| ConfigError::Invalid {
            name: config::ZOHO_DATA_CENTER,
            reason: format!(
                "`{dc}` is not a Zoho data centre (one of {})",
                DATA_CENTERS
                    .iter()
                    .map(|d| d.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Zoho Accounts' token endpoint for one OAuth client. Its `Debug` shows no secret.
pub struct ZohoTokenEndpoint {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for ZohoTokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZohoTokenEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ZohoTokenEndpoint {
    /// `accounts`: the data centre's accounts server (`https://accounts.zoho.eu`).
    pub fn new(
        accounts: &str,
        client_id: &str,
        client_secret: &str,
        timeout: Duration,
    ) -> Result<ZohoTokenEndpoint, ConfigError> {
        let http = wabridge_http::client(wabridge_http::ClientOptions {
            timeout,
            max_idle_per_host: 2,
        })
        .map_err(ConfigError::HttpClient)?;
        Ok(ZohoTokenEndpoint {
            http,
            url: format!("{}/oauth/v2/token", accounts.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        })
    }
}

/// Zoho's answers that mean the grant or the client is gone: someone must re-authorise.
const REFUSALS: &[&str] = &[
    "invalid_code",
    "invalid_client",
    "invalid_client_secret",
    "invalid_grant",
    "unauthorized_client",
];

#[async_trait]
impl TokenEndpoint for ZohoTokenEndpoint {
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, OAuthError> {
        // In the form body, not the query string Zoho also takes: URLs reach proxy logs.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("refresh_token", refresh_token)
            .finish();
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| OAuthError::Unavailable(format!("HTTP {status}: {}", e.without_url())))?;
        // Zoho answers a refused grant with HTTP 200 and `{"error": "invalid_code"}`.
        if let Some(error) = body["error"].as_str() {
            return Err(if REFUSALS.contains(&error) {
                OAuthError::Rejected(error.to_string())
            } else {
                // `Access Denied` ("too many requests continuously"), outages.
                OAuthError::Unavailable(format!("HTTP {status}: {error}"))
            });
        }
        // Zoho's refresh tokens do not rotate: its answer carries none.
        Grant::from_answer(status, &body)
    }
}

/// Kept here for the paths that name it; it lives in core, shared by the OAuth CRMs.
pub use wabridge_core::oauth::MemoryTokenStore;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_centres_by_name_or_domain() {
        assert_eq!(
            data_center("EU").unwrap(),
            ("https://accounts.zoho.eu", "https://www.zohoapis.eu")
        );
        assert_eq!(
            data_center(".com.au").unwrap().1,
            "https://www.zohoapis.com.au"
        );
        assert_eq!(
            data_center("ca").unwrap().0,
            "https://accounts.zohocloud.ca"
        );
        let e = data_center("mars").unwrap_err().to_string();
        assert!(e.contains("ZOHO_DATA_CENTER") && e.contains("mars"), "{e}");
        let shown = format!(
            "{:?}",
            ZohoTokenEndpoint::new("https://a", "id", "s3cret", Duration::from_secs(1)).unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
