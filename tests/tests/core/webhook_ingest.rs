//! The ingest service's answers through the [`Api`] router: handshake, signature (checked before
//! parsing, fail closed without a secret), size limit, envelope errors, hand-off failures and
//! retries, 404/405. The inbox here is a small in-test implementation that records, dedupes by
//! key and fails on demand; the real stores' failure tests live with their adapters.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wabridge_core::api::Api;
use wabridge_core::error::StoreError;
use wabridge_core::event::{Event, EventKind};
use wabridge_core::http::{Method, Request, Response};
use wabridge_core::inbox::{AcceptReport, Inbox};
use wabridge_core::ingest::{IngestConfig, IngestService};
use wabridge_core::signature::{sign, AppSecret};

const SECRET: &str = "ingest-test-secret";
const TOKEN: &str = "verify-me-7f3a";

#[derive(Default)]
struct TestInbox {
    accepted: Mutex<Vec<Event>>,
    seen: Mutex<HashSet<String>>,
    fail: AtomicBool,
    calls: AtomicUsize,
}

#[async_trait]
impl Inbox for TestInbox {
    async fn accept(&self, events: Vec<Event>) -> Result<AcceptReport, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "disk /var/lib/secret-path is full".into(),
            ));
        }
        let mut seen = self.seen.lock().unwrap();
        let mut accepted = self.accepted.lock().unwrap();
        let mut report = AcceptReport::default();
        for e in events {
            if seen.insert(e.key.clone()) {
                accepted.push(e);
                report.accepted += 1;
            } else {
                report.duplicates += 1;
            }
        }
        Ok(report)
    }
}

fn secret() -> AppSecret {
    AppSecret::new(SECRET).unwrap()
}

fn api_with(config: IngestConfig) -> (Api, Arc<TestInbox>) {
    let inbox = Arc::new(TestInbox::default());
    let ingest = Arc::new(IngestService::new(config, inbox.clone()));
    (Api::new().with_ingest(ingest), inbox)
}

fn api() -> (Api, Arc<TestInbox>) {
    api_with(IngestConfig {
        app_secret: Some(secret()),
        verify_token: Some(TOKEN.into()),
        ..IngestConfig::default()
    })
}

fn request(method: Method, path: &str, query: Option<&str>) -> Request {
    Request {
        method,
        path: path.into(),
        query: query.map(str::to_owned),
        headers: vec![],
        body: vec![],
    }
}

fn post(body: &[u8], signature: Option<String>) -> Request {
    Request {
        method: Method::Post,
        path: "/webhook".into(),
        query: None,
        headers: signature
            .map(|s| vec![("x-hub-signature-256".to_string(), s)])
            .unwrap_or_default(),
        body: body.to_vec(),
    }
}

fn signed(body: &[u8]) -> Request {
    post(body, Some(sign(&secret(), body)))
}

fn json(r: &Response) -> serde_json::Value {
    assert_eq!(r.content_type, "application/json");
    serde_json::from_slice(&r.body).expect("JSON body")
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../events/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let (api, _) = api();
    let ok = api
        .handle(request(
            Method::Get,
            "/webhook",
            Some("hub.mode=subscribe&hub.verify_token=verify-me-7f3a&hub.challenge=1158201444"),
        ))
        .await;
    assert_eq!(ok.status, 200);
    assert!(ok.content_type.starts_with("text/plain"));
    assert_eq!(ok.body, b"1158201444");

    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=verify-me-7f3&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=verify-me-7f3a&hub.challenge=1",
        "hub.verify_token=verify-me-7f3a&hub.challenge=1",
        "",
    ] {
        let r = api
            .handle(request(Method::Get, "/webhook", Some(query)))
            .await;
        assert_eq!(r.status, 403, "{query}");
        assert_eq!(json(&r)["error"]["code"], "forbidden");
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    }

    let r = api
        .handle(request(
            Method::Get,
            "/webhook",
            Some("hub.mode=subscribe&hub.verify_token=verify-me-7f3a"),
        ))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(json(&r)["error"]["code"], "missing_challenge");
}

