//! The local CRM server: checks documented request shapes (Standard Webhooks; HubSpot CRM v3)
//! and answers 429, 5xx, slow and refused calls on demand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

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

/// `GET /crm/v3/properties/{object}`: the portal's properties of an object.
const PROPERTIES: &str = "/crm/v3/properties/";

/// The portal's properties, as HubSpot lists them (`results[].name`, `hasUniqueValue`), less
/// the ones a test removed.
fn properties(fake: &Fake, path: &str, headers: &HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"status": "error", "category": "INVALID_AUTHENTICATION",
                "message": "Authentication credentials not found."}),
            ),
        )
            .into_response();
    }
    let object = path.trim_start_matches(PROPERTIES);
    let touch = ["first", "last"].iter().flat_map(|t| {
        [
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "ctwa_clid",
            "ref_code",
            "at",
        ]
        .iter()
        .map(move |n| format!("wabridge_{t}_{n}"))
    });
    let names: Vec<String> = match object {
        "contacts" => [
            "whatsapp_id",
            "whatsapp_bsuid",
            "phone",
            "email",
            "firstname",
            "lastname",
            "hs_analytics_source_data_2",
            "whatsapp_marketing_consent",
            "whatsapp_consent_date",
            "whatsapp_consent_source",
        ]
        .iter()
        .map(|n| n.to_string())
        .chain(touch)
        .collect(),
        "communications" => [
            "hs_communication_body",
            "hs_timestamp",
            "hs_communication_channel_type",
            "hs_communication_logged_from",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        "deals" => [
            "dealname",
            "pipeline",
            "dealstage",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "ctwa_clid",
            "wabridge_lead_id",
            "wabridge_ref_code",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        "notes" => [
            "hs_note_body",
            "hs_timestamp",
            "hs_attachment_ids",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        _ => return not_found(),
    };
    let missing = fake.missing_properties.lock().unwrap().clone();
    let results: Vec<Value> = names
        .iter()
        .filter(|n| !missing.contains(&format!("{object}/{n}")))
        .map(|n| {
            json!({"name": n, "label": n, "type": "string", "fieldType": "text",
            "hasUniqueValue": n == "whatsapp_id" && !missing.contains("contacts/unique")})
        })
        .collect();
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"results": results})),
    )
        .into_response()
}

/// `GET /crm/v3/objects/contacts/{value}?idProperty=…`.
const CONTACT_READ: &str = "/crm/v3/objects/contacts/";

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"status": "error", "message": "resource not found",
            "category": "OBJECT_NOT_FOUND"})),
    )
        .into_response()
}

/// HubSpot's read of one contact by a unique property: 200 with its id, or 404.
fn hubspot_read(fake: &Fake, path: &str, query: &str, headers: &HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({"status": "error"}))).into_response();
    }
    let value = path.trim_start_matches(CONTACT_READ);
    let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !query.split('&').any(|p| p == "idProperty=whatsapp_id") {
        return fake.problem(format!("read {value}: idProperty missing ({query})"));
    }
    let props = fake.contact_props.lock().unwrap().get(&value).cloned();
    match fake.contacts.lock().unwrap().get(&value) {
        Some(id) => (
            StatusCode::OK,
            rate_headers(),
            Json(json!({"id": id, "properties": props.unwrap_or_default(), "archived": false})),
        )
            .into_response(),
        None => not_found(),
    }
}

