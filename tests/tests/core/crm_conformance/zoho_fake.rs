//! A local Zoho CRM (API v8) and its accounts server: contacts and deals by upsert, notes,
//! search, the fields metadata, and the refresh-token grant, as Zoho documents them. A write
//! takes 1 to 100 records and answers each (207 Multi-Status when some failed); 101 get Zoho's
//! `LIMIT_EXCEEDED`. A request outside those shapes (another API version, a `Bearer` header, an
//! unknown field, a duplicate check on a field that allows duplicates) gets Zoho's 400 body and
//! is recorded as a problem. It enforces the org's concurrency limit (and the sub-concurrency
//! of heavy calls: search, writes of more than 10 records) with 429
//! `TOO_MANY_REQUESTS`, expires access tokens on demand (401 `INVALID_TOKEN`), refuses more than
//! ten access tokens per refresh token in ten minutes, lets search lag behind writes, and
//! answers scripted faults with Zoho's own bodies.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::Fault;
use crate::crm_http::fake::{ECHOED_PHONE, RETRY_AFTER_SECS};
use crate::crm_http::SLOW;

pub(crate) const CLIENT_ID: &str = "1000.QVF8O5MXFUYATAQGJKEWUXJKZH7OOE";
pub(crate) const CLIENT_SECRET: &str = "31a99ae27deff7fr34e419fe321b712a02cdedted7";
pub(crate) const REFRESH_TOKEN: &str = "1000.3421ad0e1a6fe44663ea112b8b1c4fdf.cd38e645e3d7423651d1";
/// Zoho's sub-concurrency for heavy APIs (search, COQL, writes of more than [`HEAVY_WRITE`]
/// records).
const SEARCH_CONCURRENCY: usize = 10;
const HEAVY_WRITE: usize = 10;
/// Access tokens one refresh token may make per ten minutes.
const TOKENS_PER_10_MIN: usize = 10;

/// Fields of the org: module → (API name, unique).
pub(crate) const CONTACT_FIELDS: &[(&str, bool)] = &[
    ("Last_Name", false),
    ("First_Name", false),
    ("Mobile", false),
    ("Phone", false),
    ("Email", false),
    ("WhatsApp_ID", true),
    ("WhatsApp_BSUID", true),
    ("WhatsApp_Marketing_Consent", false),
    ("WhatsApp_Consent_Date", false),
    ("WhatsApp_Consent_Source", false),
    ("wabridge_first_utm_source", false),
    ("wabridge_first_utm_medium", false),
    ("wabridge_first_utm_campaign", false),
    ("wabridge_first_ctwa_clid", false),
    ("wabridge_first_at", false),
    ("wabridge_last_utm_source", false),
    ("wabridge_last_utm_medium", false),
    ("wabridge_last_utm_campaign", false),
    ("wabridge_last_ctwa_clid", false),
    ("wabridge_last_at", false),
];
pub(crate) const DEAL_FIELDS: &[(&str, bool)] = &[
    ("Deal_Name", false),
    ("Stage", false),
    ("Contact_Name", false),
    ("Closing_Date", false),
    ("Amount", false),
    ("wabridge_effect_id", true),
    ("utm_source", false),
    ("utm_medium", false),
    ("utm_campaign", false),
    ("ctwa_clid", false),
    ("wabridge_lead_id", false),
];

/// The Cases module: the standard fields wabridge writes and its custom ones.
pub(crate) const CASE_FIELDS: &[(&str, bool)] = &[
    ("Subject", false),
    ("Status", false),
    ("Case_Origin", false),
    ("Description", false),
    ("Contact_Name", false),
    ("Owner", false),
    ("wabridge_Conversation_Id", true),
    ("wabridge_Revision", false),
    ("wabridge_Agent", false),
    ("wabridge_Origin", false),
    ("wabridge_First_Response_Ms", false),
    ("wabridge_Tags", false),
    ("wabridge_Outcome", false),
    ("wabridge_Close_Reason", false),
    ("wabridge_SLA_Breached_At", false),
];

pub(crate) struct Stored {
    pub body: Map<String, Value>,
    pub written: Instant,
}

