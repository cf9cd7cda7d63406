//! What a failed send means, from Meta's error codes (in the HTTP answer, or later in a `failed`
//! status webhook), and how long to wait before the next attempt.
//!
//! | code | meaning | class |
//! | --- | --- | --- |
//! | 130429 | throughput exceeded | retry with backoff |
//! | 131056 | pair rate (same recipient too often) | retry, delaying that recipient |
//! | 131000, HTTP 5xx, timeouts, connection errors | unknown / transient | retry with backoff |
//! | 131049 | marketing per-user limit | retry much later |
//! | 190, HTTP 401 | access token invalid or expired | retry (a fixed token redrives it) |
//! | 131026 | message undeliverable | terminal |
//! | 131047 | outside the 24 h window: needs a template | terminal |
//! | 131030 | recipient not in the allowed list (test numbers) | terminal |
//! | 131048 | spam rate limit | terminal |
//! | 132000 | template parameter count mismatch | terminal |
//! | 132001 | template does not exist (name or language) | terminal |
//! | 132012 | template parameter format mismatch | terminal |
//! | 131050 | user stopped marketing messages | terminal + record a marketing opt-out |
//! | other 4xx | request refused | terminal with Meta's message |

use std::time::Duration;

use serde_json::Value;

use crate::retry::backoff;

/// Meta's pair rate: about one message per 6 s to the same user.
pub const PAIR_RATE_DELAY: Duration = Duration::from_secs(6);
/// 131049: Meta limits marketing messages per user; try again much later.
pub const MARKETING_LIMIT_DELAY: Duration = Duration::from_secs(60 * 60);

/// A classified failure of one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Transient: try again after at least `retry_after` (when Meta or the class said so).
    Retry {
        code: Option<i64>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 131056: too many messages to this recipient: delay that recipient only.
    PairRate { reason: String },
    /// Never retried: the send fails with this reason.
    Terminal { code: Option<i64>, reason: String },
    /// 131050: the user stopped marketing messages. The send fails, a marketing opt-out is
    /// recorded, and the CRM is told.
    OptedOut { reason: String },
}

impl SendFailure {
    /// Meta's error code, when the failure came with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendFailure::Retry { code, .. } | SendFailure::Terminal { code, .. } => *code,
            SendFailure::PairRate { .. } => Some(131056),
            SendFailure::OptedOut { .. } => Some(131050),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SendFailure::Retry { reason, .. }
            | SendFailure::PairRate { reason }
            | SendFailure::Terminal { reason, .. }
            | SendFailure::OptedOut { reason } => reason,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SendFailure::Retry { .. } | SendFailure::PairRate { .. }
        )
    }

    /// How long to wait before attempt number `attempt + 1` (`attempt` counts from 1), or
    /// `None` for a terminal failure.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        match self {
            SendFailure::Retry { retry_after, .. } => Some(backoff(attempt, *retry_after)),
            SendFailure::PairRate { .. } => Some(backoff(attempt, Some(PAIR_RATE_DELAY))),
            SendFailure::Terminal { .. } | SendFailure::OptedOut { .. } => None,
        }
    }
}

/// Classifies one Meta error code with its human reason (used for HTTP answers and for
/// `failed` status webhooks alike).
pub fn classify_code(code: i64, reason: String, retry_after: Option<Duration>) -> SendFailure {
    match code {
        130429 | 131000 | 190 => SendFailure::Retry {
            code: Some(code),
            reason,
            retry_after,
        },
        131049 => SendFailure::Retry {
            code: Some(code),
            reason,
            retry_after: Some(
                retry_after
                    .unwrap_or(MARKETING_LIMIT_DELAY)
                    .max(MARKETING_LIMIT_DELAY),
            ),
        },
        131056 => SendFailure::PairRate { reason },
        131050 => SendFailure::OptedOut { reason },
        _ => SendFailure::Terminal {
            code: Some(code),
            reason,
        },
    }
}

