//! The local CRM's Standard Webhooks receiver: verifies each signature and timestamp, and
//! keeps every accepted post with the `webhook-id` a receiver deduplicates on.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use super::fake::Fake;
use super::SECRET;

pub(crate) fn webhook(
    fake: &Fake,
    headers: &HeaderMap,
    body: &Bytes,
    slow_after: bool,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (Some(id), Some(ts), Some(sig)) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    ) else {
        return fake.problem("missing Standard Webhooks headers".into());
    };
    if h("content-type").as_deref() != Some("application/json") {
        return fake.problem("content-type is not application/json".into());
    }
    let Ok(ts_n) = ts.parse::<i64>() else {
        return fake.problem("bad webhook-timestamp".into());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts_n).abs() > 300 {
        return fake.problem("webhook-timestamp outside tolerance".into());
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    if !sig.split(' ').any(|s| s == expected) {
        return fake.problem(format!("bad signature for {id}"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return fake.problem("body is not JSON".into());
    };
    if !v["kind"].is_string() || v["v"] != 1 {
        return fake.problem(format!("record without kind/v: {v}"));
    }
    *fake.hooks.lock().unwrap().entry(id.clone()).or_default() += 1;
    let mut v = v;
    // What a receiver deduplicates on, kept beside the record.
    v["_webhook_id"] = json!(id);
    fake.hook_bodies.lock().unwrap().push(v);
    if slow_after {
        fake.slow_after.lock().unwrap().insert(id);
    }
    StatusCode::NO_CONTENT.into_response()
}
