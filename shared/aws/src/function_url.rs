//! A Lambda Function URL (or HTTP API v2) in front of the core's [`Api`]: converts lambda_http
//! requests to the core's [`Request`] and [`Response`]s back. The functions that answer HTTP
//! (ingest, attribution) share it.

use std::convert::Infallible;
use std::time::Instant;

use lambda_http::{Body, RequestExt};
use wabridge_core::api::Api;
use wabridge_core::http::{Method, Request, Response};

/// lambda_http's request (body already base64-decoded when the event said `isBase64Encoded`)
/// as the core's request: the raw path without an API stage, the raw query string, lower-case
/// header names, the body bytes as received.
pub fn to_core_request(req: lambda_http::Request) -> Request {
    let raw_path = req.raw_http_path();
    let path = if raw_path.is_empty() {
        req.uri().path().to_string()
    } else {
        raw_path.to_string()
    };
    let query = req
        .uri()
        .query()
        .filter(|q| !q.is_empty())
        .map(str::to_string);
    let method = Method::parse(req.method().as_str());
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body() {
        Body::Empty => Vec::new(),
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        // Body is non-exhaustive upstream; any other shape carries bytes too.
        #[allow(unreachable_patterns)]
        other => other.as_ref().to_vec(),
    };
    Request {
        method,
        path,
        query,
        headers,
        body,
    }
}

/// The core's response as a lambda_http response. Text bodies (JSON, text/plain) go out as
/// text; anything else as binary (lambda_http base64-encodes it).
pub fn to_lambda_response(resp: Response) -> lambda_http::Response<Body> {
    let mut builder = lambda_http::Response::builder()
        .status(resp.status)
        .header("content-type", resp.content_type);
    for (name, value) in &resp.headers {
        builder = builder.header(*name, value.as_str());
    }
    let textual = resp.content_type.starts_with("text/") || resp.content_type.contains("json");
    let body = if resp.body.is_empty() {
        Body::Empty
    } else if textual {
        match String::from_utf8(resp.body) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    } else {
        Body::Binary(resp.body)
    };
    builder.body(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not build the response");
        let mut fallback = lambda_http::Response::new(Body::Text(
            r#"{"error":{"code":"internal","message":"internal error"}}"#.into(),
        ));
        *fallback.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// One invocation: convert, route, convert back. Never fails: errors are HTTP answers.
pub async fn handle(
    api: &Api,
    req: lambda_http::Request,
) -> Result<lambda_http::Response<Body>, Infallible> {
    let started = Instant::now();
    let request = to_core_request(req);
    let (method, path) = (request.method, request.path.clone());
    let response = api.handle(request).await;
    tracing::info!(
        ?method,
        %path,
        status = response.status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(to_lambda_response(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function_url_event(body: &str, base64: bool, query: &str, method: &str) -> String {
        serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/webhook",
            "rawQueryString": query,
            "headers": {"content-type": "application/json", "X-Hub-Signature-256": "sha256=ab"},
            "requestContext": {
                "accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                "domainPrefix": "abc", "requestId": "r1", "routeKey": "$default", "stage": "$default",
                "time": "22/Nov/2026:03:00:00 +0000", "timeEpoch": 1795000000000u64,
                "http": {"method": method, "path": "/webhook", "protocol": "HTTP/1.1",
                         "sourceIp": "173.252.0.1", "userAgent": "facebookexternalua"}
            },
            "body": body,
            "isBase64Encoded": base64
        })
        .to_string()
    }

    #[test]
    fn converts_a_function_url_post_with_raw_bytes_and_headers() {
        let event = function_url_event(
            "{\"object\":\"whatsapp_business_account\"}",
            false,
            "",
            "POST",
        );
        let req = to_core_request(lambda_http::request::from_str(&event).unwrap());
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.path, "/webhook");
        assert_eq!(req.query, None);
        assert_eq!(req.header("x-hub-signature-256"), Some("sha256=ab"));
        assert!(req
            .headers
            .iter()
            .all(|(k, _)| k == &k.to_ascii_lowercase()));
        assert_eq!(req.body, b"{\"object\":\"whatsapp_business_account\"}");
    }

    #[test]
    fn base64_bodies_arrive_decoded_byte_for_byte() {
        // "¡Hola!" in UTF-8 followed by a byte that is not UTF-8: still passed through exactly.
        let bytes: &[u8] = &[0xc2, 0xa1, b'H', b'o', b'l', b'a', b'!', 0xff];
        let encoded = "wqFIb2xhIf8=";
        let event = function_url_event(encoded, true, "", "POST");
        let req = to_core_request(lambda_http::request::from_str(&event).unwrap());
        assert_eq!(req.body, bytes);
    }

    #[test]
    fn keeps_the_raw_query_string_for_the_handshake() {
        let q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=t%20k";
        let event = function_url_event("", false, q, "GET");
        let req = to_core_request(lambda_http::request::from_str(&event).unwrap());
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.query.as_deref(), Some(q));
        assert_eq!(req.query_param("hub.verify_token").as_deref(), Some("t k"));
        assert!(req.body.is_empty());
    }

    #[test]
    fn responses_keep_status_type_headers_and_text() {
        let r = to_lambda_response(
            Response::json(503, &serde_json::json!({"error": {"code": "unavailable"}}))
                .with_header("retry-after", "1"),
        );
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(matches!(r.body(), Body::Text(t) if t.contains("unavailable")));

        let r = to_lambda_response(Response::text(200, "1158201444"));
        assert!(matches!(r.body(), Body::Text(t) if t == "1158201444"));
    }
}
