//! Sends end to end over the embedded engine (SQLite store and queue), with the real Graph
//! client posting to a local HTTP server that answers like Meta (scripted per test): the
//! `POST /sends` service, idempotency under concurrent duplicates, every policy guard, every
//! error class of the sender, and a send's state machine from 202 to read or failed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use wabridge_core::consent::{ConsentService, ContactRef};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::queue::Queue;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::policy::Policy;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_core::sends::service::{NoEvents, Sends};
use wabridge_core::sends::store::SendState;
use wabridge_core::templates::TemplateRegistry;
use wabridge_core::window::WindowService;
use wabridge_graph::GraphClient;
use wabridge_sqlite::{Db, SqliteConsent, SqliteQueue, SqliteSends, SqliteTemplates, SqliteWindow};

/// A stand-in for Meta: answers each request with the next scripted (status, body), then 200.
#[derive(Clone, Default)]
struct Meta {
    script: Arc<Mutex<Vec<(u16, Value)>>>,
    received: Arc<Mutex<Vec<Value>>>,
}

async fn messages(State(meta): State<Meta>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    meta.received.lock().unwrap().push(body.clone());
    let next = {
        let mut s = meta.script.lock().unwrap();
        (!s.is_empty()).then(|| s.remove(0))
    };
    match next {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), Json(body)),
        None => {
            let n = meta.received.lock().unwrap().len();
            (
                StatusCode::OK,
                Json(json!({"messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}], "messages": [{"id": format!("wamid.T{n}")}]})),
            )
        }
    }
}

fn meta_error(code: i64) -> (u16, Value) {
    (
        400,
        json!({"error": {"message": format!("error {code}"), "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": "details"}, "fbtrace_id": "x"}}),
    )
}

struct Setup {
    sends: Sends,
    sender: Sender,
    queue: Arc<SqliteQueue>,
    meta: Meta,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.sqlite")).unwrap();
    let meta = Meta::default();
    let app = Router::new()
        .route("/{version}/{phone}/messages", post(messages))
        .with_state(meta.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let queue = Arc::new(SqliteQueue::new(db.clone(), "sends"));
    let policy = Policy {
        consent: ConsentService::new(Arc::new(SqliteConsent::new(db.clone()))),
        templates: TemplateRegistry::new(Arc::new(SqliteTemplates::new(db.clone()))),
        window: WindowService::new(Arc::new(SqliteWindow::new(db.clone()))),
    };
    let sends = Sends::new(
        Arc::new(SqliteSends::new(db.clone())),
        queue.clone(),
        policy,
        Arc::new(NoEvents),
        Some("test-api-key".into()),
    );
    let graph = GraphClient::new(GraphConfig {
        base_url: format!("http://{addr}"),
        version: "v23.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: "EAAGtest".into(),
        timeout: Duration::from_secs(5),
    });
    let sender = Sender {
        sends: sends.clone(),
        graph: Arc::new(graph),
        limiter: Arc::new(RateLimiter::new(1000.0, Duration::ZERO)),
    };
    Setup {
        sends,
        sender,
        queue,
        meta,
        _dir: dir,
    }
}

const UTILITY: &str = r#"{"to": "+52 1 55 1234 5678", "template": "order_confirmation", "language": "es_MX",
    "category": "UTILITY", "parameters": ["Ana", "1042"]}"#;
const MARKETING: &str = r#"{"to": "+525512345678", "template": "promo_julio", "language": "es_MX", "category": "MARKETING"}"#;

/// Receives and handles every visible message of the sends queue; returns the outcomes.
async fn drain(s: &Setup) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    loop {
        let batch = s.queue.receive(10, Duration::from_secs(30)).await.unwrap();
        if batch.is_empty() {
            return outcomes;
        }
        for d in batch {
            let o = s.sender.handle(&d).await;
            wabridge_core::consumer::settle(s.queue.as_ref(), &d, &o, true)
                .await
                .unwrap();
            outcomes.push(o);
        }
    }
}

