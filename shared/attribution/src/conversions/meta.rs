//! The Conversions API client: one conversion event to Meta, retried with backoff and full
//! jitter on 429, 5xx and transport errors, honouring `Retry-After`.

use std::time::Duration;

use serde_json::{json, Value};

use wabridge_core::config;

use super::Conversion;

/// Retry schedule of Meta calls.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Pause before retry `attempt` (1-based): full jitter over `base * 2^(attempt-1)` capped at
    /// `cap`, but never less than `Retry-After`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16))
            .min(self.cap);
        let jittered = Duration::from_millis(rand::random_range(0..=exp.as_millis() as u64));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(self.cap.max(retry_after.unwrap_or_default()))
    }
}

/// Where and how to send conversion events.
#[derive(Clone)]
pub struct MetaConversions {
    http: reqwest::Client,
    base_url: String,
    version: String,
    dataset_id: String,
    token: String,
    waba_id: Option<String>,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for MetaConversions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("MetaConversions")
            .field("url", &self.events_url())
            .finish()
    }
}

/// Outcome of one send to Meta.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    Sent {
        attempts: u32,
        response: Value,
    },
    /// Meta refused the event (4xx other than 429): never retried.
    Refused {
        attempts: u32,
        status: u16,
        message: String,
    },
    /// Still failing after every attempt: the caller should try again later.
    GaveUp {
        attempts: u32,
        reason: String,
    },
}

impl MetaConversions {
    pub fn new(
        base_url: &str,
        version: &str,
        dataset_id: &str,
        token: &str,
        waba_id: Option<&str>,
    ) -> MetaConversions {
        let http = wabridge_graph::http_client(Duration::from_secs(10));
        MetaConversions {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            version: version.trim_matches('/').to_string(),
            dataset_id: dataset_id.to_string(),
            token: token.to_string(),
            waba_id: waba_id.map(str::to_string),
            retry: RetryPolicy::default(),
        }
    }

    /// From `META_DATASET_ID`, `WHATSAPP_ACCESS_TOKEN` (a system user token with access to the
    /// dataset), `META_CONVERSIONS_API_URL` (else `WHATSAPP_API_URL`, else Graph),
    /// `WHATSAPP_API_VERSION` and `WHATSAPP_BUSINESS_ACCOUNT_ID`. `None` when the dataset or the
    /// token is not set: conversions are then recorded but not sent.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<MetaConversions>, config::ConfigError> {
        let settings = config::Settings::new(get);
        // Checked whether or not conversions are on: a bad setting stops the start.
        let (graph, version) = settings.graph_api()?;
        let base = settings.url(config::META_CONVERSIONS_API_URL, &graph)?;
        let (Some(dataset), Some(token)) = (
            settings.optional(config::META_DATASET_ID),
            settings.optional(config::WHATSAPP_ACCESS_TOKEN),
        ) else {
            return Ok(None);
        };
        Ok(Some(MetaConversions::new(
            &base,
            &version,
            &dataset,
            &token,
            settings
                .optional(config::WHATSAPP_BUSINESS_ACCOUNT_ID)
                .as_deref(),
        )))
    }

    pub fn events_url(&self) -> String {
        format!(
            "{}/{}/{}/events",
            self.base_url, self.version, self.dataset_id
        )
    }

    /// The documented request body for one conversion.
    pub fn body(&self, c: &Conversion, ctwa_clid: &str) -> Value {
        let mut user_data = json!({"ctwa_clid": ctwa_clid});
        if let Some(waba) = &self.waba_id {
            user_data["whatsapp_business_account_id"] = json!(waba);
        }
        json!({"data": [{
            "event_name": c.event_name,
            "event_time": c.event_time,
            "event_id": c.event_id,
            "action_source": "business_messaging",
            "messaging_channel": "whatsapp",
            "user_data": user_data,
            "custom_data": {"currency": c.currency, "value": c.value},
        }]})
    }

    /// Sends with retries (429 / 5xx / transport errors), honouring `Retry-After`.
    pub async fn send(&self, c: &Conversion, ctwa_clid: &str) -> SendOutcome {
        let body = self.body(c, ctwa_clid).to_string();
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            let result = self
                .http
                .post(self.events_url())
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let retry_after = match result {
                Err(e) => {
                    last = format!("transport: {e}");
                    None
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = wabridge_http::retry_after(response.headers());
                    let bytes = response.bytes().await.unwrap_or_default();
                    let answer: Value =
                        serde_json::from_slice(&bytes[..bytes.len().min(64 * 1024)])
                            .unwrap_or(Value::Null);
                    let message = answer
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if (200..300).contains(&status) {
                        return SendOutcome::Sent {
                            attempts: attempt,
                            response: answer,
                        };
                    }
                    if status != 429 && status < 500 {
                        return SendOutcome::Refused {
                            attempts: attempt,
                            status,
                            message,
                        };
                    }
                    last = format!("HTTP {status} {message}").trim().to_string();
                    retry_after
                }
            };
            tracing::warn!(attempt, reason = %last, event_id = %c.event_id, "conversion send failed, retrying");
            if attempt < self.retry.attempts {
                tokio::time::sleep(self.retry.delay(attempt, retry_after)).await;
            }
        }
        SendOutcome::GaveUp {
            attempts: self.retry.attempts.max(1),
            reason: last,
        }
    }
}
