//! The ingest service: the webhook endpoint Meta calls.
//!
//! `POST /webhook`, in this order (each step only runs when the previous one passed):
//! 1. size: a body over the limit is refused with 413 before anything else looks at it;
//! 2. configuration: without an app secret nothing can be verified, so every POST is refused
//!    with 503 (fail closed; Meta keeps retrying for days, so nothing is lost once the secret is
//!    set) and an error is logged;
//! 3. signature: `X-Hub-Signature-256` over the raw bytes, before any parsing: 401 when missing,
//!    malformed or wrong;
//! 4. split: 400 with a JSON error naming the problem when the body is not a WhatsApp envelope;
//! 5. hand-off: [`Inbox::accept`] durably enqueues every event not seen before; any store or
//!    queue failure answers 503 so Meta retries (the inbox makes the retry lose and duplicate
//!    nothing);
//! 6. 200.
//!
//! `GET /webhook` is Meta's verification handshake: `hub.mode=subscribe` and a `hub.verify_token`
//! equal (constant-time) to the configured one → 200 with `hub.challenge` as text/plain; anything
//! else, or no token configured → 403.
//!
//! Logs never carry secrets, bodies or whole phone numbers.

use std::fmt;
use std::sync::Arc;

use crate::clock::now_ms;
use crate::config;
use crate::inbox::Inbox;
use crate::redact::mask;
use crate::signature::{self, AppSecret, WebhookSignature, SIGNATURE_HEADER};
use crate::webhook::split::{split, SplitError};

/// Largest `hub.challenge` echoed back (Meta sends a short number).
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// What ingest needs to know. `Debug` never shows the secrets.
#[derive(Clone)]
pub struct IngestConfig {
    /// HMAC key of `X-Hub-Signature-256`; `None` = refuse every POST (fail closed).
    pub app_secret: Option<AppSecret>,
    /// Token of the GET handshake; `None` = refuse every handshake.
    pub verify_token: Option<String>,
    /// Largest body accepted, bytes.
    pub max_body_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            app_secret: None,
            verify_token: None,
            max_body_bytes: config::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestConfig")
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl IngestConfig {
    /// Reads [`config::WHATSAPP_APP_SECRET`], [`config::WHATSAPP_VERIFY_TOKEN`] and
    /// [`config::WABRIDGE_MAX_BODY_BYTES`] through `get` (the process environment, a secret
    /// store's JSON, …). Empty values count as absent. Errors name an unusable value.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<IngestConfig, config::ConfigError> {
        let settings = config::Settings::new(get);
        Ok(IngestConfig {
            app_secret: settings
                .optional(config::WHATSAPP_APP_SECRET)
                .and_then(AppSecret::new),
            verify_token: settings.optional(config::WHATSAPP_VERIFY_TOKEN),
            max_body_bytes: settings.number(
                config::WABRIDGE_MAX_BODY_BYTES,
                config::DEFAULT_MAX_BODY_BYTES,
                "a positive number of bytes",
                |n| *n > 0,
            )?,
        })
    }

    /// [`IngestConfig::from_lookup`] over the process environment.
    pub fn from_env() -> Result<IngestConfig, config::ConfigError> {
        IngestConfig::from_lookup(|name| std::env::var(name).ok())
    }
}

pub struct IngestService {
    config: IngestConfig,
    inbox: Arc<dyn Inbox>,
}

impl IngestService {
    pub fn new(config: IngestConfig, inbox: Arc<dyn Inbox>) -> IngestService {
        if config.app_secret.is_none() {
            tracing::error!(
                "{} is not configured: every webhook POST will be refused with 503",
                config::WHATSAPP_APP_SECRET
            );
        }
        IngestService { config, inbox }
    }

    /// The limit transports should also enforce while reading the body.
    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// `GET /webhook`: Meta's verification handshake, given its `hub.mode`, `hub.verify_token`
    /// and `hub.challenge`. Returns the challenge to echo.
    pub fn handshake(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<String>,
    ) -> Result<String, IngestError> {
        let Some(expected) = self.config.verify_token.as_deref() else {
            tracing::error!(
                "{} is not configured: refusing the webhook handshake",
                config::WHATSAPP_VERIFY_TOKEN
            );
            return Err(IngestError::Handshake(
                "webhook verify token is not configured",
            ));
        };
        if mode != Some("subscribe") {
            return Err(IngestError::Handshake("hub.mode must be \"subscribe\""));
        }
        if !signature::verify_token_matches(expected, token.unwrap_or_default()) {
            tracing::warn!("webhook handshake with a wrong verify token");
            return Err(IngestError::Handshake("hub.verify_token does not match"));
        }
        let challenge = challenge.unwrap_or_default();
        if challenge.is_empty() {
            return Err(IngestError::Challenge {
                code: "missing_challenge",
                message: "hub.challenge is missing".into(),
            });
        }
        if challenge.len() > MAX_CHALLENGE_LEN {
            return Err(IngestError::Challenge {
                code: "invalid_challenge",
                message: format!("hub.challenge is longer than {MAX_CHALLENGE_LEN} bytes"),
            });
        }
        tracing::info!("webhook handshake verified");
        Ok(challenge)
    }

