//! A local Salesforce org: the REST API (sObject Collections upserts, describe, update by id,
//! SOQL on External IDs and references, collection deletes) and the client-credentials token endpoint, as
//! Salesforce documents them. A request outside those shapes (another API version, a record
//! without `attributes.type`, an upsert on a field that is not an External ID, an unknown
//! field, more than 200 records) gets Salesforce's 400 error array and is recorded as a problem.
//!
//! It never answers 429: like Salesforce it answers 403 `REQUEST_LIMIT_EXCEEDED`, for calls in
//! flight past the org's cap (counted on every call here, stricter than Salesforce, which counts
//! only long-running ones) and, scripted, for the daily allocation spent. It sets
//! `Sforce-Limit-Info` on every answer, ends sessions on demand (401 `INVALID_SESSION_ID`), and
//! answers scripted faults with Salesforce's own bodies.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::Fault;
use crate::crm_http::fake::ECHOED_PHONE;
use crate::crm_http::SLOW;

pub(crate) const CLIENT_ID: &str = "3MVG9rZjd7MXFdLjB9Xk2aQ.wabridge.test.client";
pub(crate) const CLIENT_SECRET: &str = "9A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F6071";
/// The API version the fake serves.
pub(crate) const API_VERSION: &str = "62.0";
/// Calls in flight a production org allows (long-running ones, in Salesforce).
pub(crate) const ORG_CONCURRENCY: usize = 25;

/// Fields of the org: object → (API name, External ID).
pub(crate) const PERSON_FIELDS: &[(&str, bool)] = &[
    ("Id", false),
    ("LastName", false),
    ("FirstName", false),
    ("Company", false),
    ("MobilePhone", false),
    ("Phone", false),
    ("Email", false),
    ("WhatsApp_Id__c", true),
    ("WhatsApp_BSUID__c", true),
    ("WhatsApp_Marketing_Consent__c", false),
    ("WhatsApp_Consent_Date__c", false),
    ("WhatsApp_Consent_Source__c", false),
    ("wabridge_first_utm_source__c", false),
    ("wabridge_first_utm_medium__c", false),
    ("wabridge_first_utm_campaign__c", false),
    ("wabridge_first_ctwa_clid__c", false),
    ("wabridge_first_at__c", false),
    ("wabridge_last_utm_source__c", false),
    ("wabridge_last_utm_medium__c", false),
    ("wabridge_last_utm_campaign__c", false),
    ("wabridge_last_ctwa_clid__c", false),
    ("wabridge_last_at__c", false),
];
pub(crate) const TASK_FIELDS: &[(&str, bool)] = &[
    ("Id", false),
    ("Subject", false),
    ("Description", false),
    ("Status", false),
    ("ActivityDate", false),
    ("WhoId", false),
    ("WhatId", false),
    ("OwnerId", false),
    ("wabridge_Effect_Id__c", true),
    ("wabridge_Conversation_Id__c", false),
];
pub(crate) const CASE_FIELDS: &[(&str, bool)] = &[
    ("Id", false),
    ("Subject", false),
    ("Description", false),
    ("Origin", false),
    ("Status", false),
    ("ContactId", false),
    ("OwnerId", false),
    ("wabridge_Conversation_Id__c", true),
    ("wabridge_Revision__c", false),
    ("wabridge_Agent__c", false),
    ("wabridge_Origin__c", false),
    ("wabridge_First_Response_Ms__c", false),
    ("wabridge_Tags__c", false),
    ("wabridge_Outcome__c", false),
    ("wabridge_Close_Reason__c", false),
    ("wabridge_SLA_Breached_At__c", false),
];
/// Number fields (JSON numbers) and date/time fields (`YYYY-MM-DDTHH:MM:SS.sssZ`); every other
/// field of the org is Text, a picklist or a reference (JSON strings).
pub(crate) const NUMBER_FIELDS: &[&str] =
    &["wabridge_Revision__c", "wabridge_First_Response_Ms__c"];
pub(crate) const DATETIME_FIELDS: &[&str] = &["wabridge_SLA_Breached_At__c"];
pub(crate) const OPPORTUNITY_FIELDS: &[(&str, bool)] = &[
    ("Id", false),
    ("Name", false),
    ("StageName", false),
    ("CloseDate", false),
    ("ContactId", false),
    ("Amount", false),
    ("wabridge_Effect_Id__c", true),
    ("utm_source__c", false),
    ("utm_medium__c", false),
    ("utm_campaign__c", false),
    ("ctwa_clid__c", false),
    ("wabridge_lead_id__c", false),
];

