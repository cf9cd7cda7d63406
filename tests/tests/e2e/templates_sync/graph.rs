//! The local Graph server: answers `GET .../message_templates` as scripted per test (by the
//! `after` cursor) and records what it was asked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use wabridge_core::config;
use wabridge_core::sends::template_sync::TemplateSyncConfig;

use super::*;

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) path: String,
    query: Vec<(String, String)>,
    pub(super) authorization: Option<String>,
    pub(super) user_agent: Option<String>,
}

impl Seen {
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a request given its `after` cursor: status and JSON body.
pub(super) type Answer = Arc<dyn Fn(Option<&str>) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
struct GraphState {
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Duration,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn graph_handler(
    axum::extract::State(state): axum::extract::State<GraphState>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::response::Response {
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        path: uri.path().to_string(),
        query,
        authorization: header("authorization"),
        user_agent: header("user-agent"),
    };
    let after = seen.param("after").map(str::to_string);
    state.seen.lock().unwrap().push(seen);
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let (status, body) = (state.answer)(after.as_deref());
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

pub(super) struct GraphServer {
    pub(super) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl GraphServer {
    pub(super) async fn start(answer: Answer) -> GraphServer {
        GraphServer::start_with_delay(answer, Duration::ZERO).await
    }

    pub(super) async fn start_with_delay(answer: Answer, delay: Duration) -> GraphServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(graph_handler)
            .with_state(GraphState {
                answer,
                seen: seen.clone(),
                delay,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GraphServer { url, seen }
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(super) fn config(&self) -> TemplateSyncConfig {
        TemplateSyncConfig::from_lookup(|n| match n {
            config::WHATSAPP_ACCESS_TOKEN => Some(TOKEN.into()),
            config::WHATSAPP_BUSINESS_ACCOUNT_ID => Some(WABA.into()),
            config::WHATSAPP_API_URL => Some(self.url.clone()),
            _ => None,
        })
        .unwrap()
    }
}
