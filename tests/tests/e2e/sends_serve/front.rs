//! The stand-in for Meta's Graph API: Prism behind a loopback front.

use serde_json::{json, Value};
use wabridge_tests::prism::Prism;

use super::*;

/// A loopback "Graph API": forwards every request to Prism (so each is checked against Meta's
/// spec) except those to [`UNDELIVERABLE`] and [`STOPPED_AT_META`], answered with Meta's error
/// body (HTTP 400, `error.code`).
pub(super) struct Front {
    pub(super) url: String,
    _task: tokio::task::JoinHandle<()>,
}

pub(super) async fn front(prism: &Prism) -> Front {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    let upstream = prism.url().to_string();
    async fn forward(
        State(upstream): State<String>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let to = v["to"].as_str().unwrap_or_default().trim_start_matches('+');
        let meta_error = |code: i64, message: &str| {
            (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                json!({"error": {"message": message, "type": "OAuthException", "code": code,
                        "error_data": {"messaging_product": "whatsapp", "details": message},
                        "fbtrace_id": "AbCdEf"}})
                .to_string(),
            )
                .into_response()
        };
        if to == UNDELIVERABLE.trim_start_matches('+') {
            return meta_error(131026, "Message undeliverable");
        }
        if to == STOPPED_AT_META.trim_start_matches('+') {
            return meta_error(131050, "User has stopped marketing messages");
        }
        let mut req = reqwest::Client::new()
            .post(format!("{upstream}{}", uri.path()))
            .body(body.to_vec());
        for name in ["authorization", "user-agent", "content-type"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                req = req.header(name, v);
            }
        }
        match req.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let text = r.text().await.unwrap_or_default();
                (status, [("content-type", "application/json")], text).into_response()
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(forward))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Front { url, _task: task }
}