/// `POST /crm/v3/objects/contacts/gdpr-delete`: the contact and its associated content go.
fn gdpr_delete(fake: &Fake, v: &Value) -> Response {
    let Some(id) = v["objectId"].as_str() else {
        return fake.problem(format!("gdpr-delete: objectId missing in {v}"));
    };
    if v.get("idProperty").is_some() {
        return fake.problem("gdpr-delete: only record ids are used".into());
    }
    let mut contacts = fake.contacts.lock().unwrap();
    let Some(key) = contacts
        .iter()
        .find(|(_, hs)| hs.as_str() == id)
        .map(|(k, _)| k.clone())
    else {
        return not_found();
    };
    contacts.remove(&key);
    fake.contact_props.lock().unwrap().remove(&key);
    let associated = |o: &Value| o["associations"][0]["to"]["id"] == id;
    fake.comms.lock().unwrap().retain(|c| !associated(c));
    fake.deals.lock().unwrap().retain(|d| !associated(d));
    fake.notes.lock().unwrap().retain(|n| !associated(n));
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) fn hubspot(fake: &Fake, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": "error", "category": "INVALID_AUTHENTICATION"})),
        )
            .into_response();
    }
    if path == "/files/v3/files" {
        return super::fake_files::upload(fake, headers, body);
    }
    if !headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"))
    {
        return fake.problem(format!("{path}: content-type is not JSON"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return fake.problem(format!("{path}: not JSON"));
    };
    let inputs = v["inputs"].as_array().cloned().unwrap_or_default();
    if path.contains("/batch/") {
        // HubSpot batch endpoints: 1..=100 inputs, each with a distinct objectWriteTraceId.
        if inputs.is_empty() || inputs.len() > 100 {
            return fake.problem(format!("{path}: {} inputs", inputs.len()));
        }
        let traces: HashSet<&str> = inputs
            .iter()
            .filter_map(|i| i["objectWriteTraceId"].as_str())
            .collect();
        if traces.len() != inputs.len() {
            return fake.problem(format!("{path}: objectWriteTraceId missing or repeated"));
        }
        *fake
            .batch_calls
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += 1;
        *fake
            .batch_inputs
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += inputs.len() as u64;
    }
    let strings_only = |props: &Value| -> Option<String> {
        match props.as_object() {
            None => Some("properties missing".into()),
            Some(p) => p
                .iter()
                .find(|(_, v)| !v.is_string())
                .map(|(k, _)| format!("property {k} is not a string")),
        }
    };
    // Association of a created object to a known contact with the documented type id.
    let association = |a: &Value, type_id: u64| -> Option<String> {
        let a = &a[0];
        let to = a["to"]["id"].as_str().unwrap_or_default();
        if !fake.contacts.lock().unwrap().values().any(|id| id == to) {
            return Some(format!("association to unknown contact {to}"));
        }
        if a["types"][0]["associationCategory"] != "HUBSPOT_DEFINED"
            || a["types"][0]["associationTypeId"] != type_id
        {
            return Some(format!("association types: {}", a["types"]));
        }
        None
    };
    let mut results = Vec::new();
    let mut errors = Vec::new();
    match path {
        "/crm/v3/objects/contacts/batch/upsert" => {
            let ids: HashSet<&str> = inputs.iter().filter_map(|i| i["id"].as_str()).collect();
            if ids.len() != inputs.len() {
                // HubSpot refuses duplicate ids within one upsert batch.
                return fake.problem("upsert: duplicate id in one batch".into());
            }
            for input in &inputs {
                if input["idProperty"] != "whatsapp_id" {
                    return fake.problem(format!("idProperty {}", input["idProperty"]));
                }
                let id = input["id"].as_str().unwrap_or_default().to_string();
                if let Some(p) = strings_only(&input["properties"]) {
                    return fake.problem(p);
                }
                if input["properties"]["whatsapp_id"] != id.as_str() {
                    return fake.problem(format!("upsert {id}: id property differs"));
                }
                let mut contacts = fake.contacts.lock().unwrap();
                let n = contacts.len();
                let hs_id = contacts
                    .entry(id.clone())
                    .or_insert_with(|| format!("{}", 1000 + n))
                    .clone();
                let mut all_props = fake.contact_props.lock().unwrap();
                let merged = all_props.entry(id).or_insert_with(|| json!({}));
                for (k, val) in input["properties"].as_object().unwrap() {
                    merged[k] = val.clone();
                }
                results.push(
                    json!({"id": hs_id, "properties": input["properties"], "new": false,
                                    "objectWriteTraceId": input["objectWriteTraceId"]}),
                );
            }
        }
        "/crm/v3/objects/communications/batch/create" => {
            for input in &inputs {
                let p = &input["properties"];
                if let Some(problem) = strings_only(p) {
                    return fake.problem(problem);
                }
                if p["hs_communication_channel_type"] != "WHATS_APP"
                    || p["hs_communication_logged_from"] != "CRM"
                {
                    return fake.problem(format!("communication properties: {p}"));
                }
                if !p["hs_timestamp"].is_string() || !p["hs_communication_body"].is_string() {
                    return fake.problem(format!("communication without hs_timestamp/body: {p}"));
                }
                if let Some(problem) = association(&input["associations"], 81) {
                    return fake.problem(problem);
                }
                // A per-input validation failure (what HubSpot answers with 207 Multi-Status).
                if p["hs_communication_body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("RECHAZAR")
                {
                    errors.push(json!({"status": "error", "category": "VALIDATION_ERROR",
                        "message": "Property values were not valid",
                        "context": {"objectWriteTraceId": [input["objectWriteTraceId"]]}}));
                    continue;
                }
                let mut comms = fake.comms.lock().unwrap();
                let id = format!("{}", 5000 + comms.len());
                fake.created
                    .lock()
                    .unwrap()
                    .insert(id.clone(), Instant::now());
                let mut stored = input.clone();
                stored["id"] = json!(id);
                comms.push(stored);
                results.push(json!({"id": id, "properties": p,
                                    "objectWriteTraceId": input["objectWriteTraceId"]}));
            }
        }
        "/crm/v3/objects/deals/batch/create" => {
            for input in &inputs {
                let p = &input["properties"];
                if let Some(problem) = strings_only(p) {
                    return fake.problem(problem);
                }
                for required in ["dealname", "pipeline", "dealstage"] {
                    if !p[required].is_string() {
                        return fake.problem(format!("deal without {required}: {p}"));
                    }
                }
                if let Some(problem) = association(&input["associations"], 3) {
                    return fake.problem(problem);
                }
                let mut deals = fake.deals.lock().unwrap();
                let id = format!("{}", 9000 + deals.len());
                fake.created
                    .lock()
                    .unwrap()
                    .insert(id.clone(), Instant::now());
                let mut stored = input.clone();
                stored["id"] = json!(id);
                deals.push(stored);
                results.push(json!({"id": id, "properties": p,
                                    "objectWriteTraceId": input["objectWriteTraceId"]}));
            }
        }
        "/crm/v3/objects/contacts/gdpr-delete" => return gdpr_delete(fake, &v),
        "/crm/v3/objects/notes" => return super::fake_files::note(fake, &v),
        "/crm/v3/objects/contacts/search" => {
            let f = &v["filterGroups"][0]["filters"][0];
            if f["operator"] != "EQ" || !f["propertyName"].is_string() || !f["value"].is_string() {
                return fake.problem(format!("search filter: {f}"));
            }
            let Some(want) = v["properties"][0].as_str() else {
                return fake.problem(format!("contact search without properties: {v}"));
            };
            let prop = f["propertyName"].as_str().unwrap();
            let contacts = fake.contacts.lock().unwrap().clone();
            let found: Vec<Value> = fake
                .contact_props
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, p)| p[prop] == f["value"])
                .map(|(key, p)| json!({"id": contacts.get(key), "properties": {want: p[want]}}))
                .collect();
            return (
                StatusCode::OK,
                rate_headers(),
                Json(json!({"total": found.len(), "results": found})),
            )
                .into_response();
        }
        "/crm/v3/objects/communications/search"
        | "/crm/v3/objects/deals/search"
        | "/crm/v3/objects/notes/search" => {
            let f = &v["filterGroups"][0]["filters"][0];
            if f["operator"] != "EQ" || !f["propertyName"].is_string() || !f["value"].is_string() {
                return fake.problem(format!("search filter: {f}"));
            }
            let prop = f["propertyName"].as_str().unwrap();
            let store = if path.contains("deals") {
                fake.deals.lock().unwrap().clone()
            } else if path.contains("notes") {
                fake.notes.lock().unwrap().clone()
            } else {
                fake.comms.lock().unwrap().clone()
            };
            let created = fake.created.lock().unwrap().clone();
            let lag = *fake.search_lag.lock().unwrap();
            let indexed = |c: &Value| {
                created
                    .get(c["id"].as_str().unwrap_or_default())
                    .is_some_and(|t| t.elapsed() >= lag)
            };
            let found: Vec<Value> = store
                .iter()
                .filter(|c| c["properties"][prop] == f["value"] && indexed(c))
                .map(|c| json!({"id": c["id"], "properties": {prop: c["properties"][prop]}}))
                .collect();
            return (
                StatusCode::OK,
                rate_headers(),
                Json(json!({"total": found.len(), "results": found})),
            )
                .into_response();
        }
        other => return fake.problem(format!("unexpected path {other}")),
    }
    // HubSpot does not promise the order of batch results: answer them reversed.
    results.reverse();
    let status = if errors.is_empty() {
        if path.ends_with("/create") {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
    } else {
        StatusCode::MULTI_STATUS
    };
    (
        status,
        rate_headers(),
        Json(
            json!({"status": "COMPLETE", "results": results, "errors": errors,
                    "numErrors": errors.len()}),
        ),
    )
        .into_response()
}