/// One object's records: id → fields.
pub(crate) type Records = BTreeMap<String, Map<String, Value>>;

#[derive(Default)]
pub(crate) struct SalesforceFake {
    /// Calls in flight the org allows.
    pub concurrency: usize,
    in_flight: AtomicUsize,
    pub peak: AtomicUsize,
    pub scripted: Mutex<VecDeque<Fault>>,
    /// A fault for the next `METHOD path` (path after the version).
    pub fail_once: Mutex<HashMap<String, Fault>>,
    pub problems: Mutex<Vec<String>>,
    pub arrivals: Mutex<Vec<Instant>>,
    pub over_limit: AtomicU64,
    /// Records by object (`Contact`, `Lead`, `Task`, `Opportunity`, `Case`): id → fields.
    pub records: Mutex<HashMap<String, Records>>,
    /// sObject Collections calls and records per object.
    pub collection_calls: Mutex<HashMap<String, (u64, u64)>>,
    next_id: AtomicU64,
    /// Fields the org lacks (`Contact/WhatsApp_BSUID__c`) or has not flagged External ID.
    pub missing_fields: Mutex<HashSet<String>>,
    pub not_external: Mutex<HashSet<String>>,
    latency: Duration,
    /// Access tokens the org takes now; grants made; grants to refuse.
    pub live_tokens: Mutex<HashSet<String>>,
    pub grants: AtomicU64,
    pub refuse_grants: AtomicU64,
    /// The `instance_url` grants name (default: this server).
    pub instance_url: Mutex<String>,
    /// API calls counted against the daily allocation, and the allocation.
    pub api_used: AtomicU64,
    pub api_max: AtomicU64,
}

/// Salesforce's error array.
pub(crate) fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code, "fields": []}])),
    )
        .into_response()
}

impl SalesforceFake {
    pub(crate) fn new(concurrency: usize) -> SalesforceFake {
        SalesforceFake {
            concurrency,
            api_max: AtomicU64::new(100_000),
            ..Default::default()
        }
    }

    pub(crate) fn with_latency(self, latency: Duration) -> SalesforceFake {
        SalesforceFake { latency, ..self }
    }

    pub(crate) fn problem(&self, p: String) -> Response {
        self.problems.lock().unwrap().push(p.clone());
        errors(StatusCode::BAD_REQUEST, "INVALID_FIELD", &p)
    }

