//! A local Pipedrive: API v2 persons (search, create, patch, delete), deals (create, list,
//! search, patch, delete) and field schema, v1 notes, as Pipedrive documents them. A request outside those shapes (an unknown key, a
//! v1 endpoint out of support since August 2026, the token in the query string) gets
//! Pipedrive's 400 envelope and is recorded as a problem. It enforces the token's burst limit
//! and the search limit per rolling 2 s (429 past them), lets search lag behind creates, and
//! answers scripted faults with Pipedrive's own bodies. Its OAuth server (`/oauth/token`) is
//! `pipedrive_fake_oauth`; the access tokens it hands out are taken as bearers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::pipedrive_fake_oauth::{self, FakeOAuth};
use super::Fault;
use crate::crm_http::fake::{ECHOED_PHONE, RETRY_AFTER_SECS};
use crate::crm_http::SLOW;

pub(crate) const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
/// Pipedrive's burst window.
const WINDOW: Duration = Duration::from_secs(2);

/// The company's custom fields: person and deal, by name.
const PERSON_FIELDS: &[&str] = &[
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
const DEAL_FIELDS: &[&str] = &[
    "wabridge_effect_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "ctwa_clid",
    "wabridge_lead_id",
    // A conversation's deal (docs/crm/pipedrive.md#conversations).
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

/// A custom field's code as Pipedrive makes them: 40 hex characters, unrelated to the name.
pub(crate) fn code(name: &str) -> String {
    hex::encode(sha2::Sha256::digest(name.as_bytes()))[..40].to_string()
}

pub(crate) struct Person {
    pub body: Value,
    pub created: Instant,
}

#[derive(Default)]
pub(crate) struct PipedriveFake {
    /// Requests and searches per rolling 2 s.
    pub limits: (usize, usize),
    pub scripted: Mutex<VecDeque<Fault>>,
    /// A fault for the next `METHOD path`.
    pub fail_once: Mutex<HashMap<String, Fault>>,
    pub problems: Mutex<Vec<String>>,
    pub arrivals: Mutex<Vec<Instant>>,
    searches: Mutex<Vec<Instant>>,
    pub over_limit: AtomicU64,
    pub search_lag: Mutex<Duration>,
    pub persons: Mutex<BTreeMap<u64, Person>>,
    pub notes: Mutex<Vec<Value>>,
    pub deals: Mutex<Vec<Value>>,
    /// Deal id → when it was made (the deals search lags like the persons search).
    pub deal_created: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
    /// Custom fields the company lacks (by name), for `crm check`.
    pub missing_fields: Mutex<Vec<String>>,
    /// How long every answer takes.
    latency: Duration,
    /// The OAuth server's grants and the access tokens it handed out.
    pub oauth: FakeOAuth,
}

pub(crate) fn envelope(status: StatusCode, error: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "error": error, "errorCode": status.as_u16(),
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
            "data": null, "additional_data": null})),
    )
        .into_response()
}

pub(crate) fn ok(data: Value, additional: Value) -> Response {
    Json(json!({"success": true, "data": data, "additional_data": additional})).into_response()
}

impl PipedriveFake {
    pub(crate) fn new(limits: (usize, usize)) -> PipedriveFake {
        PipedriveFake {
            limits,
            ..Default::default()
        }
    }

    pub(crate) fn with_latency(self, latency: Duration) -> PipedriveFake {
        PipedriveFake { latency, ..self }
    }

    pub(crate) fn problem(&self, p: String) -> Response {
        self.problems.lock().unwrap().push(p.clone());
        envelope(StatusCode::BAD_REQUEST, &p)
    }

    pub(crate) fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts the call in its windows; `false` when it exceeds one of them.
    fn within_limits(&self, search: bool) -> bool {
        let now = Instant::now();
        let over = |log: &Mutex<Vec<Instant>>, max: usize| {
            let mut log = log.lock().unwrap();
            log.push(now);
            log.iter()
                .rev()
                .take_while(|t| now.duration_since(**t) < WINDOW)
                .count()
                > max
        };
        let general = over(&self.arrivals, self.limits.0);
        let searched = search && over(&self.searches, self.limits.1);
        !(general || searched)
    }
}

