//! The `ingest` Lambda behind a Function URL (or an HTTP API v2 route): converts lambda_http
//! requests to the core's [`Request`] and [`Api`] responses back, and wires the AWS engine
//! (DynamoDB dedupe + SQS events queue under [`StagedInbox`]) once per cold start.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use lambda_http::{Body, RequestExt};
use wabridge_core::adapters::dynamo::attribution::DynamoAttribution;
use wabridge_core::adapters::dynamo::dedupe::DynamoDedupe;
use wabridge_core::adapters::dynamo::sends::DynamoSends;
use wabridge_core::adapters::sqs::SqsQueue;
use wabridge_core::api::Api;
use wabridge_core::attribution::conversions::MetaConversions;
use wabridge_core::attribution::service::AttributionService;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::config;
use wabridge_core::dedupe::DEFAULT_DEDUPE_TTL;
use wabridge_core::http::{Method, Request, Response};
use wabridge_core::inbox::StagedInbox;
use wabridge_core::ingest::{IngestConfig, IngestService};
use wabridge_core::sends::service::{NoEvents, Sends};

/// What the function reads at cold start (names from `wabridge_core::config`).
#[derive(Clone)]
pub struct Settings {
    pub table: String,
    pub events_queue_url: String,
    pub ingest: IngestConfig,
    /// `SENDS_QUEUE_URL`: without it `/sends` and `/consents` are not mounted (404).
    pub sends_queue_url: Option<String>,
    /// `WABRIDGE_API_KEY` (a secret): without it `/sends`, `/consents`, `/links` and
    /// `/conversions` answer 503 (fail closed).
    pub api_key: Option<String>,
    /// Attribution (`WABRIDGE_ATTRIBUTION` file, else the defaults).
    pub attribution: AttributionConfig,
    /// Meta's Conversions API (`META_DATASET_ID` + `WHATSAPP_ACCESS_TOKEN`), if configured.
    pub conversions: Option<MetaConversions>,
}

impl std::fmt::Debug for Settings {
    // By hand: the API key and the conversions token must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("table", &self.table)
            .field("events_queue_url", &self.events_queue_url)
            .field("sends_queue_url", &self.sends_queue_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("conversions", &self.conversions.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the settings through `get` (secret names from the secret store, the rest from the
    /// environment: see `Secrets::lookup`). Errors name what is missing or unusable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let optional = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let required = |name: &str| optional(name).ok_or_else(|| format!("{name} is not set"));
        Ok(Settings {
            table: required(config::WABRIDGE_TABLE)?,
            events_queue_url: required(config::EVENTS_QUEUE_URL)?,
            ingest: IngestConfig::from_lookup(&get)?,
            sends_queue_url: optional(config::SENDS_QUEUE_URL),
            api_key: optional(config::WABRIDGE_API_KEY),
            attribution: match optional(config::WABRIDGE_ATTRIBUTION) {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {path}: {e}"))?;
                    AttributionConfig::from_toml(&text).map_err(|e| e.to_string())?
                }
                None => AttributionConfig::default(),
            },
            conversions: MetaConversions::from_lookup(&get),
        })
    }
}

/// The API this function serves, over the AWS engine: the webhook, attribution (`/links`,
/// `/conversions`) and, with a sends queue, `/sends` and `/consents`.
pub fn build_api(sdk: &SdkConfig, settings: Settings) -> Api {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let table = settings.table;
    let dedupe = DynamoDedupe::new(dynamo.clone(), table.clone());
    // Ingest only sends: it has no use for (nor IAM access to) the dead-letter queue.
    let queue = SqsQueue::producer(sqs.clone(), settings.events_queue_url);
    let inbox = StagedInbox::new(Arc::new(dedupe), Arc::new(queue), DEFAULT_DEDUPE_TTL);
    let mut api = Api::new()
        .with_ingest(Arc::new(IngestService::new(
            settings.ingest,
            Arc::new(inbox),
        )))
        .with_attribution(Arc::new(AttributionService::new(
            Arc::new(DynamoAttribution::new(dynamo.clone(), table.clone())),
            Arc::new(settings.attribution),
            settings.conversions,
            settings.api_key.clone(),
        )));
    match settings.sends_queue_url {
        Some(url) => {
            let policy = wabridge_core::adapters::dynamo::send_policy(&dynamo, &table);
            api = api.with_sends(Arc::new(Sends::new(
                Arc::new(DynamoSends::new(dynamo, table)),
                Arc::new(SqsQueue::producer(sqs, url)),
                policy,
                Arc::new(NoEvents),
                settings.api_key,
            )));
        }
        None => tracing::warn!(
            "{} is not set: /sends and /consents are not served",
            config::SENDS_QUEUE_URL
        ),
    }
    api
}

/// Cold start: the shared SDK configuration, the secrets (Secrets Manager on AWS), the settings
/// and the clients, once.
pub async fn cold_start() -> Result<Api, lambda_http::Error> {
    let sdk = wabridge_core::adapters::aws::sdk_config().await;
    let secrets = wabridge_core::secrets::secrets().await?;
    let settings = Settings::from_lookup(|name| secrets.lookup(name))?;
    tracing::info!(table = %settings.table, "ingest ready");
    Ok(build_api(sdk, settings))
}

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

