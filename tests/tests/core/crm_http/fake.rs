//! The local CRM server: checks documented request shapes (Standard Webhooks: fake_webhook.rs;
//! HubSpot CRM v3: fake_hubspot.rs, fake_hubspot_reads.rs)
//! and answers 429, 5xx, slow and refused calls on demand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::fake_hubspot::{hubspot, hubspot_read, properties, CONTACT_READ, PROPERTIES};
use super::fake_hubspot_tickets::{
    deal_pipelines, labels, pipelines, DEAL_PIPELINES, LABELS, PIPELINES,
};
use super::fake_webhook::webhook;
use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    RateLimit,
    ServerError,
    /// Answers after the client's timeout, without applying the call.
    SlowBefore,
    /// Applies the call, then answers after the client's timeout (the in-doubt case).
    SlowAfter,
    BadRequest,
    /// 401 / 403 with HubSpot's bodies (a revoked token, a missing scope).
    Unauthorized,
    Forbidden,
    /// 429 with `Retry-After: 30` (a proxy or a newer API version may send one).
    RateLimitRetryAfter,
    /// No fault for this call (scripting a sequence).
    Pass,
}

/// The `Retry-After` of [`Fault::RateLimitRetryAfter`], seconds.
pub(crate) const RETRY_AFTER_SECS: u64 = 30;
/// A full phone number a 400 body echoes (the CRM quoting our input): masked before it reaches
/// a dead-letter reason or a log.
pub(crate) const ECHOED_PHONE: &str = "+5215512345678";

#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) fault_rate: f64,
    pub(crate) latency: Duration,
    pub(crate) counter: AtomicU64,
    pub(crate) scripted: Mutex<VecDeque<Fault>>,
    pub(crate) problems: Mutex<Vec<String>>,
    pub(crate) calls: AtomicU64,
    // webhook receiver: accepted webhook-ids (deduplicated like a Standard Webhooks receiver),
    // raw accepted posts per id, and the ids whose answer was slowed after applying.
    pub(crate) hooks: Mutex<HashMap<String, u32>>,
    pub(crate) hook_bodies: Mutex<Vec<Value>>,
    pub(crate) slow_after: Mutex<HashSet<String>>,
    // hubspot
    pub(crate) contacts: Mutex<HashMap<String, String>>,
    pub(crate) contact_props: Mutex<HashMap<String, Value>>,
    pub(crate) comms: Mutex<Vec<Value>>,
    pub(crate) deals: Mutex<Vec<Value>>,
    pub(crate) notes: Mutex<Vec<Value>>,
    pub(crate) files: Mutex<Vec<super::fake_files::Uploaded>>,
    pub(crate) paths: Mutex<Vec<String>>,
    // HubSpot's search index lags behind creates: search sees objects only this old
    pub(crate) search_lag: Mutex<Duration>,
    pub(crate) created: Mutex<HashMap<String, Instant>>,
    // a fault for the next call to this path (then gone)
    pub(crate) fail_once: Mutex<HashMap<String, Fault>>,
    // calls and inputs per batch endpoint: proves batches happen
    pub(crate) batch_calls: Mutex<HashMap<String, u64>>,
    pub(crate) batch_inputs: Mutex<HashMap<String, u64>>,
    /// HubSpot's burst limit as the fake enforces it (calls per rolling window): over it, 429
    /// with the policy body; every answer reports the calls remaining.
    pub(crate) limit: Option<(usize, Duration)>,
    /// When each call arrived (measuring the rate the adapter really sends).
    pub(crate) arrivals: Mutex<Vec<Instant>>,
    /// Calls answered 429 because the limit was exceeded (not scripted).
    pub(crate) over_limit: AtomicU64,
    /// Properties the portal lacks (`contacts/whatsapp_bsuid`), for `crm check`.
    pub(crate) missing_properties: Mutex<HashSet<String>>,
    /// Tickets by conversation id (`{id, properties}`) and the default associations made
    /// (`tickets/contacts`, `communications/tickets` or `calls/tickets`, from, to).
    pub(crate) tickets: Mutex<HashMap<String, Value>>,
    pub(crate) ticket_links: Mutex<Vec<(String, String, String)>>,
    /// Call engagements (`POST /crm/v3/objects/calls`), as posted with their id.
    pub(crate) call_engagements: Mutex<Vec<Value>>,
}

impl Fake {
    pub(crate) fn next_fault(&self) -> Option<Fault> {
        if let Some(f) = self.scripted.lock().unwrap().pop_front() {
            return (f != Fault::Pass).then_some(f);
        }
        if self.fault_rate <= 0.0 {
            return None;
        }
        // SplitMix64 over a call counter: a reproducible 30% spread over the fault kinds.
        let mut z = self
            .counter
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        let r = self.fault_rate;
        if u < r / 3.0 {
            Some(Fault::RateLimit)
        } else if u < 2.0 * r / 3.0 {
            Some(Fault::ServerError)
        } else if u < 5.0 * r / 6.0 {
            Some(Fault::SlowBefore)
        } else if u < r {
            Some(Fault::SlowAfter)
        } else {
            None
        }
    }

    pub(crate) fn set_search_lag(&self, lag: Duration) {
        *self.search_lag.lock().unwrap() = lag;
    }

    pub(crate) fn problem(&self, p: String) -> Response {
        self.problems.lock().unwrap().push(p.clone());
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "error", "message": p})),
        )
            .into_response()
    }
}

use axum::Json;

