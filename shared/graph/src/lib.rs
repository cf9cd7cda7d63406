//! Meta's Graph API over HTTP (reqwest): the sender's message client and media upload, and the
//! template sync's page source, implementing the ports `wabridge_core::sends::graph::MessageApi`,
//! `wabridge_core::sends::media::MediaUploadApi` and
//! `wabridge_core::sends::template_sync::TemplateSource`; and the reads of `numbers discover`
//! ([`phone_numbers`]). The Conversions API client of
//! `wabridge-attribution` builds on [`http_client`] too.
//!
//! May depend on `wabridge-core` and `reqwest`; never on an engine (SQLite, AWS) or a CRM.

pub mod admin;
pub mod media;
pub mod messages;
pub mod phone_numbers;
pub mod templates;
pub mod upload;

use std::time::Duration;

use serde_json::Value;
use wabridge_core::sends::classify::{classify_response, SendFailure};
use wabridge_core::sends::template_sync::SyncError;

pub use admin::GraphTemplateAdmin;
pub use media::{GraphMedia, MediaConfig};
pub use messages::GraphClient;
pub use phone_numbers::GraphNumbers;
pub use templates::{template_sync, GraphTemplates};
pub use upload::GraphUploads;

/// The HTTP client of every Graph API call (see `wabridge_http::client`).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    wabridge_http::client(wabridge_http::ClientOptions::with_timeout(timeout))
        .expect("the HTTP client builds")
}

/// A request that got no answer (timeout, connection refused, reset): retry with backoff.
pub fn classify_transport(e: &reqwest::Error) -> SendFailure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed in transport"
    };
    SendFailure::Retry {
        code: None,
        reason: format!("Graph API request {what}"),
        retry_after: None,
    }
}

/// Sends a Graph API request and reads its JSON answer, at most `limit` bytes (checked against
/// `Content-Length` first, then while reading); a refusal is classified like the sender's.
pub(crate) async fn json_call(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Value, SyncError> {
    let mut response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| SyncError::Graph(classify_transport(&e)))?;
    let status = response.status().as_u16();
    let retry_after = wabridge_http::retry_after(response.headers());
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
    body.ok_or_else(|| SyncError::Invalid("the answer is not JSON".into()))
}
