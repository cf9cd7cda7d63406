//! Meta's media endpoints for the inbound pipeline: `GET /{version}/{media-id}` (where the file
//! is, its type, size and SHA-256) and the download from the URL it gives, both with the
//! number's token. Implements `wabridge_core::media::fetch::MediaSource`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::media::fetch::{FetchError, MediaInfo, MediaSink, MediaSource};
use wabridge_core::media::Sha256Digest;
use wabridge_core::sends::classify::SendFailure;
use wabridge_core::sends::template_sync::SyncError;

use crate::{classify_transport, http_client, json_call};
use wabridge_http::retry_after;

/// Largest answer of the media endpoint read (a few hundred bytes).
const MAX_INFO_BYTES: usize = 16 * 1024;

/// Where and as whom media is fetched.
#[derive(Clone)]
pub struct MediaConfig {
    pub base_url: String,
    pub version: String,
    pub access_token: String,
    /// Meta then refuses media of another number (`?phone_number_id=`).
    pub phone_number_id: Option<String>,
    /// One request's timeout (a download's whole body included).
    pub timeout: Duration,
}

impl std::fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("MediaConfig")
            .field("base_url", &self.base_url)
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct GraphMedia {
    http: reqwest::Client,
    config: Arc<MediaConfig>,
}

impl GraphMedia {
    pub fn new(config: MediaConfig) -> GraphMedia {
        GraphMedia {
            http: http_client(config.timeout),
            config: Arc::new(config),
        }
    }
}

fn transport(e: &reqwest::Error) -> FetchError {
    retry(classify_transport(e))
}

fn retry(f: SendFailure) -> FetchError {
    FetchError::Retry {
        reason: f.reason().to_string(),
        retry_after: match f {
            SendFailure::Retry { retry_after, .. } => retry_after,
            _ => None,
        },
    }
}

/// `file_size` is a string in Meta's spec and a number in its examples: read either.
fn size_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl MediaSource for GraphMedia {
    async fn info(
        &self,
        media_id: &str,
        phone_number_id: Option<&str>,
    ) -> Result<MediaInfo, FetchError> {
        if media_id.is_empty()
            || !media_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FetchError::Gone {
                reason: "the media id is not an id".into(),
            });
        }
        let url = format!(
            "{}/{}/{media_id}",
            self.config.base_url.trim_end_matches('/'),
            self.config.version.trim_matches('/')
        );
        let mut request = self.http.get(url).bearer_auth(&self.config.access_token);
        if let Some(id) = phone_number_id.or(self.config.phone_number_id.as_deref()) {
            request = request.query(&[("phone_number_id", id)]);
        }
        let body = json_call(request, MAX_INFO_BYTES)
            .await
            .map_err(|e| match e {
                SyncError::Graph(f @ SendFailure::Retry { .. }) => retry(f),
                // 100: "Object with ID … does not exist" (or not ours); no code: a bare 4xx.
                SyncError::Graph(
                    f @ SendFailure::Terminal {
                        code: Some(100) | None,
                        ..
                    },
                ) => FetchError::Gone {
                    reason: f.reason().to_string(),
                },
                // Anything else (a permission, a paused number) may be fixed by someone: it
                // waits within the retry horizon and dead-letters with Meta's words after.
                SyncError::Graph(f) => FetchError::Retry {
                    reason: f.reason().to_string(),
                    retry_after: None,
                },
                other => FetchError::Retry {
                    reason: format!("the media endpoint's answer: {other}"),
                    retry_after: None,
                },
            })?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let url = text("url").filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        let (Some(url), Some(mime_type)) = (url, text("mime_type")) else {
            return Err(FetchError::Gone {
                reason: "Meta's answer names no download URL or type".into(),
            });
        };
        Ok(MediaInfo {
            url,
            mime_type,
            sha256: text("sha256").as_deref().and_then(Sha256Digest::parse),
            file_size: size_of(body.get("file_size")),
        })
    }

    async fn download(&self, url: &str, sink: &mut dyn MediaSink) -> Result<(), FetchError> {
        let mut response = self
            .http
            .get(url)
            .bearer_auth(&self.config.access_token)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            // The URL lives 5 minutes: the CDN refuses it after.
            401 | 403 | 404 | 410 => return Err(FetchError::UrlExpired),
            _ => {
                return Err(FetchError::Retry {
                    reason: format!("the media download answered HTTP {status}"),
                    retry_after: retry_after(response.headers()),
                })
            }
        }
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            sink.write(&chunk).await?;
        }
        Ok(())
    }
}