/// The HTTP status and code the API answers for `e`.
fn refusal_code(e: wabridge_core::sends::error::SendsError) -> (u16, &'static str) {
    let e = wabridge_core::http::ApiError::from(e);
    (e.status(), e.code())
}

#[tokio::test]
async fn same_idempotency_key_never_sends_twice_even_under_concurrent_duplicates() {
    let s = setup().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let sends = s.sends.clone();
        tasks.push(tokio::spawn(async move {
            sends
                .submit(UTILITY.as_bytes(), Some("order-1042"))
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one send for one key: {ids:?}");
    drain(&s).await;
    assert_eq!(
        s.meta.received.lock().unwrap().len(),
        1,
        "Meta got exactly one request"
    );
    assert_eq!(s.sends.get(&ids[0]).await.unwrap().state, SendState::Sent);
    // Retried after it was sent: same id, nothing new sent.
    let again = s
        .sends
        .submit(UTILITY.as_bytes(), Some("order-1042"))
        .await
        .unwrap();
    assert_eq!(again.id, ids[0]);
    drain(&s).await;
    assert_eq!(s.meta.received.lock().unwrap().len(), 1);
    // Same key, another body: 409.
    let other = UTILITY.replace("1042", "1043");
    let e = s
        .sends
        .submit(other.as_bytes(), Some("order-1042"))
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (409, "conflict"));
    // No key: two sends.
    let a = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    let b = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn marketing_needs_an_opt_in_and_no_later_opt_out() {
    let s = setup().await;
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_without_opt_in"));
    s.sends
        .record_consent(br#"{"to": "5215512345678", "action": "opt_in", "category": "marketing", "source": "checkout",
            "evidence": "order 1042 checkbox", "at": "2026-01-10T10:00:00Z"}"#)
        .await
        .unwrap();
    s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    // The contact writes STOP (the sync handler records it): marketing refused.
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    s.sends
        .policy
        .consent
        .record_stop_keyword(&contact, "evt-1", "STOP", now)
        .await
        .unwrap();
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // Utility still goes.
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    // user_preferences resume, then stop.
    s.sends
        .policy
        .consent
        .record_user_preference(&contact, "evt-2", "resume", now + 1000)
        .await
        .unwrap();
    s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    s.sends
        .policy
        .consent
        .record_user_preference(&contact, "evt-3", "stop", now + 2000)
        .await
        .unwrap();
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // An OLD opt-in registered now does not override the newer stop; the history keeps all.
    s.sends
        .record_consent(br#"{"to": "+525512345678", "action": "opt_in", "source": "store", "at": "2026-01-11T10:00:00Z"}"#)
        .await
        .unwrap();
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    let history = s
        .sends
        .consents(Some("+52 55 1234 5678"), None)
        .await
        .unwrap();
    assert_eq!(history["marketing"], "opted_out");
    assert_eq!(history["history"].as_array().unwrap().len(), 5);
    // A redelivered STOP event records nothing new.
    s.sends
        .policy
        .consent
        .record_stop_keyword(&contact, "evt-1", "STOP", now)
        .await
        .unwrap();
    let history = s.sends.consents(Some("+525512345678"), None).await.unwrap();
    assert_eq!(history["history"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn consent_api_validates() {
    let s = setup().await;
    for (body, code) in [
        (
            r#"{"action": "opt_in", "source": "store"}"#,
            "missing_recipient",
        ),
        (
            r#"{"to": "x", "action": "opt_in", "source": "store"}"#,
            "invalid_recipient",
        ),
        (
            r#"{"to": "+525512345678", "action": "maybe", "source": "store"}"#,
            "invalid_action",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "keyword"}"#,
            "invalid_source",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "store", "category": "x"}"#,
            "invalid_category",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "store", "at": "yesterday"}"#,
            "invalid_at",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "store", "at": "2999-01-01T00:00:00Z"}"#,
            "invalid_at",
        ),
        (r#"[1]"#, "invalid_json"),
    ] {
        let e = s.sends.record_consent(body.as_bytes()).await.unwrap_err();
        assert_eq!(refusal_code(e), (400, code), "{body}");
    }
}

#[tokio::test]
async fn free_form_only_within_24_hours_of_the_last_inbound() {
    let s = setup().await;
    let text = br#"{"to": "+525512345678", "text": "Hola Ana, ya salio tu pedido"}"#;
    let e = s.sends.submit(text, None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "outside_customer_service_window"));
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    s.sends
        .policy
        .window
        .record_inbound(&contact, now - 25 * 3_600_000)
        .await
        .unwrap();
    let e = s.sends.submit(text, None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "outside_customer_service_window"));
    s.sends
        .policy
        .window
        .record_inbound(&contact, now - 3_600_000)
        .await
        .unwrap();
    let r = s.sends.submit(text, None).await.unwrap();
    drain(&s).await;
    let got = s.sends.get(&r.id).await.unwrap();
    assert_eq!(got.state, SendState::Sent);
    let body = s.meta.received.lock().unwrap()[0].clone();
    assert_eq!(body["type"], "text");
    // Its status finds the send by wamid (text messages carry no callback data).
    let status = json!({"id": got.wamid.clone().unwrap(), "status": "delivered", "timestamp": "1767000000", "recipient_id": "5215512345678"});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status))
            .await
            .unwrap(),
        Some((r.id.clone(), true))
    );
}

