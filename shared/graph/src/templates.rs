//! `GET /{waba-id}/message_templates`: the pages the template sync reads.

use std::sync::Arc;

use async_trait::async_trait;
use wabridge_core::sends::template_sync::{
    parse_page, Page, SyncError, TemplateSource, TemplateSync, TemplateSyncConfig, FIELDS,
};

use crate::{http_client, json_call};

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
        let request = self
            .http
            .get(self.config.templates_url())
            .query(&query)
            .bearer_auth(&self.config.access_token);
        let body = json_call(request, self.config.max_page_bytes).await?;
        parse_page(&body)
    }
}