    /// A record id of `object` (18 characters, the object's key prefix first).
    pub(crate) fn id(&self, object: &str) -> String {
        let prefix = match object {
            "Contact" => "003",
            "Lead" => "00Q",
            "Task" => "00T",
            "Opportunity" => "006",
            "Case" => "500",
            _ => "a00",
        };
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}Dn000{n:010}")
    }

    /// Every session ends (timed out, or revoked).
    pub(crate) fn expire_tokens(&self) {
        self.live_tokens.lock().unwrap().clear();
    }

    /// The fields of `object` the org has: API name → External ID.
    pub(crate) fn fields(&self, object: &str) -> Vec<(String, bool)> {
        let all = match object {
            "Contact" | "Lead" => PERSON_FIELDS,
            "Task" => TASK_FIELDS,
            "Opportunity" => OPPORTUNITY_FIELDS,
            "Case" => CASE_FIELDS,
            _ => &[],
        };
        let missing = self.missing_fields.lock().unwrap();
        let not_external = self.not_external.lock().unwrap();
        all.iter()
            .filter(|(n, _)| !missing.contains(&format!("{object}/{n}")))
            .map(|(n, x)| {
                let key = format!("{object}/{n}");
                (n.to_string(), *x && !not_external.contains(&key))
            })
            .collect()
    }

    /// The records of `object`.
    pub(crate) fn of(&self, object: &str) -> Vec<(String, Map<String, Value>)> {
        let records = self.records.lock().unwrap();
        records
            .get(object)
            .map(|r| r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

/// Counts a call in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) async fn serve(fake: Arc<SalesforceFake>) -> SocketAddr {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    {
        let mut url = fake.instance_url.lock().unwrap();
        if url.is_empty() {
            *url = format!("http://{addr}");
        }
    }
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn handle(
    State(fake): State<Arc<SalesforceFake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path == "/services/oauth2/token" {
        // The login service, not an API call.
        tokio::time::sleep(fake.latency.max(Duration::from_millis(5))).await;
        return token(&fake, &method, &uri, &headers, &body);
    }
    let mut answer = api(&fake, method, uri, headers, body).await;
    let used = fake.api_used.load(Ordering::SeqCst);
    let max = fake.api_max.load(Ordering::SeqCst);
    answer.headers_mut().insert(
        "sforce-limit-info",
        HeaderValue::from_str(&format!("api-usage={used}/{max}")).unwrap(),
    );
    answer
}

async fn api(
    fake: &SalesforceFake,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    fake.arrivals.lock().unwrap().push(Instant::now());
    fake.api_used.fetch_add(1, Ordering::SeqCst);
    let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(&fake.in_flight);
    fake.peak.fetch_max(now, Ordering::SeqCst);
    if now > fake.concurrency {
        fake.over_limit.fetch_add(1, Ordering::Relaxed);
        return errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        );
    }
    if !fake.latency.is_zero() {
        tokio::time::sleep(fake.latency).await;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let expired = || {
        errors(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    };
    let Some(token) = auth.strip_prefix("Bearer ") else {
        if !auth.is_empty() {
            fake.problems
                .lock()
                .unwrap()
                .push(format!("{path}: authorization is not Bearer"));
        }
        return expired();
    };
    if !fake.live_tokens.lock().unwrap().contains(token) {
        return expired();
    }
    let prefix = format!("/services/data/v{API_VERSION}/");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return fake.problem(format!("{method} {path}: not an API v{API_VERSION} path"));
    };
    let route = format!("{method} {rest}");
    let once = fake.fail_once.lock().unwrap().remove(&route);
    let fault = once.or_else(|| fake.scripted.lock().unwrap().pop_front());
    if let Some(answer) = faulted(fake, fault).await {
        return answer;
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
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segments: Vec<&str> = rest.split('/').collect();
    let answer = super::salesforce_fake_records::route(fake, &method, &segments, &query, json_body);
    if fault == Some(Fault::SlowAfter) {
        tokio::time::sleep(SLOW).await;
    }
    answer
}

/// The answer of a scripted fault, with Salesforce's bodies; `None` to go on.
async fn faulted(fake: &SalesforceFake, fault: Option<Fault>) -> Option<Response> {
    Some(match fault? {
        // The cap on long-running calls: a pause absorbs it.
        Fault::RateLimit => errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        ),
        // The org's rolling 24-hour allocation spent: no Retry-After, the adapter's own wait.
        Fault::RateLimitRetryAfter => errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ),
        Fault::ServerError => errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1908405922-32158 (-1297453041)",
        ),
        Fault::SlowBefore => {
            tokio::time::sleep(SLOW).await;
            errors(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVER_UNAVAILABLE",
                "timeout",
            )
        }
        Fault::BadRequest => errors(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            &format!("Mobile: invalid phone number {ECHOED_PHONE}"),
        ),
        Fault::Unauthorized => {
            // The integration user was deactivated: the session ends and no new grant comes
            // until an admin fixes the app.
            fake.expire_tokens();
            fake.refuse_grants.fetch_add(1, Ordering::SeqCst);
            errors(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            )
        }
        Fault::Forbidden => errors(
            StatusCode::FORBIDDEN,
            "API_DISABLED_FOR_ORG",
            "The REST API is not enabled for this Organization.",
        ),
        Fault::SlowAfter | Fault::Pass => return None,
    })
}

/// `POST /services/oauth2/token`, client-credentials grant, parameters in the form body.
fn token(
    fake: &SalesforceFake,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let refused = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    if *method != Method::POST {
        return fake.problem(format!("{method} /services/oauth2/token"));
    }
    if uri.query().is_some_and(|q| q.contains("client_secret")) {
        return fake.problem("token: the secret in the URL (proxy logs keep URLs)".into());
    }
    if !headers.get("content-type").is_some_and(|v| {
        v.to_str()
            .unwrap_or("")
            .starts_with("application/x-www-form-urlencoded")
    }) {
        return fake.problem("token: the form is not x-www-form-urlencoded".into());
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return fake.problem(format!("token: grant_type {:?}", form.get("grant_type")));
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return refused("invalid_client", "invalid client credentials");
    }
    if fake
        .refuse_grants
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return refused("invalid_grant", "no client credentials user enabled");
    }
    let n = fake.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let access = format!("00DDn000000wabr!AQ4AQ{n:040}");
    fake.live_tokens.lock().unwrap().insert(access.clone());
    let instance = fake.instance_url.lock().unwrap().clone();
    Json(json!({"access_token": access, "signature": "c2lnbmF0dXJl", "scope": "api",
        "instance_url": instance, "id": "https://login.salesforce.com/id/00DDn000000wabrMAA/005Dn000000intgAAA",
        "token_type": "Bearer", "issued_at": "1733400000000"}))
    .into_response()
}
