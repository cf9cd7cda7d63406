//! The `webhook` CRM: each record is POSTed as JSON to `CRM_WEBHOOK_URL` (the canonical record,
//! plus the mapped fields under `"fields"`), signed the Standard Webhooks way:
//!
//! - `webhook-id`: the effect id, stable across retries, so receivers deduplicate on it;
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`.
//!
//! The secret is `CRM_WEBHOOK_SECRET`; a `whsec_`-prefixed secret is base64-decoded first (the
//! Standard Webhooks convention), any other value is used as raw bytes. 2xx = done; 429 and 5xx
//! are retried; other 4xx dead-letter.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::{classify_status, transport_error, ConfigError};
use wabridge_core::config;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_http::retry_after;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub struct WebhookCrm {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
    timeout: Duration,
}

impl WebhookCrm {
    /// Refuses to run without a secret (fail closed: unsigned records could be forged).
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<WebhookCrm, ConfigError> {
        let invalid = |name, reason: String| ConfigError::Invalid { name, reason };
        let parsed =
            url::Url::parse(url).map_err(|e| invalid(config::CRM_WEBHOOK_URL, e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(config::CRM_WEBHOOK_URL, "must be http(s)".into()));
        }
        if secret.is_empty() {
            return Err(invalid(
                config::CRM_WEBHOOK_SECRET,
                "is required for CRM_KIND=webhook".into(),
            ));
        }
        let client = wabridge_http::client(wabridge_http::ClientOptions::with_timeout(timeout))
            .map_err(ConfigError::HttpClient)?;
        Ok(WebhookCrm {
            client,
            url: url.to_string(),
            key: secret_key(secret)?,
            timeout,
        })
    }
}

/// The HMAC key of a secret (`whsec_<base64>` or raw).
pub fn secret_key(secret: &str) -> Result<Vec<u8>, ConfigError> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| ConfigError::Invalid {
                name: config::CRM_WEBHOOK_SECRET,
                reason: format!("bad whsec_ base64: {e}"),
            }),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

/// The JSON body posted for an effect.
pub fn body_of(effect: &Effect) -> String {
    let mut v = effect.record.to_value();
    if let Value::Object(map) = &mut v {
        map.insert("fields".into(), Value::Object(effect.fields.clone()));
    }
    v.to_string()
}

#[async_trait]
impl Crm for WebhookCrm {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    /// One POST.
    fn call_budget(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        let body = body_of(effect);
        let ts = wabridge_core::clock::now_secs();
        let signature = sign(&self.key, &effect.id, ts, &body);
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &effect.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let hint = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        Err(classify_status(status, hint, &text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_follows_standard_webhooks() {
        // Key "secret", content "msg_1.1700000000.{}".
        let sig = sign(b"secret", "msg_1", 1_700_000_000, "{}");
        let mut mac = HmacSha256::new_from_slice(b"secret").unwrap();
        mac.update(b"msg_1.1700000000.{}");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("v1,{expected}"));
        assert_ne!(sign(b"secret", "msg_2", 1_700_000_000, "{}"), sig);
        assert_eq!(secret_key("whsec_c2VjcmV0").unwrap(), b"secret");
        assert_eq!(secret_key("plain").unwrap(), b"plain");
        assert!(secret_key("whsec_***").is_err());
        assert!(WebhookCrm::new("http://127.0.0.1:1/x", "", Duration::from_secs(1)).is_err());
        assert!(WebhookCrm::new("ftp://x", "s", Duration::from_secs(1)).is_err());
    }
}
