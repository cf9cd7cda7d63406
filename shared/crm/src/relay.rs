//! The HTTP side of a `relay` destination (`docs/destinations.md`): one POST of Meta's envelope
//! with `X-Hub-Signature-256`, as Meta posts webhooks, so a bot written for Meta's webhooks
//! verifies it unchanged. Answers are classified as the webhook CRM's are.

use std::time::Duration;

use async_trait::async_trait;

use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::crm::CrmError;
use wabridge_core::numbers::relay::RelayPost;
use wabridge_http::retry_after;

pub struct HttpRelay {
    client: reqwest::Client,
    url: String,
}

impl HttpRelay {
    /// A relay to `url` (checked http(s) by the registry), each POST bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<HttpRelay, ConfigError> {
        let client = wabridge_http::client(wabridge_http::ClientOptions::with_timeout(timeout))
            .map_err(ConfigError::HttpClient)?;
        Ok(HttpRelay {
            client,
            url: url.to_string(),
        })
    }
}

#[async_trait]
impl RelayPost for HttpRelay {
    async fn post(&self, body: String, signature: String) -> Result<(), CrmError> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let hint = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        Err(classify_status(status, hint, &text))
    }
}
