//! A local Kommo (API v4): contacts (search by `query`, create, update, read with its leads),
//! contact notes (batch add, list), leads (add, list and search, update, link) and the custom
//! fields, as Kommo documents
//! them. A request outside those shapes (an unknown key, a field id the account lacks, more
//! than 250 entities, a body that is not the documented array) gets Kommo's 400 and is recorded
//! as a problem. It enforces 7 requests per rolling second (429 past it; after repeated 429s the
//! IP is blocked and every call gets 403, as Kommo does), answers an empty search `204 No
//! Content` with no body, lets search lag behind creates, and answers scripted faults with
//! Kommo's own problem bodies. Calls carry the long-lived [`TOKEN`] or an OAuth access token of
//! the token endpoint (`kommo_fake_oauth`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::Fault;
use crate::crm_http::fake::{ECHOED_PHONE, RETRY_AFTER_SECS};
use crate::crm_http::SLOW;

pub(crate) const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.kommo-long-lived";
/// Kommo's limit: requests per rolling second.
pub(crate) const LIMIT: usize = 7;
const WINDOW: Duration = Duration::from_secs(1);
/// 429s past the limit after which the fake blocks the IP (403 for everything).
const BLOCK_AFTER: u64 = 20;

/// The account's contact custom fields (text), by name; ids from [`CONTACT_BASE`].
pub(crate) const CONTACT_FIELDS: &[&str] = &[
    "whatsapp_id",
    "whatsapp_bsuid",
    "whatsapp_marketing_consent",
    "whatsapp_consent_date",
    "whatsapp_consent_source",
    "wabridge_first_utm_source",
    "wabridge_first_utm_medium",
    "wabridge_first_utm_campaign",
    "wabridge_first_ctwa_clid",
    "wabridge_first_at",
    "wabridge_last_utm_source",
    "wabridge_last_utm_medium",
    "wabridge_last_utm_campaign",
    "wabridge_last_ctwa_clid",
    "wabridge_last_at",
];
pub(crate) const LEAD_FIELDS: &[&str] = &[
    "wabridge_effect_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "ctwa_clid",
    "wabridge_lead_id",
    // A conversation's lead (docs/crm/kommo.md#conversations).
    "wabridge_conversation_id",
    "wabridge_revision",
    "wabridge_agent",
    "wabridge_origin",
    "wabridge_opened_by",
    "wabridge_first_response_ms",
    "wabridge_tags",
    "wabridge_outcome",
    "wabridge_close_reason",
    "wabridge_closed_at",
    "wabridge_sla_breached_at",
];
const CONTACT_BASE: u64 = 1_000;
const LEAD_BASE: u64 = 2_000;
/// The `PHONE` system field's id.
pub(crate) const PHONE_ID: u64 = 900;

/// A custom field's id in the fake account.
pub(crate) fn field_id(lead: bool, name: &str) -> u64 {
    let (names, base) = if lead {
        (LEAD_FIELDS, LEAD_BASE)
    } else {
        (CONTACT_FIELDS, CONTACT_BASE)
    };
    base + names
        .iter()
        .position(|n| *n == name)
        .expect("a known field") as u64
}

pub(crate) struct Contact {
    pub body: Value,
    pub created: Instant,
}

#[derive(Default)]
pub(crate) struct KommoFake {
    pub scripted: Mutex<VecDeque<Fault>>,
    /// A fault for the next `METHOD path`.
    pub fail_once: Mutex<HashMap<String, Fault>>,
    pub problems: Mutex<Vec<String>>,
    pub arrivals: Mutex<Vec<Instant>>,
    pub over_limit: AtomicU64,
    pub blocked: AtomicBool,
    pub search_lag: Mutex<Duration>,
    pub contacts: Mutex<BTreeMap<u64, Contact>>,
    pub notes: Mutex<Vec<Value>>,
    pub leads: Mutex<Vec<Value>>,
    /// Lead id → when it was made (the leads search lags like the contacts search).
    pub lead_created: Mutex<HashMap<u64, Instant>>,
    /// Sizes of the note batches received.
    pub note_batches: Mutex<Vec<usize>>,
    /// Searches answered 204.
    pub empty_searches: AtomicU64,
    next_id: AtomicU64,
    /// Custom fields the account lacks (by name), for `crm check`.
    pub missing_fields: Mutex<Vec<String>>,
    /// The OAuth token endpoint's grants and refresh tokens.
    pub oauth: super::kommo_fake_oauth::OAuthState,
    latency: Duration,
}