#[tokio::test]
async fn paused_rejected_disabled_templates_and_wrong_parameter_counts_are_refused() {
    let s = setup().await;
    let registry = &s.sends.policy.templates;
    for (i, event) in ["PAUSED", "REJECTED", "DISABLED"].into_iter().enumerate() {
        let update = json!({"event": event, "message_template_id": 1, "message_template_name": "order_confirmation",
            "message_template_language": "es_MX", "reason": "NONE"});
        registry
            .apply_status_update(&wabridge_tests::model(update), 1000 + i as i64)
            .await
            .unwrap()
            .unwrap();
        let e = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap_err();
        assert_eq!(refusal_code(e), (422, "template_not_sendable"), "{event}");
    }
    // An older APPROVED arriving late does not undo the newer DISABLED.
    let approved = json!({"event": "APPROVED", "message_template_name": "order_confirmation", "message_template_language": "es_MX"});
    assert!(!registry
        .apply_status_update(&wabridge_tests::model(approved.clone()), 500)
        .await
        .unwrap()
        .unwrap());
    assert!(s.sends.submit(UTILITY.as_bytes(), None).await.is_err());
    assert!(registry
        .apply_status_update(&wabridge_tests::model(approved), 5000)
        .await
        .unwrap()
        .unwrap());
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    // Parameter count, when the registry knows it.
    registry
        .define("order_confirmation", "es_MX", Some("UTILITY"), Some(3))
        .await
        .unwrap();
    let e = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "template_parameter_count"));
    registry
        .define("order_confirmation", "es_MX", Some("UTILITY"), Some(2))
        .await
        .unwrap();
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    // A template the registry knows as MARKETING is marketing whatever the caller says.
    registry
        .define("order_confirmation", "es_MX", Some("MARKETING"), Some(2))
        .await
        .unwrap();
    let e = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_without_opt_in"));
}

