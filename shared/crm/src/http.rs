//! What the HTTP CRMs share: classifying an answer or a transport failure, and `Retry-After`.

use std::time::Duration;

use wabridge_core::crm::CrmError;

/// Maps a reqwest failure: timeouts and connection errors are transient. The URL is left out
/// of the message: a CRM webhook URL often carries its own token (it is a secret).
pub(crate) fn transport_error(e: reqwest::Error) -> CrmError {
    let e = e.without_url();
    if e.is_timeout() {
        CrmError::Transient(format!("timeout: {e}"))
    } else {
        CrmError::Transient(format!("request failed: {e}"))
    }
}

/// Classifies a non-2xx HTTP answer. `retry_hint` comes from Retry-After or rate-limit headers.
pub(crate) fn classify_status(status: u16, retry_hint: Option<Duration>, body: &str) -> CrmError {
    // The CRM's words may echo what we sent (phone numbers): masked, as they reach logs and
    // dead-letter reasons.
    let body = wabridge_core::redact::mask_digit_runs(&body.chars().take(300).collect::<String>());
    match status {
        429 => CrmError::RateLimited(retry_hint),
        408 | 425 | 500..=599 => CrmError::Transient(format!("HTTP {status}: {body}")),
        // Our token was revoked or lost a scope: the record is fine, the credentials are not.
        401 | 403 => CrmError::Unauthorized(format!("HTTP {status}: {body}")),
        _ => CrmError::Rejected(format!("HTTP {status}: {body}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wabridge_core::crm::CrmError;

    #[test]
    fn errors_are_classified_by_status() {
        assert_eq!(classify_status(429, None, ""), CrmError::RateLimited(None));
        assert!(matches!(
            classify_status(503, None, "x"),
            CrmError::Transient(_)
        ));
        assert!(matches!(
            classify_status(408, None, "x"),
            CrmError::Transient(_)
        ));
        assert!(
            matches!(classify_status(400, None, "bad"), CrmError::Rejected(m) if m.contains("bad"))
        );
        assert!(matches!(
            classify_status(409, None, ""),
            CrmError::Rejected(_)
        ));
        for status in [401, 403] {
            assert!(matches!(
                classify_status(status, None, "INVALID_AUTHENTICATION"),
                CrmError::Unauthorized(m) if m.contains("INVALID_AUTHENTICATION")
            ));
        }
    }
}