/// A non-2xx answer of the Graph API. Meta's body: `{"error": {"message", "type", "code",
/// "error_subcode", "error_data": {"details"}, "fbtrace_id"}}`.
pub fn classify_response(
    status: u16,
    body: Option<&Value>,
    retry_after: Option<Duration>,
) -> SendFailure {
    let error = body.and_then(|b| b.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let reason = error
        .map(|e| {
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            let details = e
                .pointer("/error_data/details")
                .and_then(Value::as_str)
                .unwrap_or("");
            match (message.is_empty(), details.is_empty()) {
                (false, false) => format!("{message}: {details}"),
                (false, true) => message.to_string(),
                (true, false) => details.to_string(),
                (true, true) => String::new(),
            }
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| format!("Graph API answered HTTP {status}"));
    match code {
        Some(code) => classify_code(code, reason, retry_after),
        None if status >= 500 || status == 429 || status == 408 || status == 401 => {
            SendFailure::Retry {
                code: None,
                reason,
                retry_after,
            }
        }
        None => SendFailure::Terminal { code: None, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(code: i64, message: &str) -> Value {
        json!({"error": {"message": message, "type": "OAuthException", "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": "details here"}, "fbtrace_id": "A"}})
    }

    #[test]
    fn retryable_codes() {
        for code in [130429, 131000] {
            let f = classify_response(400, Some(&meta(code, "x")), None);
            assert!(
                matches!(f, SendFailure::Retry { code: Some(c), .. } if c == code),
                "{code}: {f:?}"
            );
            assert!(f.is_retryable());
        }
        let f = classify_response(400, Some(&meta(131056, "pair")), None);
        assert_eq!(
            f,
            SendFailure::PairRate {
                reason: "pair: details here".into()
            }
        );
        assert!(f.delay(1).unwrap() >= PAIR_RATE_DELAY);
    }

    #[test]
    fn terminal_codes_keep_their_reason() {
        for code in [131026, 131047, 131030, 132000, 132001, 132012, 131048] {
            let f = classify_response(400, Some(&meta(code, "Meta says no")), None);
            assert_eq!(
                f,
                SendFailure::Terminal {
                    code: Some(code),
                    reason: "Meta says no: details here".into()
                }
            );
            assert_eq!(f.delay(3), None);
        }
    }

    #[test]
    fn opt_out_code() {
        let f = classify_response(400, Some(&meta(131050, "stopped")), None);
        assert!(matches!(f, SendFailure::OptedOut { .. }));
        assert_eq!(f.code(), Some(131050));
        assert!(!f.is_retryable());
    }

    #[test]
    fn server_errors_without_code_retry_and_honour_retry_after() {
        let f = classify_response(503, None, Some(Duration::from_secs(30)));
        assert!(f.is_retryable());
        assert!(f.delay(1).unwrap() >= Duration::from_secs(30));
        let f = classify_response(404, Some(&json!({"unexpected": true})), None);
        assert!(matches!(f, SendFailure::Terminal { code: None, .. }));
        assert!(f.reason().contains("404"));
    }

    #[test]
    fn retry_delays_follow_the_shared_schedule_and_meta_s_own_waits() {
        // The pair rate waits its 6 s; 131049 waits its hour (the shared schedule takes a
        // server's wait as is; the sender's own schedule used to cap it at 15 min).
        let pair = SendFailure::PairRate { reason: "x".into() };
        assert!(pair.delay(1).unwrap() >= PAIR_RATE_DELAY);
        let limit = classify_code(131049, "x".into(), None);
        assert!(limit.delay(1).unwrap() >= MARKETING_LIMIT_DELAY);
        let plain = classify_code(131000, "x".into(), None);
        assert!(plain.delay(1).unwrap() <= Duration::from_secs(1));
        assert!(plain.delay(40).unwrap() <= crate::retry::MAX_BACKOFF);
    }
}
