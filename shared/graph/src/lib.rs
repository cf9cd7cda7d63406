//! Meta's Graph API over HTTP (reqwest): the sender's message client and the template sync's
//! page source, implementing the ports `wabridge_core::sends::graph::MessageApi` and
//! `wabridge_core::sends::template_sync::TemplateSource`. The Conversions API client of
//! `wabridge-attribution` builds on [`http_client`] too.
//!
//! May depend on `wabridge-core` and `reqwest`; never on an engine (SQLite, AWS) or a CRM.

pub mod admin;
pub mod media;
pub mod messages;
pub mod templates;

use std::time::Duration;

use wabridge_core::sends::classify::SendFailure;

pub use admin::GraphTemplateAdmin;
pub use media::{GraphMedia, MediaConfig};
pub use messages::GraphClient;
pub use templates::{template_sync, GraphTemplates};

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
