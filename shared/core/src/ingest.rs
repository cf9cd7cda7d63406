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
use crate::http::{ApiError, Request, Response};
use crate::inbox::Inbox;
use crate::redact::mask;
use crate::signature::{self, AppSecret, WebhookSignature, SIGNATURE_HEADER};
use crate::webhook::split;

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

    /// `GET /webhook`: Meta's verification handshake.
    pub fn handshake(&self, req: &Request) -> Result<Response, ApiError> {
        let Some(expected) = self.config.verify_token.as_deref() else {
            tracing::error!(
                "{} is not configured: refusing the webhook handshake",
                config::WHATSAPP_VERIFY_TOKEN
            );
            return Err(ApiError::Forbidden(
                "webhook verify token is not configured".into(),
            ));
        };
        if req.query_param("hub.mode").as_deref() != Some("subscribe") {
            return Err(ApiError::Forbidden("hub.mode must be \"subscribe\"".into()));
        }
        let given = req.query_param("hub.verify_token").unwrap_or_default();
        if !signature::verify_token_matches(expected, &given) {
            tracing::warn!("webhook handshake with a wrong verify token");
            return Err(ApiError::Forbidden(
                "hub.verify_token does not match".into(),
            ));
        }
        let challenge = req.query_param("hub.challenge").unwrap_or_default();
        if challenge.is_empty() {
            return Err(ApiError::bad_request(
                "missing_challenge",
                "hub.challenge is missing",
            ));
        }
        if challenge.len() > MAX_CHALLENGE_LEN {
            return Err(ApiError::bad_request(
                "invalid_challenge",
                format!("hub.challenge is longer than {MAX_CHALLENGE_LEN} bytes"),
            ));
        }
        tracing::info!("webhook handshake verified");
        Ok(Response::text(200, challenge))
    }

    /// `POST /webhook`: verify, split, hand off durably, then 200.
    pub async fn receive(&self, req: &Request) -> Result<Response, ApiError> {
        let limit = self.config.max_body_bytes;
        if req.body.len() > limit {
            tracing::warn!(size = req.body.len(), limit, "webhook body over the limit");
            return Err(ApiError::PayloadTooLarge {
                size: req.body.len(),
                limit,
            });
        }
        let Some(secret) = self.config.app_secret.as_ref() else {
            tracing::error!(
                "{} is not configured: refusing a webhook POST (Meta will retry)",
                config::WHATSAPP_APP_SECRET
            );
            return Err(ApiError::Unavailable(
                "webhook app secret is not configured".into(),
            ));
        };
        let header = req.header(SIGNATURE_HEADER).unwrap_or("");
        let sig = WebhookSignature::parse(header).map_err(|e| {
            tracing::warn!(reason = %e, "webhook POST with an unusable signature");
            ApiError::Unauthorized(e.to_string())
        })?;
        if !signature::verify(secret, &req.body, &sig) {
            tracing::warn!(
                size = req.body.len(),
                "webhook signature does not match the body"
            );
            return Err(ApiError::Unauthorized(
                "X-Hub-Signature-256 does not match the body".into(),
            ));
        }

        let events = split(&req.body, now_ms()).map_err(|e| {
            tracing::warn!(code = e.code(), problem = %e, "signed webhook body is not an envelope");
            ApiError::bad_request(e.code(), e.to_string())
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
            ApiError::Unavailable("could not store the events; retry later".into())
        })?;
        tracing::info!(
            events = count,
            accepted = report.accepted,
            duplicates = report.duplicates,
            "webhook accepted"
        );
        Ok(Response::json(
            200,
            &Accepted {
                status: "ok",
                events: count,
                accepted: report.accepted,
                duplicates: report.duplicates,
            },
        ))
    }
}

/// The 200 answer to a webhook POST (what the events became).
#[derive(serde::Serialize)]
struct Accepted {
    status: &'static str,
    events: usize,
    accepted: usize,
    duplicates: usize,
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
