//! The one way wabridge builds an HTTP client for the APIs it calls (Meta's Graph and
//! Conversions APIs, the CRMs), and reads their `Retry-After`.
//!
//! Clients use rustls with the ring crypto provider, as the AWS SDK does in `wabridge-aws`:
//! reqwest's default provider (aws-lc-rs) would link a second crypto library into every
//! Lambda package, about a megabyte each.
//!
//! May depend on `wabridge-core`, reqwest and rustls; nothing else of the workspace.

use std::sync::Once;
use std::time::Duration;

pub use reqwest;

/// `User-Agent` of every call (Meta's spec requires the `name/1.2.3` form).
pub use wabridge_core::sends::graph::USER_AGENT;

/// How a client is set up; [`client`] builds it.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Idle connections kept per host (a batching CRM client wants many).
    pub max_idle_per_host: usize,
}

impl ClientOptions {
    pub fn with_timeout(timeout: Duration) -> ClientOptions {
        ClientOptions {
            timeout,
            max_idle_per_host: 32,
        }
    }
}

/// An HTTPS client with our `User-Agent`, the given timeout and a 5 s connect timeout.
pub fn client(options: ClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    install_ring();
    reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(options.max_idle_per_host)
        .user_agent(USER_AGENT)
        .build()
}

/// ring as the process's rustls provider, once (reqwest reads it when it builds a client).
/// A provider another part of the process installed first is kept.
fn install_ring() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `Retry-After` of an answer, as delay-seconds (see `wabridge_core::http::retry_after`).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    wabridge_core::http::retry_after(
        headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_without_another_crypto_provider() {
        // Would panic inside reqwest if no provider were installed (the workspace builds
        // reqwest with `rustls-no-provider` for the Lambdas).
        assert!(client(ClientOptions::with_timeout(Duration::from_secs(1))).is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn retry_after_reads_seconds_and_ignores_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