#[derive(Default)]
pub(crate) struct ZohoFake {
    /// Calls in flight the org's edition allows this app.
    pub concurrency: usize,
    in_flight: AtomicUsize,
    searching: AtomicUsize,
    pub peak: AtomicUsize,
    pub scripted: Mutex<VecDeque<Fault>>,
    /// A fault for the next `METHOD path`.
    pub fail_once: Mutex<HashMap<String, Fault>>,
    pub problems: Mutex<Vec<String>>,
    pub arrivals: Mutex<Vec<Instant>>,
    pub over_limit: AtomicU64,
    pub search_lag: Mutex<Duration>,
    pub contacts: Mutex<BTreeMap<String, Stored>>,
    pub deals: Mutex<BTreeMap<String, Stored>>,
    pub notes: Mutex<Vec<Value>>,
    pub cases: Mutex<BTreeMap<String, Stored>>,
    /// Every write call: `METHOD path` and its records.
    pub writes: Mutex<Vec<(String, usize)>>,
    /// Writes answered 207 Multi-Status (some records refused, some written).
    pub multi_status: AtomicU64,
    /// Values an org validation rule refuses (`INVALID_DATA` for that record alone).
    pub refused_values: Mutex<HashSet<String>>,
    next_id: AtomicU64,
    /// Fields the org lacks (`Contacts/WhatsApp_BSUID`) or allows duplicates in, for `crm check`.
    pub missing_fields: Mutex<HashSet<String>>,
    pub not_unique: Mutex<HashSet<String>>,
    latency: Duration,
    /// Access tokens Zoho takes now; the token endpoint's grants (when), refusals to come.
    pub live_tokens: Mutex<HashSet<String>>,
    pub grants: Mutex<Vec<Instant>>,
    pub refuse_refreshes: AtomicU64,
}

/// Zoho's request-level error body.
pub(crate) fn error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    (
        status,
        Json(json!({"code": code, "details": details, "message": message, "status": "error"})),
    )
        .into_response()
}

impl ZohoFake {
    pub(crate) fn new(concurrency: usize) -> ZohoFake {
        ZohoFake {
            concurrency,
            ..Default::default()
        }
    }

    pub(crate) fn with_latency(self, latency: Duration) -> ZohoFake {
        ZohoFake { latency, ..self }
    }

    pub(crate) fn problem(&self, p: String) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"data": [self.record_problem(p)]})),
        )
            .into_response()
    }

    /// A problem with one record of a write: recorded, and that record's `INVALID_DATA`.
    pub(crate) fn record_problem(&self, p: String) -> Value {
        self.problems.lock().unwrap().push(p.clone());
        json!({"code": "INVALID_DATA", "details": {"reason": p}, "message": "invalid data",
            "status": "error"})
    }

    pub(crate) fn id(&self) -> String {
        // Zoho's record ids: 19 digits, as strings.
        format!(
            "{}",
            5_725_767_000_000_000_000 + self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Every access token stops working (they expired, or Zoho revoked them).
    pub(crate) fn expire_tokens(&self) {
        self.live_tokens.lock().unwrap().clear();
    }

    /// The fields of `module` the org has: API name → unique.
    pub(crate) fn fields(&self, module: &str) -> Vec<(String, bool)> {
        let all = match module {
            "Contacts" => CONTACT_FIELDS,
            "Deals" => DEAL_FIELDS,
            "Cases" => CASE_FIELDS,
            _ => &[],
        };
        let missing = self.missing_fields.lock().unwrap();
        let not_unique = self.not_unique.lock().unwrap();
        all.iter()
            .filter(|(n, _)| !missing.contains(&format!("{module}/{n}")))
            .map(|(n, u)| {
                (
                    n.to_string(),
                    *u && !not_unique.contains(&format!("{module}/{n}")),
                )
            })
            .collect()
    }
}

/// Counts a call in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) async fn serve(fake: Arc<ZohoFake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn too_many() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "too many requests",
        json!({}),
    )
}

