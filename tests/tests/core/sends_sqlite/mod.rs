//! Sends end to end over the embedded engine (SQLite store and queue), with the real Graph
//! client posting to a local HTTP server that answers like Meta (scripted per test): the
//! `POST /sends` service, idempotency under concurrent duplicates, every policy guard, every
//! error class of the sender, and a send's state machine from 202 to read or failed.

mod api;
mod consent_numbers;
mod guards;
mod idempotency;
mod language;
mod outage;
mod sending;
mod states;
mod templates_waba;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use wabridge_core::retry::RetryPolicy;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::queue::{Delivery, Queue};
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_core::sends::service::Sends;
use wabridge_graph::GraphClient;
use wabridge_sqlite::{Db, SqliteEngine, SqliteQueue, SENDS_QUEUE};

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
    let engine = SqliteEngine::new(db.clone());
    let queue = Arc::new(engine.queue(SENDS_QUEUE));
    let sends = engine.sends(wabridge_tests::admin_keys("test-api-key"));
    let graph = GraphClient::new(GraphConfig {
        base_url: format!("http://{addr}"),
        version: "v23.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: "EAAGtest".into(),
        timeout: Duration::from_secs(5),
    });
    let sender = Sender::new(
        sends.clone(),
        Arc::new(graph),
        Arc::new(RateLimiter::new(1000.0, Duration::ZERO)),
    );
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
            let how = wabridge_core::consumer::Settle::new(RetryPolicy::SENDS, true);
            wabridge_core::consumer::settle(s.queue.as_ref(), &d, o.clone(), &how)
                .await
                .unwrap();
            outcomes.push(o);
        }
    }
}

/// The HTTP status and code the API answers for `e`.
pub(super) fn refusal_code(e: wabridge_core::sends::error::SendsError) -> (u16, &'static str) {
    let e = wabridge_core::http::ApiError::from(e);
    (e.status(), e.code())
}