pub(crate) fn rate_headers() -> [(&'static str, &'static str); 3] {
    [
        ("x-hubspot-ratelimit-max", "190"),
        ("x-hubspot-ratelimit-remaining", "150"),
        ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
    ]
}

pub(crate) async fn serve(fake: Arc<Fake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub(crate) async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.calls.fetch_add(1, Ordering::Relaxed);
    let remaining = match over_limit(&fake) {
        Ok(remaining) => remaining,
        Err(interval) => {
            fake.over_limit.fetch_add(1, Ordering::Relaxed);
            let ms = interval.as_millis().to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-hubspot-ratelimit-interval-milliseconds", ms.as_str()), ("x-hubspot-ratelimit-remaining", "0")],
                Json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})),
            )
                .into_response();
        }
    };
    if !fake.latency.is_zero() {
        tokio::time::sleep(fake.latency).await;
    }
    let path = uri.path().to_string();
    fake.paths.lock().unwrap().push(path.clone());
    let read = method == Method::GET && path.starts_with(CONTACT_READ);
    if method == Method::GET && path.starts_with(PROPERTIES) {
        return properties(&fake, &path, &headers);
    }
    if method == Method::GET && path == PIPELINES {
        return pipelines();
    }
    if method == Method::GET && path == DEAL_PIPELINES {
        return deal_pipelines();
    }
    if method == Method::GET && path.starts_with(LABELS) && path.ends_with("/labels") {
        return labels(&fake, &path);
    }
    if method != Method::POST && !read {
        return fake.problem(format!("{method} {path}: only POST is used"));
    }
    // Webhook posts share one path: a fault can name the record kind (`/hook#activity`).
    let hook_kind = (path == "/hook")
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .and_then(|v| v["kind"].as_str().map(|k| format!("/hook#{k}")));
    let once = {
        let mut fail_once = fake.fail_once.lock().unwrap();
        fail_once
            .remove(&path)
            .or_else(|| hook_kind.and_then(|k| fail_once.remove(&k)))
    };
    let fault = once.or_else(|| fake.next_fault());
    match fault {
        Some(Fault::RateLimit) if path == "/hook" => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                "slow down",
            )
                .into_response()
        }
        Some(Fault::RateLimit) => {
            // HubSpot's 429: no Retry-After, the policy in the body, the window in the headers.
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-hubspot-ratelimit-interval-milliseconds", "20"), ("x-hubspot-ratelimit-remaining", "0")],
                Json(json!({"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "category": "RATE_LIMITS"})),
            )
                .into_response();
        }
        Some(Fault::ServerError) => {
            return (StatusCode::BAD_GATEWAY, "upstream down").into_response()
        }
        Some(Fault::SlowBefore) => {
            tokio::time::sleep(SLOW).await;
            return (StatusCode::GATEWAY_TIMEOUT, "too slow").into_response();
        }
        Some(Fault::Unauthorized) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"status": "error", "category": "INVALID_AUTHENTICATION",
                    "message": "Authentication credentials not found."})),
            )
                .into_response()
        }
        Some(Fault::Forbidden) => {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({"status": "error", "category": "MISSING_SCOPES",
                    "message": "This app hasn't been granted all required scopes to make this call."})),
            )
                .into_response()
        }
        Some(Fault::RateLimitRetryAfter) => {
            let secs = RETRY_AFTER_SECS.to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.as_str())],
                Json(json!({"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"})),
            )
                .into_response();
        }
        Some(Fault::BadRequest) if path == "/hook" => {
            return (
                StatusCode::BAD_REQUEST,
                format!("receiver refused: {ECHOED_PHONE} is not a valid phone"),
            )
                .into_response()
        }
        Some(Fault::BadRequest) => {
            // HubSpot's validation error quotes the value it refused.
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "category": "VALIDATION_ERROR",
                    "message": format!("Property values were not valid: [{{\"isValid\":false,\"message\":\"{ECHOED_PHONE} is not a valid phone number\",\"error\":\"INVALID_PHONE\",\"name\":\"phone\"}}]"),
                    "correlationId": "4c5d8f0e-0f3a-4b8c-9a51-3b3f2b2f6a11"})),
            )
                .into_response()
        }
        _ => {}
    }
    let slow_after = fault == Some(Fault::SlowAfter);
    let answer = if path == "/hook" {
        webhook(&fake, &headers, &body, slow_after)
    } else if read {
        hubspot_read(&fake, &path, uri.query().unwrap_or_default(), &headers)
    } else {
        hubspot(&fake, &path, &headers, &body)
    };
    let mut answer = answer;
    if let (Some((max, window)), Some(remaining)) = (fake.limit, remaining) {
        let h = answer.headers_mut();
        h.insert("x-hubspot-ratelimit-max", max.into());
        h.insert("x-hubspot-ratelimit-remaining", remaining.into());
        h.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            (window.as_millis() as u64).into(),
        );
    }
    if slow_after {
        tokio::time::sleep(SLOW).await;
    }
    answer
}

/// Records the call's arrival; with a limit, `Err(window)` when it exceeds the calls allowed
/// in the rolling window, else the calls left in it.
fn over_limit(fake: &Fake) -> Result<Option<usize>, Duration> {
    let now = Instant::now();
    let mut arrivals = fake.arrivals.lock().unwrap();
    arrivals.push(now);
    let Some((max, window)) = fake.limit else {
        return Ok(None);
    };
    let recent = arrivals
        .iter()
        .rev()
        .take_while(|t| now.duration_since(**t) < window)
        .count();
    if recent > max {
        return Err(window);
    }
    Ok(Some(max - recent))
}
