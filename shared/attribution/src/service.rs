//! `POST /links` and `POST /conversions`: the HTTP side of attribution, mounted on
//! [`wabridge_core::api::Api`]. Both take JSON, need an API key with the `admin` scope
//! ([`wabridge_core::auth`]), and answer JSON (errors in the [`ApiError`] shape).

use std::sync::Arc;

use base64::Engine;
use serde_json::json;

use crate::conversions::{self, ConversionRequest, MetaConversions, RecordError};
use crate::qr;
use wabridge_core::api::AttributionRoutes;
use wabridge_core::attribution::link::LinkRequest;
use wabridge_core::attribution::store::AttributionStore;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::audit::{action, Audit};
use wabridge_core::auth::{ApiKeys, Scope};
use wabridge_core::conversations::update::{ConversationUpdates, Converted, Target};
use wabridge_core::http::{ApiError, Request, Response};

/// Largest request body accepted by these routes.
pub const MAX_BODY: usize = 64 * 1024;
/// Pixels per QR module in the PNG.
pub const PNG_SCALE: usize = 8;

fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if req.body.len() > MAX_BODY {
        return Err(ApiError::PayloadTooLarge {
            size: req.body.len(),
            limit: MAX_BODY,
        });
    }
    match req.header("content-type") {
        Some(ct)
            if ct
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json") => {}
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ))
        }
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

/// The attribution routes' state.
pub struct AttributionService {
    store: Arc<dyn AttributionStore>,
    config: Arc<AttributionConfig>,
    meta: Option<MetaConversions>,
    keys: Arc<ApiKeys>,
    audit: Audit,
    now_ms: fn() -> i64,
    /// Conversions make their conversation's outcome `converted`.
    conversations: Option<ConversationUpdates>,
    /// The numbers registry a link's `from` names (none: `phone_number` or the config's).
    numbers: Option<Arc<wabridge_core::numbers::Numbers>>,
}

impl AttributionService {
    pub fn new(
        store: Arc<dyn AttributionStore>,
        config: Arc<AttributionConfig>,
        meta: Option<MetaConversions>,
        keys: Arc<ApiKeys>,
    ) -> AttributionService {
        AttributionService {
            store,
            config,
            meta,
            keys,
            audit: Audit::none(),
            now_ms: wabridge_core::clock::now_ms,
            conversations: None,
            numbers: None,
        }
    }

    /// Links open a chat with a registered number: `from` (a label or phone_number_id) names it,
    /// and a registry of several numbers requires it unless `phone_number` is given.
    pub fn with_numbers(
        mut self,
        numbers: Arc<wabridge_core::numbers::Numbers>,
    ) -> AttributionService {
        self.numbers = Some(numbers);
        self
    }

    /// A conversion sets its conversation's outcome to `converted`, with its value and currency
    /// (once per `event_id`, written then queued for the CRM).
    pub fn with_conversations(mut self, updates: ConversationUpdates) -> AttributionService {
        self.conversations = Some(updates);
        self
    }

    /// Records the links and conversions written through the API in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> AttributionService {
        self.audit = audit;
        self
    }

    /// `POST /links`: 201 with the code, the `wa.me` URL, its text, expiry, UTMs and the QR code
    /// as SVG text and base64 PNG.
    pub async fn create_link(&self, req: &Request) -> Result<Response, ApiError> {
        let caller = self.keys.authorize(req, Scope::Admin, "POST /links")?;
        let mut request: LinkRequest = json_body(req)?;
        request
            .resolve_from(self.numbers.as_deref(), &self.config)
            .map_err(|(code, message)| match code {
                "invalid_field" => ApiError::bad_request(code, message),
                code => ApiError::Unprocessable { code, message },
            })?;
        let spec = request
            .validate(&self.config)
            .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
        let link = self.store.create_link(&spec, (self.now_ms)()).await?;
        self.audit
            .note(
                &Audit::key_actor(&caller.key_id),
                action::LINK,
                Some(&link.code),
            )
            .await;
        let svg = qr::svg(&link.url)
            .map_err(|e| ApiError::bad_request("link_too_long", e.to_string()))?;
        let png = qr::png(&link.url, PNG_SCALE).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut body =
            serde_json::to_value(&link).map_err(|e| ApiError::Internal(e.to_string()))?;
        body["qr_svg"] = json!(svg);
        body["qr_png_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(png));
        Ok(Response::json(201, &body))
    }

    /// `POST /conversions`: 200 when sent, not attributable (no click id) or not configured;
    /// 422 when Meta refused the event; 503 (with `Retry-After`) when Meta stayed unreachable:
    /// call again with the same `event_id`. 409 when the `event_id` was used for another
    /// conversion.
    pub async fn record_conversion(&self, req: &Request) -> Result<Response, ApiError> {
        let caller = self
            .keys
            .authorize(req, Scope::Admin, "POST /conversions")?;
        let request: ConversionRequest = json_body(req)?;
        let conversion = request
            .validate((self.now_ms)())
            .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
        let result = match conversions::record(
            self.store.as_ref(),
            &self.config,
            self.meta.as_ref(),
            &conversion,
        )
        .await
        {
            Ok(r) => r,
            Err(RecordError::Invalid(e)) => {
                return Err(ApiError::bad_request("invalid_field", e.to_string()))
            }
            Err(RecordError::Conflict(m)) => {
                return Err(ApiError::Conflict(format!(
                    "event_id {m} was already used for a different conversion"
                )))
            }
            Err(RecordError::Store(e)) => return Err(e.into()),
        };
        if !result.duplicate && !matches!(result.status.as_str(), "refused" | "pending") {
            // The CRM's own event id: no personal data.
            self.audit
                .note(
                    &Audit::key_actor(&caller.key_id),
                    action::CONVERSION,
                    Some(&result.event_id),
                )
                .await;
        }
        // After the conversions ledger, whatever Meta said: the deal was won. A retry with the
        // same event_id comes back here and changes nothing twice.
        let conversation = match &self.conversations {
            Some(updates) => updates
                .converted(
                    &Target {
                        contact_id: conversion.contact_id.clone(),
                        number: conversion.number.clone(),
                        conversation_id: conversion.conversation_id.clone(),
                    },
                    &Converted {
                        event_id: conversion.event_id.clone(),
                        value: conversion.value,
                        currency: conversion.currency.clone(),
                        at: conversion.event_time.saturating_mul(1000),
                    },
                )
                .await?
                .map(|state| state.record.id),
            None => None,
        };
        let mut body =
            serde_json::to_value(&result).map_err(|e| ApiError::Internal(e.to_string()))?;
        body["conversation_id"] = json!(conversation);
        Ok(match result.status.as_str() {
            "refused" => Response::json(422, &body),
            "pending" => Response::json(503, &body).with_header("retry-after", "30"),
            _ => Response::json(200, &body),
        })
    }
}

#[async_trait::async_trait]
impl AttributionRoutes for AttributionService {
    async fn create_link(&self, req: &Request) -> Result<Response, ApiError> {
        AttributionService::create_link(self, req).await
    }

    async fn record_conversion(&self, req: &Request) -> Result<Response, ApiError> {
        AttributionService::record_conversion(self, req).await
    }
}
