//! The HTTP boundary, independent of the server that carries it: the Lambda (lambda_http) and
//! the local gateway (axum) both convert to these types and call [`crate::api::Api::handle`].

use serde_json::json;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }
}

/// A request as the core sees it. Header names are lower-case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    /// The raw query string without `?`, percent-encoded as received.
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The body bytes exactly as received (already base64-decoded when the transport encoded it).
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decoded value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer: a `serde_json::Value` (`json!`), or any serialisable type where the
    /// answer is on a hot path (no intermediate map).
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Every error the HTTP API can answer, with its status code and a stable machine code.
/// The JSON body is `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Error)]
pub enum ApiError {
    /// 400: the body or query is not what the route takes; `code` names the problem.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: missing or wrong credentials (webhook signature, API key).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller is known but not allowed (verify token mismatch).
    #[error("{0}")]
    Forbidden(String),
    #[error("no route for {0}")]
    NotFound(String),
    /// 404 for a route that exists: what it names does not (an unknown contact).
    #[error("{0}")]
    NoSuch(String),
    #[error("method not allowed on {0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with an earlier one (an Idempotency-Key reused with another body).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the configured limit.
    #[error("body of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    /// 415: the body is not in a media type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but refused by a rule (a policy guard); `code` is stable.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 503: a store, queue or secret is not available; the caller should retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug. The message is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) | ApiError::NoSuch(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict(_) => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Unprocessable { .. } => 422,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) | ApiError::NoSuch(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn into_response(self) -> Response {
        let message = match &self {
            // Internal details stay in the logs.
            ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        if let ApiError::Internal(detail) | ApiError::Unavailable(detail) = &self {
            tracing::error!(code = self.code(), %detail, "request failed");
        }
        let status = self.status();
        let response = Response::json(
            status,
            &json!({"error": {"code": self.code(), "message": message}}),
        );
        if status == 503 {
            return response.with_header("retry-after", "1");
        }
        response
    }
}

impl From<crate::error::StoreError> for ApiError {
    fn from(e: crate::error::StoreError) -> Self {
        match e {
            crate::error::StoreError::Unavailable(m) => ApiError::Unavailable(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// `Retry-After` of an answer from an API we call (Meta, a CRM), given the header's value, as
/// delay-seconds; the HTTP-date form is rare for APIs and treated as absent. The one parser of
/// that header (the HTTP adapters hand it the raw value).
pub fn retry_after(value: Option<&str>) -> Option<std::time::Duration> {
    value?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(std::time::Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_answer_json_with_status_and_code() {
        let r =
            ApiError::bad_request("not_whatsapp_envelope", "object must be ...").into_response();
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "not_whatsapp_envelope");
        assert_eq!(v["error"]["message"], "object must be ...");
    }

    #[test]
    fn internal_errors_hide_details() {
        let r = ApiError::Internal("secret path /x".into()).into_response();
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8_lossy(&r.body).contains("/x"));
    }

    #[test]
    fn unavailable_asks_to_retry() {
        let r = ApiError::Unavailable("queue down".into()).into_response();
        assert_eq!(r.status, 503);
        assert!(r.headers.iter().any(|(k, _)| *k == "retry-after"));
    }

    #[test]
    fn query_params_are_decoded() {
        let req = Request {
            method: Method::Get,
            path: "/webhook".into(),
            query: Some("hub.mode=subscribe&hub.challenge=a%20b".into()),
            headers: vec![],
            body: vec![],
        };
        assert_eq!(req.query_param("hub.challenge").as_deref(), Some("a b"));
        assert_eq!(req.query_param("missing"), None);
    }
}