async fn handle(
    State(fake): State<Arc<ZohoFake>>,
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
    if path == "/oauth/v2/token" {
        // The accounts server: another host, not an API call.
        tokio::time::sleep(fake.latency.max(Duration::from_millis(20))).await;
        return token(&fake, &method, &query, &headers, &body);
    }
    fake.arrivals.lock().unwrap().push(Instant::now());
    let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(&fake.in_flight);
    fake.peak.fetch_max(now, Ordering::SeqCst);
    let records = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b["data"].as_array().map(Vec::len))
        .unwrap_or(0);
    let heavy = path.ends_with("/search")
        || (matches!(method, Method::POST | Method::PUT) && records > HEAVY_WRITE);
    let _searching = heavy.then(|| {
        let n = fake.searching.fetch_add(1, Ordering::SeqCst) + 1;
        (InFlight(&fake.searching), n)
    });
    let over_search = _searching
        .as_ref()
        .is_some_and(|(_, n)| *n > SEARCH_CONCURRENCY);
    if now > fake.concurrency || over_search {
        fake.over_limit.fetch_add(1, Ordering::Relaxed);
        return too_many();
    }
    if !fake.latency.is_zero() {
        tokio::time::sleep(fake.latency).await;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = auth.strip_prefix("Zoho-oauthtoken ") else {
        if !auth.is_empty() {
            let _ = fake.problem(format!(
                "{path}: authorization `{}…` is not Zoho-oauthtoken",
                &auth[..auth.len().min(7)]
            ));
        }
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "Authentication failed",
            json!({}),
        );
    };
    if !fake.live_tokens.lock().unwrap().contains(token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_TOKEN",
            "invalid oauth token",
            json!({}),
        );
    }
    let Some(rest) = path.strip_prefix("/crm/v8/") else {
        return fake.problem(format!("{method} {path}: not an API v8 path"));
    };
    let route = format!("{method} {path}");
    let once = fake.fail_once.lock().unwrap().remove(&route);
    let fault = once.or_else(|| fake.scripted.lock().unwrap().pop_front());
    match fault {
        Some(Fault::RateLimit) => return too_many(),
        Some(Fault::RateLimitRetryAfter) => {
            let mut r = too_many();
            r.headers_mut()
                .insert("retry-after", RETRY_AFTER_SECS.into());
            return r;
        }
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal Server Error occurred while processing this request",
                json!({}),
            )
        }
        Some(Fault::SlowBefore) => {
            tokio::time::sleep(SLOW).await;
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "INTERNAL_ERROR",
                "timeout",
                json!({}),
            );
        }
        Some(Fault::BadRequest) => {
            // Zoho's record-level error, quoting the value it refused.
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"data": [{"code": "INVALID_DATA",
                    "details": {"api_name": "Mobile", "json_path": "$.data[0].Mobile"},
                    "message": format!("invalid data: {ECHOED_PHONE}"), "status": "error"}]})),
            )
                .into_response();
        }
        Some(Fault::Unauthorized) => {
            // The grant lost a scope (re-consented with fewer): a refresh cannot help. An
            // expired or revoked token (`INVALID_TOKEN`) has its own tests (zoho_more.rs).
            return error(
                StatusCode::UNAUTHORIZED,
                "OAUTH_SCOPE_MISMATCH",
                "invalid oauth scope to access this URL",
                json!({}),
            );
        }
        Some(Fault::Forbidden) => {
            return error(
                StatusCode::FORBIDDEN,
                "NO_PERMISSION",
                "permission denied",
                json!({"permissions": ["Crm_Implied_Api_Access"]}),
            )
        }
        Some(Fault::SlowAfter) | Some(Fault::Pass) | None => {}
    }
    let json_body = if matches!(method, Method::POST | Method::PUT) {
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
    if json_body.is_some() {
        fake.writes.lock().unwrap().push((route.clone(), records));
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let answer = super::zoho_fake_records::route(&fake, &method, &segments, &query, json_body);
    if fault == Some(Fault::SlowAfter) {
        tokio::time::sleep(SLOW).await;
    }
    answer
}

/// `POST /oauth/v2/token`, refresh-token grant, parameters in the form body.
fn token(
    fake: &ZohoFake,
    method: &Method,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if *method != Method::POST {
        return fake.problem(format!("{method} /oauth/v2/token"));
    }
    if query.contains_key("client_secret") || query.contains_key("refresh_token") {
        return fake.problem("token: secrets in the URL (proxy logs keep URLs)".into());
    }
    if !headers.get("content-type").is_some_and(|v| {
        v.to_str()
            .unwrap_or("")
            .starts_with("application/x-www-form-urlencoded")
    }) {
        return fake.problem("token: the form is not x-www-form-urlencoded".into());
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let refused = |e: &str| Json(json!({"error": e})).into_response();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return fake.problem(format!("token: grant_type {:?}", form.get("grant_type")));
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return refused("invalid_client");
    }
    if form.get("refresh_token").map(String::as_str) != Some(REFRESH_TOKEN) {
        return refused("invalid_code");
    }
    if fake
        .refuse_refreshes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return refused("invalid_code");
    }
    let mut grants = fake.grants.lock().unwrap();
    let recent = grants
        .iter()
        .filter(|t| t.elapsed() < Duration::from_secs(600))
        .count();
    if recent >= TOKENS_PER_10_MIN {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error_description": "You have made too many requests continuously. Please try again after some time.",
                "error": "Access Denied", "status": "failure"})),
        )
            .into_response();
    }
    grants.push(Instant::now());
    let access = format!("1000.{:032x}.{}", grants.len(), "a1b2c3");
    fake.live_tokens.lock().unwrap().insert(access.clone());
    Json(
        json!({"access_token": access, "scope": "ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ",
        "api_domain": "https://www.zohoapis.com", "token_type": "Bearer", "expires_in": 3600}),
    )
    .into_response()
}