#[tokio::test]
async fn a_guard_that_changes_while_queued_refuses_in_the_sender() {
    let s = setup().await;
    s.sends
        .record_consent(br#"{"to": "+525512345678", "action": "opt_in", "source": "web_form"}"#)
        .await
        .unwrap();
    let r = s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    s.sends
        .policy
        .consent
        .record_stop_keyword(&contact, "evt-9", "BAJA", now + 1)
        .await
        .unwrap();
    drain(&s).await;
    let got = s.sends.get(&r.id).await.unwrap();
    assert_eq!(got.state, SendState::Refused);
    assert_eq!(got.error.unwrap().code, "marketing_opted_out");
    assert!(s.meta.received.lock().unwrap().is_empty(), "nothing left");
}

#[tokio::test]
async fn each_error_class_of_meta() {
    // Retryable: the message goes back with a delay, the send stays queued, then succeeds.
    for code in [130429, 131000, 131056] {
        let s = setup().await;
        s.meta.script.lock().unwrap().push(meta_error(code));
        let r = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
        let outcomes = drain(&s).await;
        assert!(
            matches!(outcomes[0], Outcome::RetryAfter(_)),
            "{code}: {outcomes:?}"
        );
        if code == 131056 {
            assert!(matches!(outcomes[0], Outcome::RetryAfter(d) if d >= Duration::from_secs(6)));
        }
        assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Queued);
        // Redelivered (the test makes it visible now rather than waiting for the delay).
        let d = wabridge_core::queue::Delivery {
            message_id: "m".into(),
            receipt: "r".into(),
            body: wabridge_core::sends::service::queue_body(&r.id),
            receive_count: 2,
        };
        assert_eq!(s.sender.handle(&d).await, Outcome::Done);
        assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Sent);
    }
    // 5xx without a Meta body: retried.
    let s = setup().await;
    s.meta.script.lock().unwrap().push((503, json!({})));
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    assert!(matches!(drain(&s).await[0], Outcome::RetryAfter(_)));
    // Terminal: failed with the reason, never retried.
    for code in [131026, 131047, 131030, 132000, 132001, 132012] {
        let s = setup().await;
        s.meta.script.lock().unwrap().push(meta_error(code));
        let r = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
        assert_eq!(drain(&s).await, vec![Outcome::Done], "{code}");
        let got = s.sends.get(&r.id).await.unwrap();
        assert_eq!(got.state, SendState::Failed, "{code}");
        let error = got.error.unwrap();
        assert_eq!(error.code, format!("meta_{code}"));
        assert_eq!(error.message, format!("error {code}: details"));
        assert_eq!(s.meta.received.lock().unwrap().len(), 1);
    }
    // 131050: failed, and a marketing opt-out is recorded.
    let s = setup().await;
    s.sends.record_consent(br#"{"to": "+525512345678", "action": "opt_in", "source": "web_form", "at": "2026-01-01T00:00:00Z"}"#).await.unwrap();
    s.meta.script.lock().unwrap().push(meta_error(131050));
    let r = s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    drain(&s).await;
    assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Failed);
    let history = s.sends.consents(Some("+525512345678"), None).await.unwrap();
    assert_eq!(history["marketing"], "opted_out");
    assert_eq!(history["history"][1]["source"], "meta_error");
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // Retryable failures past the attempt limit end as failed.
    let s = setup().await;
    s.meta.script.lock().unwrap().push(meta_error(131000));
    let r = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    let d = wabridge_core::queue::Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: wabridge_core::sends::service::queue_body(&r.id),
        receive_count: wabridge_core::sends::sender::MAX_ATTEMPTS,
    };
    assert_eq!(s.sender.handle(&d).await, Outcome::Done);
    let got = s.sends.get(&r.id).await.unwrap();
    assert_eq!(got.state, SendState::Failed);
    assert!(got
        .error
        .unwrap()
        .message
        .starts_with("gave up after 8 attempts"));
}

