//! Builds the core HTTP API over the embedded engine.

use std::sync::Arc;

use wabridge_core::api::Api;
use wabridge_core::config;
use wabridge_core::inbox::Inbox;
use wabridge_core::ingest::{IngestConfig, IngestService};

use crate::error::CliError;
use crate::secrets::Secrets;

/// The API `serve` answers with, and the body limit it enforces.
pub fn build_api(inbox: Arc<dyn Inbox>, secrets: &Secrets) -> Result<(Api, usize), CliError> {
    // The secrets already merge the environment over the generated ones; the rest comes from env.
    let ingest_config = IngestConfig::from_lookup(|name| match name {
        config::WHATSAPP_APP_SECRET => Some(secrets.app_secret.clone()),
        config::WHATSAPP_VERIFY_TOKEN => Some(secrets.verify_token.clone()),
        other => std::env::var(other).ok(),
    })?;
    let max_body = ingest_config.max_body_bytes;
    let api = Api::new().with_ingest(Arc::new(IngestService::new(ingest_config, inbox)));
    Ok((api, max_body))
}