/// Kommo's problem body.
pub(crate) fn problem_body(status: StatusCode, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        [("content-type", "application/problem+json")],
        Json(
            json!({"title": title, "type": format!("https://httpstatus.es/{}", status.as_u16()),
            "status": status.as_u16(), "detail": detail}),
        ),
    )
        .into_response()
}

/// Kommo's 400 for a request that fails validation, one error per request entity.
pub(crate) fn validation(path: &str, detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/problem+json")],
        Json(json!({"validation-errors": [{"request_id": "0", "errors": [
                {"code": "InvalidValue", "path": path, "detail": detail}]}],
            "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
            "detail": "Request validation failed"})),
    )
        .into_response()
}

pub(crate) fn ok(v: Value) -> Response {
    Json(v).into_response()
}

impl KommoFake {
    pub(crate) fn with_latency(latency: Duration) -> KommoFake {
        KommoFake {
            latency,
            ..Default::default()
        }
    }

    pub(crate) fn problem(&self, p: String) -> Response {
        self.problems.lock().unwrap().push(p.clone());
        validation("", &p)
    }

    pub(crate) fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 10_001
    }

    /// Counts the call in the rolling second; `false` when it exceeds the limit.
    fn within_limit(&self) -> bool {
        let now = Instant::now();
        let mut log = self.arrivals.lock().unwrap();
        log.push(now);
        log.iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < WINDOW)
            .count()
            <= LIMIT
    }
}