#[tokio::test]
async fn state_machine_from_202_to_read_or_failed() {
    let s = setup().await;
    let r = s
        .sends
        .submit(UTILITY.as_bytes(), Some("k1"))
        .await
        .unwrap();
    assert_eq!(r.state, SendState::Queued);
    drain(&s).await;
    let sent = s.sends.get(&r.id).await.unwrap();
    assert_eq!(sent.state, SendState::Sent);
    assert_eq!(sent.wamid.as_deref(), Some("wamid.T1"));
    let body = s.meta.received.lock().unwrap()[0].clone();
    assert_eq!(body["biz_opaque_callback_data"], r.id.as_str());
    let status = |st: &str| {
        json!({"id": "wamid.T1", "status": st, "timestamp": "1767000000",
        "recipient_id": "5215512345678", "biz_opaque_callback_data": r.id})
    };
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("delivered")))
            .await
            .unwrap(),
        Some((r.id.clone(), true))
    );
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("read")))
            .await
            .unwrap(),
        Some((r.id.clone(), true))
    );
    // Late and redelivered statuses change nothing.
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("delivered")))
            .await
            .unwrap(),
        Some((r.id.clone(), false))
    );
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("sent")))
            .await
            .unwrap(),
        Some((r.id.clone(), false))
    );
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("read")))
            .await
            .unwrap(),
        Some((r.id.clone(), false))
    );
    assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Read);
    // Not ours: ignored.
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(
                json!({"id": "wamid.other", "status": "read"})
            ))
            .await
            .unwrap(),
        None
    );

    // Failed after sent, with Meta's error.
    let r2 = s
        .sends
        .submit(UTILITY.as_bytes(), Some("k2"))
        .await
        .unwrap();
    drain(&s).await;
    let failed = json!({"id": "wamid.T2", "status": "failed", "timestamp": "1767000001", "recipient_id": "5215512345678",
        "biz_opaque_callback_data": r2.id, "errors": [{"code": 131026, "title": "Message undeliverable",
        "error_data": {"details": "Receiver is incapable of receiving this message"}}]});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(failed))
            .await
            .unwrap(),
        Some((r2.id.clone(), true))
    );
    let got = s.sends.get(&r2.id).await.unwrap();
    assert_eq!(got.state, SendState::Failed);
    let e = got.error.unwrap();
    assert_eq!(e.code, "meta_131026");
    assert!(e.message.contains("Message undeliverable"));
    // `read` cannot follow `failed`.
    let read = json!({"id": "wamid.T2", "status": "read", "biz_opaque_callback_data": r2.id});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(read))
            .await
            .unwrap(),
        Some((r2.id.clone(), false))
    );
    // A `read` that beats the sender's own `sent` write still moves forward.
    let r3 = s
        .sends
        .submit(UTILITY.as_bytes(), Some("k3"))
        .await
        .unwrap();
    let early = json!({"id": "wamid.early", "status": "read", "biz_opaque_callback_data": r3.id});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(early))
            .await
            .unwrap(),
        Some((r3.id.clone(), true))
    );
    drain(&s).await;
    assert_eq!(s.sends.get(&r3.id).await.unwrap().state, SendState::Read);
    assert_eq!(
        s.meta.received.lock().unwrap().len(),
        2,
        "a send already read is not sent again"
    );
}

#[tokio::test]
async fn api_key_is_required_and_compared() {
    use wabridge_core::http::{Method, Request};
    let s = setup().await;
    let req = |auth: Option<&str>| Request {
        method: Method::Post,
        path: "/sends".into(),
        query: None,
        headers: auth
            .map(|a| vec![("authorization".to_string(), a.to_string())])
            .unwrap_or_default(),
        body: vec![],
    };
    assert!(req(Some("Bearer test-api-key"))
        .authorize_bearer(s.sends.api_key())
        .is_ok());
    assert_eq!(
        req(Some("Bearer wrong"))
            .authorize_bearer(s.sends.api_key())
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        req(None)
            .authorize_bearer(s.sends.api_key())
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        req(Some("Basic dGVzdA=="))
            .authorize_bearer(s.sends.api_key())
            .unwrap_err()
            .status(),
        401
    );
    let closed = Sends::new(
        s.sends.store.clone(),
        s.sends.queue.clone(),
        s.sends.policy.clone(),
        Arc::new(NoEvents),
        None,
    );
    // No key configured: every call refused (fail closed), as a deployment problem.
    assert_eq!(
        req(Some("Bearer "))
            .authorize_bearer(closed.api_key())
            .unwrap_err()
            .status(),
        503
    );
    assert_eq!(
        req(Some("Bearer anything"))
            .authorize_bearer(closed.api_key())
            .unwrap_err()
            .status(),
        503
    );
}

