//! Builds the core HTTP API over the embedded engine.

use std::sync::Arc;

use wabridge_core::http::{ApiError, Request, Response};
use wabridge_core::inbox::Inbox;

use crate::secrets::Secrets;

/// The core API as the server calls it.
pub struct ApiHandle {
    _inbox: Arc<dyn Inbox>,
}

impl ApiHandle {
    pub async fn handle(&self, _request: Request) -> Response {
        ApiError::Unavailable("ingest API not wired yet".into()).into_response()
    }
}

pub fn build_api(
    inbox: Arc<dyn Inbox>,
    _secrets: &Secrets,
    _max_body: usize,
) -> Result<ApiHandle, String> {
    Ok(ApiHandle { _inbox: inbox })
}
