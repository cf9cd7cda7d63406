//! `POST /{version}/{phone-number-id}/messages`: the sender's client.

use std::sync::Arc;

use async_trait::async_trait;
use wabridge_core::sends::classify::SendFailure;
use wabridge_core::sends::graph::{
    read_answer, Accepted, GraphConfig, MessageApi, OutboundMessage,
};

use crate::{classify_transport, http_client};
use wabridge_http::retry_after;

/// The client: one per process, cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    config: Arc<GraphConfig>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("GraphClient")
            .field("url", &self.config.messages_url())
            .finish()
    }
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> GraphClient {
        GraphClient {
            http: http_client(config.timeout),
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }
}

#[async_trait]
impl MessageApi for GraphClient {
    fn call_budget(&self) -> Option<std::time::Duration> {
        Some(self.config.timeout)
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendFailure> {
        let response = self
            .http
            .post(self.config.messages_url())
            .bearer_auth(&self.config.access_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(message.to_json().to_string())
            .send()
            .await
            .map_err(|e| classify_transport(&e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|e| classify_transport(&e))?;
        read_answer(status, &bytes, retry_after)
    }
}