#[tokio::test]
async fn http_routes_answer_with_status_codes_and_json() {
    use wabridge_core::api::Api;
    use wabridge_core::http::{Method, Request};
    let s = setup().await;
    let api = Api::new().with_sends(Arc::new(s.sends.clone()));
    let req = |method: Method, path: &str, query: Option<&str>, auth: bool, body: &str| {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if auth {
            headers.push((
                "authorization".to_string(),
                "Bearer test-api-key".to_string(),
            ));
        }
        Request {
            method,
            path: path.into(),
            query: query.map(str::to_string),
            headers,
            body: body.as_bytes().to_vec(),
        }
    };
    let json_of =
        |r: &wabridge_core::http::Response| serde_json::from_slice::<Value>(&r.body).unwrap();

    let r = api
        .handle(req(Method::Post, "/sends", None, false, UTILITY))
        .await;
    assert_eq!(r.status, 401);
    let r = api
        .handle(req(Method::Post, "/sends", None, true, UTILITY))
        .await;
    assert_eq!(r.status, 202);
    let v = json_of(&r);
    assert_eq!(v["state"], "queued");
    let id = v["id"].as_str().unwrap().to_string();
    let r = api
        .handle(req(Method::Get, &format!("/sends/{id}"), None, true, ""))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["state"].clone()),
        (200, json!("queued"))
    );
    let r = api
        .handle(req(Method::Get, "/sends/snd_nope", None, true, ""))
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .handle(req(
            Method::Post,
            "/sends",
            None,
            true,
            r#"{"to": "+525512345678"}"#,
        ))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["error"]["code"].clone()),
        (400, json!("missing_template"))
    );
    let r = api
        .handle(req(Method::Post, "/sends", None, true, MARKETING))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["error"]["code"].clone()),
        (422, json!("marketing_without_opt_in"))
    );
    let mut plain = req(Method::Post, "/sends", None, true, UTILITY);
    plain.headers[0].1 = "text/plain".into();
    assert_eq!(api.handle(plain).await.status, 415);
    assert_eq!(
        api.handle(req(Method::Delete, "/sends", None, true, ""))
            .await
            .status,
        405
    );
    let r = api
        .handle(req(
            Method::Post,
            "/consents",
            None,
            true,
            r#"{"to": "+525512345678", "action": "opt_in", "source": "agent"}"#,
        ))
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .handle(req(
            Method::Get,
            "/consents",
            Some("to=%2B5215512345678"),
            true,
            "",
        ))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["marketing"].clone()),
        (200, json!("opted_in"))
    );
    // Without the sends service mounted, the routes do not exist.
    assert_eq!(
        Api::new()
            .handle(req(Method::Post, "/sends", None, true, UTILITY))
            .await
            .status,
        404
    );
}

/// Two sender instances, each with its own in-memory limiter (as two Lambda instances have),
/// share the store: a second message to one recipient within the pair interval is held back by
/// the store's pair window instead of reaching Meta. Without the window the second instance's
/// limiter, which never saw the first message, would send it at once.
#[tokio::test]
async fn the_pair_window_holds_across_sender_instances() {
    let s = setup().await;
    let instance = || Sender {
        sends: s.sends.clone(),
        graph: s.sender.graph.clone(),
        limiter: Arc::new(RateLimiter::new(1000.0, Duration::from_secs(6))),
    };
    let (one, two) = (instance(), instance());
    s.sends.submit(UTILITY.as_bytes(), Some("a")).await.unwrap();
    s.sends.submit(UTILITY.as_bytes(), Some("b")).await.unwrap();
    let batch = s.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 2);
    let first = one.handle(&batch[0]).await;
    assert!(matches!(first, Outcome::Done), "{first:?}");
    match two.handle(&batch[1]).await {
        Outcome::RetryAfter(wait) => assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        ),
        other => panic!("the second message to the recipient was not held back: {other:?}"),
    }
    assert_eq!(
        s.meta.received.lock().unwrap().len(),
        1,
        "Meta got one message"
    );
}