pub(crate) async fn serve(fake: Arc<PipedriveFake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn handle(
    State(fake): State<Arc<PipedriveFake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    // oauth.pipedrive.com: its own host, outside the API's burst limits.
    if path == pipedrive_fake_oauth::TOKEN_PATH {
        return pipedrive_fake_oauth::token(&fake, &method, &query, &headers, &body);
    }
    if !fake.within_limits(path.ends_with("/search")) {
        fake.over_limit.fetch_add(1, Ordering::Relaxed);
        let mut r = envelope(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
        r.headers_mut().insert("x-ratelimit-reset", 2u64.into());
        r.headers_mut().insert("x-ratelimit-remaining", 0u64.into());
        return r;
    }
    if !fake.latency.is_zero() {
        tokio::time::sleep(fake.latency).await;
    }
    if query.contains_key("api_token") {
        return fake.problem(format!(
            "{path}: the API token belongs in x-api-token, not the URL"
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let api_token = header("x-api-token") == Some(TOKEN);
    let bearer = header("authorization").and_then(|a| a.strip_prefix("Bearer "));
    if header("x-api-token").is_some() && header("authorization").is_some() {
        return fake.problem(format!("{path}: an API token and a bearer at once"));
    }
    if let Some(bearer) = bearer {
        if !fake.oauth.takes(bearer) {
            return envelope(
                StatusCode::UNAUTHORIZED,
                "Invalid token: access token is invalid",
            );
        }
    } else if !api_token {
        return envelope(StatusCode::UNAUTHORIZED, "unauthorized access");
    }
    let route = format!("{method} {path}");
    let once = fake.fail_once.lock().unwrap().remove(&route);
    let fault = once.or_else(|| fake.scripted.lock().unwrap().pop_front());
    match fault {
        Some(Fault::RateLimit) => {
            let mut r = envelope(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
            r.headers_mut().insert("x-ratelimit-reset", 1u64.into());
            r.headers_mut().insert("x-ratelimit-remaining", 0u64.into());
            return r;
        }
        Some(Fault::RateLimitRetryAfter) => {
            let mut r = envelope(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
            r.headers_mut()
                .insert("retry-after", RETRY_AFTER_SECS.into());
            return r;
        }
        Some(Fault::ServerError) => return envelope(StatusCode::BAD_GATEWAY, "Bad gateway"),
        Some(Fault::SlowBefore) => {
            tokio::time::sleep(SLOW).await;
            return envelope(StatusCode::GATEWAY_TIMEOUT, "Gateway timeout");
        }
        Some(Fault::BadRequest) => {
            return envelope(
                StatusCode::BAD_REQUEST,
                &format!("Validation failed: phones: {ECHOED_PHONE} is not a valid phone number"),
            )
        }
        Some(Fault::Unauthorized) => {
            return envelope(StatusCode::UNAUTHORIZED, "unauthorized access")
        }
        Some(Fault::Forbidden) => {
            return envelope(
                StatusCode::FORBIDDEN,
                "You do not have permissions to do this action",
            )
        }
        Some(Fault::SlowAfter) | Some(Fault::Pass) | None => {}
    }
    let json_body = if matches!(method, Method::POST | Method::PATCH) {
        if !headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"))
        {
            return fake.problem(format!("{route}: content-type is not JSON"));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => Some(m),
            _ => return fake.problem(format!("{route}: body is not a JSON object")),
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
    fake: &PipedriveFake,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: Option<Map<String, Value>>,
) -> Response {
    let limit_ok = |max: u64| {
        query
            .get("limit")
            .is_none_or(|l| l.parse::<u64>().is_ok_and(|l| (1..=max).contains(&l)))
    };
    if !limit_ok(500) {
        return fake.problem(format!("{path}: limit {:?}", query.get("limit")));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v2", "personFields"]) => {
            fields(fake, PERSON_FIELDS, &["name", "phone", "email"])
        }
        ("GET", ["api", "v2", "dealFields"]) => {
            fields(fake, DEAL_FIELDS, &["title", "value", "stage_id"])
        }
        ("GET", ["api", "v2", "persons", "search"]) => {
            super::pipedrive_fake_records::search(fake, query)
        }
        ("POST", ["api", "v2", "persons"]) => {
            super::pipedrive_fake_records::create(fake, body.unwrap())
        }
        ("PATCH", ["api", "v2", "persons", id]) => {
            super::pipedrive_fake_records::patch(fake, id, body.unwrap())
        }
        ("DELETE", ["api", "v2", "persons", id]) => {
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| fake.persons.lock().unwrap().remove(&id))
            {
                Some(_) => ok(json!({"id": id.parse::<u64>().unwrap()}), Value::Null),
                None => envelope(StatusCode::NOT_FOUND, "Person not found"),
            }
        }
        ("POST", ["v1", "notes"]) => super::pipedrive_fake_records::add_note(fake, body.unwrap()),
        ("GET", ["v1", "notes"]) => super::pipedrive_fake_records::list_notes(fake, query),
        ("POST", ["api", "v2", "deals"]) => {
            super::pipedrive_fake_records::add_deal(fake, body.unwrap())
        }
        ("GET", ["api", "v2", "deals"]) => super::pipedrive_fake_records::list_deals(fake, query),
        ("GET", ["api", "v2", "deals", "search"]) => {
            super::pipedrive_fake_deals::search(fake, query)
        }
        ("PATCH", ["api", "v2", "deals", id]) => {
            super::pipedrive_fake_deals::patch(fake, id, body.unwrap())
        }
        ("DELETE", ["api", "v2", "deals", id]) => super::pipedrive_fake_deals::delete(fake, id),
        (_, ["v1", "persons" | "deals" | "activities" | "itemSearch" | "organizations", ..]) => {
            fake.problem(format!(
                "{method} {path}: a v1 endpoint out of support since 1 Aug 2026 (use API v2)"
            ))
        }
        _ => fake.problem(format!("{method} {path}: no such endpoint")),
    }
}

fn fields(fake: &PipedriveFake, custom: &[&str], standard: &[&str]) -> Response {
    let missing = fake.missing_fields.lock().unwrap().clone();
    let mut data: Vec<Value> = standard
        .iter()
        .map(|n| json!({"field_code": n, "field_name": n, "field_type": "varchar", "is_custom_field": false}))
        .collect();
    data.extend(custom.iter().filter(|n| !missing.iter().any(|m| m == *n)).map(|n| {
        json!({"field_code": code(n), "field_name": n, "field_type": "varchar", "is_custom_field": true})
    }));
    ok(Value::Array(data), json!({"next_cursor": null}))
}

/// Custom-field codes the company has, of persons or deals.
pub(crate) fn known_codes(deal: bool) -> Vec<String> {
    let names = if deal { DEAL_FIELDS } else { PERSON_FIELDS };
    names.iter().map(|n| code(n)).collect()
}