    /// `POST /webhook`: verify `body` against its `X-Hub-Signature-256` header, split, hand off
    /// durably.
    pub async fn receive(
        &self,
        body: &[u8],
        signature_header: Option<&str>,
    ) -> Result<Accepted, IngestError> {
        let limit = self.config.max_body_bytes;
        if body.len() > limit {
            tracing::warn!(size = body.len(), limit, "webhook body over the limit");
            return Err(IngestError::TooLarge {
                size: body.len(),
                limit,
            });
        }
        let Some(secret) = self.config.app_secret.as_ref() else {
            tracing::error!(
                "{} is not configured: refusing a webhook POST (Meta will retry)",
                config::WHATSAPP_APP_SECRET
            );
            return Err(IngestError::NoSecret);
        };
        let sig = WebhookSignature::parse(signature_header.unwrap_or("")).map_err(|e| {
            tracing::warn!(reason = %e, "webhook POST with an unusable signature");
            IngestError::Signature(e.to_string())
        })?;
        if !signature::verify(secret, body, &sig) {
            tracing::warn!(
                size = body.len(),
                "webhook signature does not match the body"
            );
            return Err(IngestError::Signature(format!(
                "{SIGNATURE_HEADER} does not match the body"
            )));
        }

        let events = split(body, now_ms()).map_err(|e| {
            tracing::warn!(code = e.code(), problem = %e, "signed webhook body is not an envelope");
            IngestError::NotAnEnvelope(e)
        })?;
        let count = events.len();
        if tracing::enabled!(tracing::Level::DEBUG) {
            for e in &events {
                tracing::debug!(
                    key = %mask(&e.key),
                    kind = e.kind.as_str(),
                    field = %e.field,
                    "webhook event"
                );
            }
        }

        let report = self.inbox.accept(events).await.map_err(|e| {
            // The detail (driver or SDK message) is logged, not returned.
            tracing::error!(error = %e, events = count, "could not hand webhook events off");
            IngestError::Unavailable
        })?;
        tracing::info!(
            events = count,
            accepted = report.accepted,
            duplicates = report.duplicates,
            "webhook accepted"
        );
        Ok(Accepted {
            status: "ok",
            events: count,
            accepted: report.accepted,
            duplicates: report.duplicates,
        })
    }
}

/// Why a webhook call was refused. The HTTP status of each is chosen at the edge
/// (`crate::api`): Meta retries what is not its fault (no secret, a store down).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("body of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// No app secret: nothing can be verified (fail closed).
    #[error("webhook app secret is not configured")]
    NoSecret,
    /// Missing, malformed or wrong `X-Hub-Signature-256`.
    #[error("{0}")]
    Signature(String),
    /// A signed body that is not a WhatsApp envelope.
    #[error(transparent)]
    NotAnEnvelope(SplitError),
    /// The events could not be stored.
    #[error("could not store the events; retry later")]
    Unavailable,
    /// The handshake is refused (no token configured, wrong mode or token).
    #[error("{0}")]
    Handshake(&'static str),
    /// The handshake's challenge is missing or too long.
    #[error("{message}")]
    Challenge { code: &'static str, message: String },
}

/// The 200 answer to a webhook POST (what the events became).
#[derive(Debug, serde::Serialize)]
pub struct Accepted {
    status: &'static str,
    pub events: usize,
    pub accepted: usize,
    pub duplicates: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_lookup() {
        let c = IngestConfig::from_lookup(|n| match n {
            "WHATSAPP_APP_SECRET" => Some("s3cr3t".into()),
            "WHATSAPP_VERIFY_TOKEN" => Some("  ".into()),
            "WABRIDGE_MAX_BODY_BYTES" => Some("2048".into()),
            _ => None,
        })
        .unwrap();
        assert!(c.app_secret.is_some());
        assert_eq!(c.verify_token, None, "blank counts as absent");
        assert_eq!(c.max_body_bytes, 2048);
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let d = IngestConfig::from_lookup(|_| None).unwrap();
        assert!(d.app_secret.is_none());
        assert_eq!(d.max_body_bytes, config::DEFAULT_MAX_BODY_BYTES);

        let err = IngestConfig::from_lookup(|n| {
            (n == "WABRIDGE_MAX_BODY_BYTES").then(|| "lots".to_string())
        })
        .unwrap_err();
        assert!(err.to_string().contains("WABRIDGE_MAX_BODY_BYTES"), "{err}");
    }
}
