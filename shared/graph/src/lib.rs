//! Meta's Graph API over HTTP (reqwest): the sender's message client and the template sync's
//! page source, implementing the ports `wabridge_core::sends::graph::MessageApi` and
//! `wabridge_core::sends::template_sync::TemplateSource`. The Conversions API client of
//! `wabridge-attribution` builds on [`http_client`] too.
//!
//! May depend on `wabridge-core` and `reqwest`; never on an engine (SQLite, AWS) or a CRM.

pub mod messages;
pub mod templates;

use std::time::Duration;

use wabridge_core::sends::classify::SendFailure;
use wabridge_core::sends::graph::USER_AGENT;

pub use messages::GraphClient;
pub use templates::{template_sync, GraphTemplates};

/// The HTTP client of every Graph API call: our `User-Agent` (Meta's spec requires one), a total
/// timeout and a short connect timeout.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(USER_AGENT)
        .build()
        .expect("reqwest client builds")
}

/// `Retry-After` of Meta's answer (see `wabridge_core::http::retry_after`).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    wabridge_core::http::retry_after(
        headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    )
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