pub(crate) async fn serve(fake: Arc<KommoFake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn handle(
    State(fake): State<Arc<KommoFake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if fake.blocked.load(Ordering::Relaxed) {
        return problem_body(StatusCode::FORBIDDEN, "Your IP address has been blocked");
    }
    if !fake.within_limit() {
        if fake.over_limit.fetch_add(1, Ordering::Relaxed) + 1 >= BLOCK_AFTER {
            fake.blocked.store(true, Ordering::Relaxed);
        }
        return problem_body(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    }
    if !fake.latency.is_zero() {
        tokio::time::sleep(fake.latency).await;
    }
    if path == "/oauth2/access_token" {
        return super::kommo_fake_oauth::token(&fake, &method, &headers, &body);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| t == TOKEN || fake.oauth.accepts(t)) {
        return problem_body(StatusCode::UNAUTHORIZED, "Invalid access token");
    }
    let route = format!("{method} {path}");
    let once = fake.fail_once.lock().unwrap().remove(&route);
    let fault = once.or_else(|| fake.scripted.lock().unwrap().pop_front());
    match fault {
        Some(Fault::RateLimit) => {
            return problem_body(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
        }
        Some(Fault::RateLimitRetryAfter) => {
            let mut r = problem_body(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            r.headers_mut()
                .insert("retry-after", RETRY_AFTER_SECS.into());
            return r;
        }
        Some(Fault::ServerError) => return problem_body(StatusCode::BAD_GATEWAY, "Bad gateway"),
        Some(Fault::SlowBefore) => {
            tokio::time::sleep(SLOW).await;
            return problem_body(StatusCode::GATEWAY_TIMEOUT, "Gateway timeout");
        }
        Some(Fault::BadRequest) => {
            return validation(
                "custom_fields_values.0.values.0.value",
                &format!("{ECHOED_PHONE} is not a valid phone number"),
            )
        }
        Some(Fault::Unauthorized) => {
            return problem_body(StatusCode::UNAUTHORIZED, "Token has been revoked")
        }
        Some(Fault::Forbidden) => {
            return problem_body(
                StatusCode::FORBIDDEN,
                "The integration has no access to this account",
            )
        }
        Some(Fault::SlowAfter) | Some(Fault::Pass) | None => {}
    }
    let json_body = if matches!(method, Method::POST | Method::PATCH) {
        if !header("content-type").is_some_and(|v| v.starts_with("application/json")) {
            return fake.problem(format!("{route}: content-type is not JSON"));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(_) => return fake.problem(format!("{route}: body is not JSON")),
        }
    } else {
        None
    };
    let answer = route_call(&fake, &method, &path, &query, json_body);
    if fault == Some(Fault::SlowAfter) {
        tokio::time::sleep(SLOW).await;
    }
    answer
}

fn route_call(
    fake: &KommoFake,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    body: Option<Value>,
) -> Response {
    use super::kommo_fake_leads as leads;
    use super::kommo_fake_records as records;
    if let Some((k, _)) = query.iter().find(|(k, _)| !allowed_param(k)) {
        return fake.problem(format!("{method} {path}: unknown parameter `{k}`"));
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("limit").is_some_and(|l| !l.parse::<u64>().is_ok_and(|l| (1..=250).contains(&l))) {
        return fake.problem(format!("{path}: limit {:?} (at most 250)", param("limit")));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v4", "contacts", "custom_fields"]) => custom_fields(fake, false),
        ("GET", ["api", "v4", "leads", "custom_fields"]) => custom_fields(fake, true),
        ("GET", ["api", "v4", "contacts"]) => records::search(fake, param("query")),
        ("POST", ["api", "v4", "contacts"]) => records::create(fake, body.unwrap()),
        ("PATCH", ["api", "v4", "contacts", id]) => records::patch(fake, id, body.unwrap()),
        ("GET", ["api", "v4", "contacts", id]) => records::get(fake, id, param("with")),
        ("POST", ["api", "v4", "contacts", "notes"]) => records::add_notes(fake, body.unwrap()),
        ("GET", ["api", "v4", "contacts", id, "notes"]) => records::list_notes(fake, id, query),
        ("POST", ["api", "v4", "leads"]) => leads::add(fake, body.unwrap()),
        ("GET", ["api", "v4", "leads"]) => leads::list(fake, query),
        ("PATCH", ["api", "v4", "leads", id]) => leads::patch(fake, id, body.unwrap()),
        ("POST", ["api", "v4", "leads", id, "link"]) => leads::link(fake, id, body.unwrap()),
        _ => fake.problem(format!("{method} {path}: no such endpoint")),
    }
}

/// Query parameters of Kommo's list endpoints.
fn allowed_param(name: &str) -> bool {
    ["query", "limit", "page", "with"].contains(&name)
        || name.starts_with("filter[")
        || name.starts_with("order[")
}

fn custom_fields(fake: &KommoFake, lead: bool) -> Response {
    let missing = fake.missing_fields.lock().unwrap().clone();
    let (names, entity) = if lead {
        (LEAD_FIELDS, "leads")
    } else {
        (CONTACT_FIELDS, "contacts")
    };
    let mut fields: Vec<Value> = names
        .iter()
        .filter(|n| !missing.iter().any(|m| m == *n))
        .map(|n| {
            json!({"id": field_id(lead, n), "name": n, "code": null, "type": "text",
                        "entity_type": entity, "is_api_only": false})
        })
        .collect();
    if !lead {
        fields.push(
            json!({"id": PHONE_ID, "name": "Phone", "code": "PHONE", "type": "multitext",
                           "entity_type": "contacts"}),
        );
    }
    ok(json!({"_total_items": fields.len(), "_page": 1,
        "_links": {"self": {"href": format!("/api/v4/{entity}/custom_fields?page=1")}},
        "_embedded": {"custom_fields": fields}}))
}