#[tokio::test]
async fn handshake_without_a_configured_token_is_refused() {
    let (api, _) = api_with(IngestConfig {
        app_secret: Some(secret()),
        ..Default::default()
    });
    let r = api
        .handle(request(
            Method::Get,
            "/webhook",
            Some("hub.mode=subscribe&hub.verify_token=&hub.challenge=1"),
        ))
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn signed_post_is_split_handed_off_and_acknowledged() {
    let (api, inbox) = api();
    let body = sample("batched_multi_entry.json");
    let r = api.handle(signed(&body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json(&r);
    assert_eq!(v["events"], 7);
    assert_eq!(v["accepted"], 7);
    assert_eq!(v["duplicates"], 0);
    let accepted = inbox.accepted.lock().unwrap();
    assert_eq!(accepted.len(), 7);
    assert!(accepted.iter().all(|e| e.received_at > 1_700_000_000_000));
}

#[tokio::test]
async fn accented_text_arriving_as_raw_utf8_is_accepted_with_metas_escaped_signature() {
    // Meta signs the \uXXXX-escaped payload; a body that reaches us with raw UTF-8 (a proxy, or
    // Meta itself, as some receivers report) must not be refused for it.
    let (api, inbox) = api();
    let envelope = |text: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"messages":[{{"from":"5215512345678","id":"wamid.acentos","timestamp":"1749416383","type":"text","text":{{"body":"{text}"}}}}]}}}}]}}]}}"#
        )
    };
    let raw = envelope("¿Tienen envío a Monterrey? Obrigado, até logo 👍");
    let escaped =
        envelope(r"\u00bfTienen env\u00edo a Monterrey? Obrigado, at\u00e9 logo \ud83d\udc4d");
    let meta_signature = sign(&secret(), escaped.as_bytes());
    let r = api
        .handle(post(raw.as_bytes(), Some(meta_signature.clone())))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let item: serde_json::Value =
        serde_json::from_str(inbox.accepted.lock().unwrap()[0].item.get()).unwrap();
    assert_eq!(
        item["text"]["body"],
        "¿Tienen envío a Monterrey? Obrigado, até logo 👍"
    );
    // The escaped body as Meta usually sends it passes too (a duplicate of the same message).
    let r = api
        .handle(post(escaped.as_bytes(), Some(meta_signature)))
        .await;
    assert_eq!((r.status, json(&r)["duplicates"].as_u64()), (200, Some(1)));
    // Tampered text is still refused.
    let tampered = envelope("¿Tienen envío a Guadalajara? Obrigado, até logo 👍");
    let r = api
        .handle(post(
            tampered.as_bytes(),
            Some(sign(&secret(), escaped.as_bytes())),
        ))
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn missing_malformed_or_wrong_signatures_are_401_and_touch_nothing() {
    let (api, inbox) = api();
    let body = sample("text_es_mx.json");
    let other = AppSecret::new("someone-else").unwrap();
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'H').unwrap();
    tampered[pos] = b'J';
    let good = sign(&secret(), &body);
    let cases: Vec<(Request, &str)> = vec![
        (post(&body, None), "missing"),
        (post(&body, Some(String::new())), "missing"),
        (post(&body, Some(good[7..].to_string())), "sha256="),
        (post(&body, Some(good.to_uppercase())), "sha256="),
        (
            post(&body, Some(format!("sha256={}", &good[7..70]))),
            "64 hex",
        ),
        (post(&body, Some(sign(&other, &body))), "does not match"),
        (post(&tampered, Some(good.clone())), "does not match"),
    ];
    for (req, needle) in cases {
        let r = api.handle(req).await;
        assert_eq!(r.status, 401);
        let v = json(&r);
        assert_eq!(v["error"]["code"], "unauthorized");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
        assert!(!message.contains(SECRET));
    }
    assert_eq!(inbox.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn signature_is_checked_before_parsing() {
    let (api, _) = api();
    // Not JSON and unsigned: the answer is about the signature, not the JSON.
    let r = api.handle(post(b"not json at all", None)).await;
    assert_eq!(r.status, 401);
    // Re-serialised JSON does not verify: the signature covers the bytes as received.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"id":"wamid.1","from":"5215512345678","type":"text","text":{"body":"Ol\u00e1"}}]}}]}]}"#;
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap()).unwrap();
    let r = api
        .handle(post(&reserialised, Some(sign(&secret(), body))))
        .await;
    assert_eq!(r.status, 401);
    let r = api.handle(signed(body)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn no_app_secret_fails_closed_with_503() {
    let (api, inbox) = api_with(IngestConfig {
        verify_token: Some(TOKEN.into()),
        ..Default::default()
    });
    let body = sample("text_es_mx.json");
    for req in [signed(&body), post(&body, None)] {
        let r = api.handle(req).await;
        assert_eq!(r.status, 503);
        assert!(r.headers.iter().any(|(k, _)| *k == "retry-after"));
        assert_eq!(json(&r)["error"]["code"], "unavailable");
    }
    assert_eq!(
        inbox.calls.load(Ordering::SeqCst),
        0,
        "never accepted unverified"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_before_anything_else() {
    let body = sample("text_es_mx.json");
    let (api, inbox) = api_with(IngestConfig {
        app_secret: Some(secret()),
        verify_token: None,
        max_body_bytes: body.len(),
    });
    // Exactly at the limit: accepted.
    assert_eq!(api.handle(signed(&body)).await.status, 200);
    // One byte over: 413 even though the signature is valid, and even without one.
    let mut bigger = body.clone();
    bigger.push(b'\n');
    for req in [signed(&bigger), post(&bigger, None)] {
        let r = api.handle(req).await;
        assert_eq!(r.status, 413);
        let v = json(&r);
        assert_eq!(v["error"]["code"], "payload_too_large");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&body.len().to_string()));
    }
    // Default limit is 1 MiB.
    let (default_api, _) = self::api();
    let huge = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(default_api.handle(post(&huge, None)).await.status, 413);
    assert_eq!(inbox.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn signed_non_envelopes_are_400_naming_the_problem() {
    let (api, inbox) = api();
    let cases: &[(&[u8], &str, &str)] = &[
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"[]", "not_whatsapp_envelope", "JSON object"),
        (br#"{"object":"page","entry":[]}"#, "not_whatsapp_envelope", "\"page\""),
        (br#"{"object":"whatsapp_business_account"}"#, "missing_entry", "entry"),
        (
            br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{}}]}]}"#,
            "invalid_change",
            "entry[0].changes[0]",
        ),
    ];
    for (body, code, needle) in cases {
        let r = api.handle(signed(body)).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        let v = json(&r);
        assert_eq!(v["error"]["code"], *code);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    assert_eq!(inbox.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn store_failure_is_503_and_the_retry_loses_and_duplicates_nothing() {
    let (api, inbox) = api();
    let body = sample("batched_multi_entry.json");
    inbox.fail.store(true, Ordering::SeqCst);
    let r = api.handle(signed(&body)).await;
    assert_eq!(r.status, 503);
    assert!(r.headers.iter().any(|(k, _)| *k == "retry-after"));
    // The store's detail stays in the logs.
    assert!(!String::from_utf8_lossy(&r.body).contains("secret-path"));
    assert!(inbox.accepted.lock().unwrap().is_empty());

    // Meta retries the same bytes once the store is back.
    inbox.fail.store(false, Ordering::SeqCst);
    let r = api.handle(signed(&body)).await;
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["accepted"], 7);
    // And retries again (say our 200 was lost): everything is a duplicate.
    let r = api.handle(signed(&body)).await;
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["accepted"], 0);
    assert_eq!(json(&r)["duplicates"], 7);
    let accepted = inbox.accepted.lock().unwrap();
    assert_eq!(accepted.len(), 7);
    let kinds: Vec<EventKind> = accepted.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == EventKind::Message).count(),
        4
    );
}

