//! Template management over the Graph API (`templates plan | apply`): the list, create, edit and
//! delete endpoints of `/{WABA-ID}/message_templates` and `/{template-id}`, and the Resumable
//! Upload API for media header samples (`/{app-id}/uploads`, then `/upload:{session}`).

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::sends::template_sync::{
    RemoteTemplate, SyncError, TemplateSync, TemplateSyncConfig,
};
use wabridge_core::template_files::apply::{Created, TemplateAdmin};

use crate::{http_client, json_call, GraphTemplates};

/// Largest answer read from a management call (they are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The client. `app_id` (`WHATSAPP_APP_ID`) is needed only to upload media header samples.
#[derive(Clone)]
pub struct GraphTemplateAdmin {
    http: reqwest::Client,
    config: Arc<TemplateSyncConfig>,
    pages: TemplateSync,
    app_id: Option<String>,
}

impl std::fmt::Debug for GraphTemplateAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("GraphTemplateAdmin")
            .field("url", &self.config.templates_url())
            .finish()
    }
}

impl GraphTemplateAdmin {
    pub fn new(config: TemplateSyncConfig, app_id: Option<String>) -> GraphTemplateAdmin {
        let pages = TemplateSync::new(
            config.clone(),
            Arc::new(GraphTemplates::new(config.clone())),
        );
        GraphTemplateAdmin {
            http: http_client(config.timeout),
            config: Arc::new(config),
            pages,
            app_id,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            self.config.version.trim_matches('/'),
            path
        )
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, SyncError> {
        json_call(request, MAX_ANSWER_BYTES).await
    }

    fn json_post(&self, url: String, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .bearer_auth(&self.config.access_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }
}

fn success(answer: &Value, what: &str) -> Result<(), SyncError> {
    match answer.get("success").and_then(Value::as_bool) {
        Some(false) => Err(SyncError::Invalid(format!(
            "Meta answered success: false to the {what}"
        ))),
        _ => Ok(()),
    }
}

#[async_trait]
impl TemplateAdmin for GraphTemplateAdmin {
    async fn list(&self) -> Result<Vec<RemoteTemplate>, SyncError> {
        self.pages.list_all().await
    }

    async fn create(&self, body: &Value) -> Result<Created, SyncError> {
        let answer = self
            .call(self.json_post(self.config.templates_url(), body))
            .await?;
        let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_string);
        let id = text("id")
            .or_else(|| {
                answer
                    .get("id")
                    .and_then(Value::as_u64)
                    .map(|n| n.to_string())
            })
            .ok_or_else(|| SyncError::Invalid("the create answer has no template id".into()))?;
        Ok(Created {
            id,
            status: text("status"),
            category: text("category"),
        })
    }

    async fn edit(&self, template_id: &str, body: &Value) -> Result<(), SyncError> {
        if !template_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SyncError::Invalid("the template id is not an id".into()));
        }
        let answer = self
            .call(self.json_post(self.url(template_id), body))
            .await?;
        success(&answer, "edit")
    }

    async fn delete(&self, name: &str, template_id: &str) -> Result<(), SyncError> {
        let request = self
            .http
            .delete(self.config.templates_url())
            .query(&[("name", name), ("hsm_id", template_id)])
            .bearer_auth(&self.config.access_token);
        let answer = self.call(request).await?;
        success(&answer, "delete")
    }

    async fn upload_sample(
        &self,
        file_name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<String, SyncError> {
        let app_id = self.app_id.as_deref().ok_or_else(|| {
            SyncError::Invalid(
                "a media header sample is uploaded through the app (set WHATSAPP_APP_ID)".into(),
            )
        })?;
        let length = bytes.len().to_string();
        let session = self
            .call(
                self.http
                    .post(self.url(&format!("{app_id}/uploads")))
                    .query(&[
                        ("file_name", file_name),
                        ("file_length", &length),
                        ("file_type", mime),
                    ])
                    .bearer_auth(&self.config.access_token),
            )
            .await?;
        let id = session
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| id.starts_with("upload:") && !id.contains('/'))
            .ok_or_else(|| {
                SyncError::Invalid("the upload session answer has no upload id".into())
            })?;
        let answer = self
            .call(
                self.http
                    .post(self.url(id))
                    .header(
                        reqwest::header::AUTHORIZATION,
                        format!("OAuth {}", self.config.access_token),
                    )
                    .header("file_offset", "0")
                    .body(bytes.to_vec()),
            )
            .await?;
        answer
            .get("h")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SyncError::Invalid("the upload answer has no file handle".into()))
    }
}
