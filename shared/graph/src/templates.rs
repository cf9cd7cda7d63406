//! `GET /{waba-id}/message_templates`: the pages the template sync reads.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::sends::classify::classify_response;
use wabridge_core::sends::template_sync::{
    parse_page, Page, SyncError, TemplateSource, TemplateSync, TemplateSyncConfig, FIELDS,
};

use crate::{classify_transport, http_client};
use wabridge_http::retry_after;

/// The template sync over the Graph API.
pub fn template_sync(config: TemplateSyncConfig) -> TemplateSync {
    let source = GraphTemplates::new(config.clone());
    TemplateSync::new(config, Arc::new(source))
}

/// Reads template pages from the Graph API; bounded by the config's page size limit.
#[derive(Clone)]
pub struct GraphTemplates {
    http: reqwest::Client,
    config: Arc<TemplateSyncConfig>,
}

impl GraphTemplates {
    pub fn new(config: TemplateSyncConfig) -> GraphTemplates {
        GraphTemplates {
            http: http_client(config.timeout),
            config: Arc::new(config),
        }
    }
}

#[async_trait]
impl TemplateSource for GraphTemplates {
    async fn fetch_page(&self, after: Option<&str>) -> Result<Page, SyncError> {
        let limit = self.config.page_size.to_string();
        let mut query: Vec<(&str, &str)> = vec![("fields", FIELDS), ("limit", &limit)];
        if let Some(after) = after {
            query.push(("after", after));
        }
        let mut response = self
            .http
            .get(self.config.templates_url())
            .query(&query)
            .bearer_auth(&self.config.access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SyncError::Graph(classify_transport(&e)))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let limit = self.config.max_page_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(SyncError::TooLarge { limit });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SyncError::Graph(classify_transport(&e)))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(SyncError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !(200..300).contains(&status) {
            return Err(SyncError::Graph(classify_response(
                status,
                body.as_ref(),
                retry_after,
            )));
        }
        let body = body.ok_or_else(|| SyncError::Invalid("the answer is not JSON".into()))?;
        parse_page(&body)
    }
}