#[tokio::test]
async fn routing_health_404_405() {
    let (api, _) = api();
    let r = api.handle(request(Method::Get, "/healthz", None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(json(&r)["status"], "ok");

    let r = api.handle(request(Method::Get, "/nope", None)).await;
    assert_eq!(r.status, 404);
    assert_eq!(json(&r)["error"]["code"], "not_found");

    for (method, path, allow) in [
        (Method::Put, "/webhook", "GET, POST"),
        (Method::Delete, "/webhook", "GET, POST"),
        (Method::Other, "/webhook", "GET, POST"),
        (Method::Post, "/healthz", "GET"),
    ] {
        let r = api.handle(request(method, path, None)).await;
        assert_eq!(r.status, 405, "{method:?} {path}");
        assert_eq!(json(&r)["error"]["code"], "method_not_allowed");
        assert!(r.headers.iter().any(|(k, v)| *k == "allow" && v == allow));
    }

    // A trailing slash is the same route.
    let body = sample("text_es_mx.json");
    let mut req = signed(&body);
    req.path = "/webhook/".into();
    assert_eq!(api.handle(req).await.status, 200);

    // An API without the ingest service does not serve /webhook.
    let bare = Api::new();
    assert_eq!(bare.handle(signed(&body)).await.status, 404);
    assert_eq!(
        bare.handle(request(Method::Get, "/healthz", None))
            .await
            .status,
        200
    );
}