    #[test]
    fn settings_name_what_is_missing() {
        let err = Settings::from_lookup(|_| None).unwrap_err();
        assert!(err.contains("WABRIDGE_TABLE"), "{err}");
        let settings = Settings::from_lookup(|name| match name {
            "WABRIDGE_TABLE" => Some("t".into()),
            "EVENTS_QUEUE_URL" => Some("q".into()),
            "WHATSAPP_APP_SECRET" => Some("s".repeat(32)),
            _ => None,
        })
        .unwrap();
        assert_eq!(settings.table, "t");
        assert!(settings.ingest.app_secret.is_some());
        let err = Settings::from_lookup(|name| match name {
            "WABRIDGE_MAX_BODY_BYTES" => Some("lots".into()),
            _ => Some("x".into()),
        })
        .unwrap_err();
        assert!(err.contains("WABRIDGE_MAX_BODY_BYTES"), "{err}");
    }

    #[test]
    fn api_settings_are_optional_and_never_logged() {
        let base = |name: &str| match name {
            "WABRIDGE_TABLE" => Some("t".to_string()),
            "EVENTS_QUEUE_URL" => Some("http://q/events".to_string()),
            _ => None,
        };
        let s = Settings::from_lookup(base).unwrap();
        assert_eq!(s.sends_queue_url, None);
        assert_eq!(s.api_key, None);
        assert!(s.conversions.is_none());

        let s = Settings::from_lookup(|name| match name {
            "SENDS_QUEUE_URL" => Some("http://q/sends".to_string()),
            "WABRIDGE_API_KEY" => Some("secret-key-123".to_string()),
            "META_DATASET_ID" => Some("1234".to_string()),
            "WHATSAPP_ACCESS_TOKEN" => Some("secret-token-456".to_string()),
            "WABRIDGE_TABLE" => Some("t".to_string()),
            "EVENTS_QUEUE_URL" => Some("http://q/events".to_string()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.sends_queue_url.as_deref(), Some("http://q/sends"));
        assert_eq!(s.api_key.as_deref(), Some("secret-key-123"));
        assert!(s.conversions.is_some());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("secret-key-123") && !shown.contains("secret-token-456"),
            "{shown}"
        );

        // A blank key is no key (fail closed), not an empty bearer that anyone could send.
        let s = Settings::from_lookup(|name| match name {
            "WABRIDGE_API_KEY" => Some("  ".to_string()),
            other => base(other),
        })
        .unwrap();
        assert_eq!(s.api_key, None);
    }
}
