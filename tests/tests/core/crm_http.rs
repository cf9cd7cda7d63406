//! The HTTP CRMs (`webhook`, `hubspot`) against a local test server that checks method, path,
//! headers and body shapes (Standard Webhooks; HubSpot CRM v3 as documented) and answers 429,
//! 5xx and slow responses on demand; the fault-injection runs (30% of calls fail, every event
//! delivered twice, through the real SQLite queue and worker) and the throughput benchmark.

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
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::consumer::{run_worker, Handler, Outcome, WorkerOptions};
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{Delivery, OutgoingMessage, Queue};
use wabridge_core::records::{ContactRecord, Record};
use wabridge_core::sync::CrmSync;
use wabridge_crm::hubspot::HubSpotCrm;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteQueue, EVENTS_QUEUE};

const SECRET: &str = "whsec_c2VjcmV0LWZvci10ZXN0cw==";
const TOKEN: &str = "pat-na1-test-token";
const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(1200);
/// How long the adapter distrusts a search miss after an uncertain create (tests: short).
const SEARCH_LAG: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    RateLimit,
    ServerError,
    /// Answers after the client's timeout, without applying the call.
    SlowBefore,
    /// Applies the call, then answers after the client's timeout (the in-doubt case).
    SlowAfter,
    BadRequest,
    /// No fault for this call (scripting a sequence).
    Pass,
}

#[derive(Default)]
struct Fake {
    fault_rate: f64,
    latency: Duration,
    counter: AtomicU64,
    scripted: Mutex<VecDeque<Fault>>,
    problems: Mutex<Vec<String>>,
    calls: AtomicU64,
    // webhook receiver: accepted webhook-ids (deduplicated like a Standard Webhooks receiver),
    // raw accepted posts per id, and the ids whose answer was slowed after applying.
    hooks: Mutex<HashMap<String, u32>>,
    hook_bodies: Mutex<Vec<Value>>,
    slow_after: Mutex<HashSet<String>>,
    // hubspot
    contacts: Mutex<HashMap<String, String>>,
    contact_props: Mutex<HashMap<String, Value>>,
    comms: Mutex<Vec<Value>>,
    deals: Mutex<Vec<Value>>,
    paths: Mutex<Vec<String>>,
    // HubSpot's search index lags behind creates: search sees objects only this old
    search_lag: Duration,
    created: Mutex<HashMap<String, Instant>>,
    // a fault for the next call to this path (then gone)
    fail_once: Mutex<HashMap<String, Fault>>,
    // calls and inputs per batch endpoint: proves batches happen
    batch_calls: Mutex<HashMap<String, u64>>,
    batch_inputs: Mutex<HashMap<String, u64>>,
}

impl Fake {
    fn next_fault(&self) -> Option<Fault> {
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

    fn problem(&self, p: String) -> Response {
        self.problems.lock().unwrap().push(p.clone());
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "error", "message": p})),
        )
            .into_response()
    }
}

use axum::Json;

fn rate_headers() -> [(&'static str, &'static str); 3] {
    [
        ("x-hubspot-ratelimit-max", "190"),
        ("x-hubspot-ratelimit-remaining", "150"),
        ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
    ]
}

async fn serve(fake: Arc<Fake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.calls.fetch_add(1, Ordering::Relaxed);
    if !fake.latency.is_zero() {
        tokio::time::sleep(fake.latency).await;
    }
    let path = uri.path().to_string();
    fake.paths.lock().unwrap().push(path.clone());
    if method != Method::POST {
        return fake.problem(format!("{method} {path}: only POST is used"));
    }
    let once = fake.fail_once.lock().unwrap().remove(&path);
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
        Some(Fault::BadRequest) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "category": "VALIDATION_ERROR"})),
            )
                .into_response()
        }
        _ => {}
    }
    let slow_after = fault == Some(Fault::SlowAfter);
    let answer = if path == "/hook" {
        webhook(&fake, &headers, &body, slow_after)
    } else {
        hubspot(&fake, &path, &headers, &body)
    };
    if slow_after {
        tokio::time::sleep(SLOW).await;
    }
    answer
}

fn webhook(fake: &Fake, headers: &HeaderMap, body: &Bytes, slow_after: bool) -> Response {
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
    fake.hook_bodies.lock().unwrap().push(v);
    if slow_after {
        fake.slow_after.lock().unwrap().insert(id);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn hubspot(fake: &Fake, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
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
        "/crm/v3/objects/communications/search" | "/crm/v3/objects/deals/search" => {
            let f = &v["filterGroups"][0]["filters"][0];
            if f["operator"] != "EQ" || !f["propertyName"].is_string() || !f["value"].is_string() {
                return fake.problem(format!("search filter: {f}"));
            }
            let prop = f["propertyName"].as_str().unwrap();
            let store = if path.contains("deals") {
                fake.deals.lock().unwrap().clone()
            } else {
                fake.comms.lock().unwrap().clone()
            };
            let created = fake.created.lock().unwrap().clone();
            let indexed = |c: &Value| {
                created
                    .get(c["id"].as_str().unwrap_or_default())
                    .is_some_and(|t| t.elapsed() >= fake.search_lag)
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

struct Rig {
    _dir: tempfile::TempDir,
    db: Db,
    addr: SocketAddr,
    sync: Arc<CrmSync>,
    /// The HubSpot adapter of `sync` (for its batch and skip counters).
    hubspot: Option<Arc<HubSpotCrm>>,
    fake: Arc<Fake>,
}

fn hubspot_crm(addr: SocketAddr) -> Arc<HubSpotCrm> {
    let mapping = Mapping::example("hubspot").unwrap();
    Arc::new(
        HubSpotCrm::new(
            &format!("http://{addr}"),
            TOKEN,
            mapping.id_property.as_deref().unwrap(),
            mapping.effect_property.as_deref(),
            TIMEOUT,
        )
        .unwrap()
        .with_search_lag(SEARCH_LAG),
    )
}

/// crm-sync over the SQLite file `db` (identities, ledger and, with `attribution`, the
/// attribution store), writing to `crm`.
async fn crm_sync(
    kind: &str,
    db: &Db,
    crm: Arc<dyn Crm>,
    lease: Duration,
    attribution: bool,
) -> Arc<CrmSync> {
    let mut sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        crm,
        Arc::new(Mapping::example(kind).unwrap()),
    )
    .with_lease(lease);
    if attribution {
        let store = Arc::new(SqliteAttribution::open(db.clone()).await.unwrap());
        sync = sync.with_attribution(store, AttributionConfig::default());
    }
    Arc::new(sync)
}

async fn rig(kind: &str, fake: Fake) -> Rig {
    rig_with(kind, fake, Duration::from_secs(3), false).await
}

async fn rig_with(kind: &str, fake: Fake, lease: Duration, attribution: bool) -> Rig {
    let fake = Arc::new(fake);
    let addr = serve(fake.clone()).await;
    let (crm, hubspot): (Arc<dyn Crm>, _) = match kind {
        "webhook" => (
            Arc::new(WebhookCrm::new(&format!("http://{addr}/hook"), SECRET, TIMEOUT).unwrap()),
            None,
        ),
        _ => {
            let h = hubspot_crm(addr);
            (h.clone(), Some(h))
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let sync = crm_sync(kind, &db, crm, lease, attribution).await;
    Rig {
        _dir: dir,
        db,
        addr,
        sync,
        hubspot,
        fake,
    }
}

fn text_event(i: usize, contacts: usize) -> Value {
    let from = format!("52155{:08}", i % contacts);
    json!({"v": 1, "key": format!("wamid.T{i}"), "kind": "message", "field": "messages", "waba_id": "W1",
        "contact": {"profile": {"name": format!("Cliente {i}")}, "wa_id": from},
        "item": {"from": from, "id": format!("wamid.T{i}"), "timestamp": "1763780000", "type": "text",
                 "text": {"body": format!("mensaje {i}")}},
        "received_at": 1763780000000i64})
}

fn delivery(event: &Value, receive_count: u32) -> Delivery {
    Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: event.to_string(),
        receive_count,
    }
}

/// Enqueues every event `times` times on a real SQLite queue and runs `workers` real worker
/// loops (each receives 100 messages at a time and handles `concurrency` of them at once) until
/// the queue is empty. Returns the dead-letter count and the elapsed time.
async fn drain(
    rig: &Rig,
    events: &[Value],
    times: usize,
    workers: usize,
    concurrency: usize,
) -> (u64, Duration) {
    let queue = Arc::new(SqliteQueue::new(rig.db.clone(), EVENTS_QUEUE).with_max_receives(10));
    let mut batch = Vec::new();
    for round in 0..times {
        for (i, e) in events.iter().enumerate() {
            batch.push(OutgoingMessage {
                id: format!("{round}-{i}"),
                body: e.to_string(),
                delay: None,
            });
        }
    }
    for chunk in batch.chunks(500) {
        queue.send_batch(chunk).await.unwrap();
    }
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            tokio::spawn(run_worker(
                queue.clone(),
                rig.sync.clone() as Arc<dyn Handler>,
                WorkerOptions {
                    batch: 100,
                    concurrency,
                    visibility: Duration::from_secs(30),
                    idle: Duration::from_millis(10),
                    ..WorkerOptions::default()
                },
                stop_rx.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let c = queue.counts().await.unwrap();
        if c.visible + c.hidden == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop_tx.send(true).unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    (queue.counts().await.unwrap().dead, elapsed)
}

#[tokio::test]
async fn webhook_posts_signed_canonical_records_with_stable_ids() {
    let rig = rig("webhook", Fake::default()).await;
    let ev = text_event(1, 10);
    assert_eq!(rig.sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(
        rig.sync.handle(&delivery(&ev, 1)).await,
        Outcome::Done,
        "redelivery"
    );
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let hooks = rig.fake.hooks.lock().unwrap().clone();
    assert_eq!(
        hooks,
        HashMap::from([
            ("wamid.T1#contact".into(), 1),
            ("wamid.T1#activity".into(), 1)
        ])
    );
    let bodies = rig.fake.hook_bodies.lock().unwrap().clone();
    let contact = bodies.iter().find(|b| b["kind"] == "contact").unwrap();
    assert_eq!(contact["phone_e164"], "+525500000001");
    assert_eq!(contact["wa_id"], "5215500000001");
    assert_eq!(contact["fields"]["external_id"], "+525500000001");
    let activity = bodies.iter().find(|b| b["kind"] == "activity").unwrap();
    assert_eq!(activity["contact_id"], contact["id"]);
    assert_eq!(activity["event_id"], "wamid.T1");
    assert_eq!(activity["type"], "text");
    assert_eq!(activity["fields"]["channel"], "whatsapp");
}

#[tokio::test]
async fn webhook_error_classes_map_to_outcomes() {
    // 429 with Retry-After: the CRM's delay (too long to wait in process) goes to the queue.
    let rig = rig("webhook", Fake::default()).await;
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::RateLimit; 3]);
    match rig.sync.handle(&delivery(&text_event(2, 10), 1)).await {
        Outcome::RetryAfter(d) => assert!(d <= Duration::from_secs(1), "{d:?}"),
        other => panic!("429 → retry, got {other:?}"),
    }
    // 5xx three times in a row: back to the queue with backoff (receive 3 → at most 4 s).
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::ServerError; 3]);
    match rig.sync.handle(&delivery(&text_event(3, 10), 3)).await {
        Outcome::RetryAfter(d) => assert!(
            d >= Duration::from_millis(200) && d <= Duration::from_secs(4),
            "{d:?}"
        ),
        other => panic!("5xx → retry, got {other:?}"),
    }
    // Timeouts: retried too.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::SlowBefore; 3]);
    assert!(matches!(
        rig.sync.handle(&delivery(&text_event(4, 10), 1)).await,
        Outcome::RetryAfter(_)
    ));
    // A 4xx rejection: dead letter with the reason, no retries.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .push_back(Fault::BadRequest);
    match rig.sync.handle(&delivery(&text_event(5, 10), 1)).await {
        Outcome::DeadLetter(reason) => assert!(
            reason.contains("HTTP 400") && reason.contains("webhook"),
            "{reason}"
        ),
        other => panic!("400 → dead letter, got {other:?}"),
    }
    // One blip is absorbed in process.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .push_back(Fault::ServerError);
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(6, 10), 1)).await,
        Outcome::Done
    );
    // Everything that failed is delivered exactly once when it is retried.
    for i in 2..=4 {
        assert_eq!(
            rig.sync.handle(&delivery(&text_event(i, 10), 2)).await,
            Outcome::Done
        );
    }
    let hooks = rig.fake.hooks.lock().unwrap().clone();
    for i in [2, 3, 4, 6] {
        assert_eq!(
            hooks.get(&format!("wamid.T{i}#activity")),
            Some(&1),
            "event {i}: {hooks:?}"
        );
    }
    assert_eq!(hooks.get("wamid.T5#activity"), None);
}

#[tokio::test]
async fn hubspot_upserts_contacts_and_logs_communications_as_documented() {
    let rig = rig("hubspot", Fake::default()).await;
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(1, 10), 1)).await,
        Outcome::Done
    );
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(11, 10), 1)).await,
        Outcome::Done
    );
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let props = rig
        .fake
        .contact_props
        .lock()
        .unwrap()
        .get("+525500000001")
        .cloned()
        .unwrap();
    assert_eq!(props["phone"], "+525500000001");
    assert_eq!(props["firstname"], "Cliente");
    assert_eq!(props["lastname"], "11");
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(comms.len(), 2);
    assert_eq!(comms[0]["properties"]["hs_communication_body"], "mensaje 1");
    assert_eq!(comms[0]["properties"]["hs_timestamp"], "1763780000000");
    assert_eq!(
        comms[0]["properties"]["wabridge_effect_id"],
        "wamid.T1#activity"
    );
    // Every status change of a message we sent is one more communication saying so; a failed
    // one carries its error. A late lower status is dropped by the forward-only rule.
    for (st, suffix) in [
        ("sent", "s"),
        ("read", "r"),
        ("delivered", "d"),
        ("failed", "f"),
    ] {
        let mut item = json!({"id": "wamid.OUT", "status": st, "timestamp": "1763780100", "recipient_id": "5215500000001"});
        if st == "failed" {
            item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
        }
        let ev = json!({"v": 1, "key": format!("wamid.OUT:{suffix}"), "kind": "status", "field": "messages",
            "waba_id": "W1", "item": item, "received_at": 1});
        assert_eq!(rig.sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    }
    let comms = rig.fake.comms.lock().unwrap().clone();
    let bodies: Vec<&str> = comms[2..]
        .iter()
        .map(|c| c["properties"]["hs_communication_body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "WhatsApp message wamid.OUT sent",
            "WhatsApp message wamid.OUT read",
            "WhatsApp message wamid.OUT failed: 131026 Message undeliverable"
        ]
    );
    assert_eq!(
        comms[4]["properties"]["wabridge_effect_id"],
        "wamid.OUT:f#status"
    );
    // Every call went through a batch endpoint; no single-object creates.
    let paths = rig.fake.paths.lock().unwrap().clone();
    assert!(paths.iter().all(|p| p.contains("/batch/")), "{paths:?}");
    assert!(rig.fake.problems.lock().unwrap().is_empty());
}

#[tokio::test]
async fn hubspot_rate_limits_and_in_doubt_creates() {
    let rig = rig("hubspot", Fake::default()).await;
    // 429 without Retry-After: the rate-limit window header is honoured (20 ms, waited in process).
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::RateLimit, Fault::RateLimit]);
    let started = Instant::now();
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(1, 10), 1)).await,
        Outcome::Done
    );
    assert!(started.elapsed() >= Duration::from_millis(40));
    // The contact upsert passes; the communication is created, but the answer comes after our
    // timeout. The in-process retry is in doubt, searches, finds it, and stops.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::Pass, Fault::SlowAfter]);
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(11, 10), 1)).await,
        Outcome::Done
    );
    let comms = rig.fake.comms.lock().unwrap().clone();
    let ids: Vec<&str> = comms
        .iter()
        .map(|c| c["properties"]["wabridge_effect_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().filter(|i| **i == "wamid.T11#activity").count(),
        1,
        "{ids:?}"
    );
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(rig
        .fake
        .paths
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.ends_with("/search")));
    assert!(rig.fake.problems.lock().unwrap().is_empty());
}

fn batch_counts(fake: &Fake, path: &str) -> (u64, u64) {
    (
        fake.batch_calls
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0),
        fake.batch_inputs
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0),
    )
}

const UPSERT: &str = "/crm/v3/objects/contacts/batch/upsert";
const COMMS: &str = "/crm/v3/objects/communications/batch/create";
const DEALS: &str = "/crm/v3/objects/deals/batch/create";

async fn handle_all(sync: &Arc<CrmSync>, events: &[Value]) -> Vec<Outcome> {
    futures::future::join_all(events.iter().map(|e| {
        let sync = sync.clone();
        let d = delivery(e, 1);
        async move { sync.handle(&d).await }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_batches_concurrent_events_and_maps_each_result_back() {
    let rig = rig("hubspot", Fake::default()).await;
    // 300 events of 60 people at once: several events of one person meet in one upsert batch
    // (HubSpot refuses duplicate ids there: the test server answers 400 to that).
    let events: Vec<Value> = (0..300).map(|i| text_event(i, 60)).collect();
    let outcomes = handle_all(&rig.sync, &events).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let contacts = rig.fake.contacts.lock().unwrap().clone();
    assert_eq!(contacts.len(), 60);
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(comms.len(), 300);
    for c in &comms {
        // Results come back reversed: each communication still belongs to its own event's
        // contact, with its own text.
        let effect = c["properties"]["wabridge_effect_id"].as_str().unwrap();
        let i: usize = effect
            .trim_start_matches("wamid.T")
            .trim_end_matches("#activity")
            .parse()
            .unwrap();
        assert_eq!(
            c["properties"]["hs_communication_body"],
            format!("mensaje {i}")
        );
        let phone = format!("+5255{:08}", i % 60);
        assert_eq!(
            c["associations"][0]["to"]["id"].as_str(),
            Some(contacts[&phone].as_str()),
            "{effect}"
        );
    }
    let (create_calls, create_inputs) = batch_counts(&rig.fake, COMMS);
    let (upsert_calls, upsert_inputs) = batch_counts(&rig.fake, UPSERT);
    println!("300 concurrent events: {create_calls} communication calls for {create_inputs} inputs, {upsert_calls} upsert calls for {upsert_inputs} inputs");
    assert_eq!(create_inputs, 300);
    assert!(create_calls * 10 <= create_inputs, "{create_calls} calls");
    assert!(upsert_calls * 10 <= 300, "{upsert_calls} calls");
    let stats = rig.hubspot.as_ref().unwrap().stats();
    assert_eq!(stats.communications.inputs, 300);
    assert!(stats.communications.largest > 1, "{stats:?}");
    assert!(stats.contacts.largest <= 100 && stats.communications.largest <= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_batch_errors_reach_the_right_callers() {
    let rig = rig("hubspot", Fake::default()).await;
    // One input of a shared batch is invalid (207 Multi-Status): only its event dead-letters.
    let mut events: Vec<Value> = (0..20).map(|i| text_event(i, 20)).collect();
    events[7]["item"]["text"]["body"] = json!("RECHAZAR esto");
    let outcomes = handle_all(&rig.sync, &events).await;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(o, Outcome::DeadLetter(r) if r.contains("VALIDATION_ERROR") && r.contains("hubspot")),
                "{o:?}"
            );
        } else {
            assert_eq!(*o, Outcome::Done, "event {i}");
        }
    }
    assert_eq!(rig.fake.comms.lock().unwrap().len(), 19);
    let (calls, inputs) = batch_counts(&rig.fake, COMMS);
    assert_eq!(inputs, 20);
    assert!(calls < 20, "batched: {calls} calls");

    // A whole batch answered 429 / 503: every caller gets that class, from ONE call.
    let crm = rig.hubspot.clone().unwrap();
    let contact = |i: usize| {
        let phone = format!("+52550000{i:04}");
        let mut fields = serde_json::Map::new();
        fields.insert("whatsapp_id".into(), json!(phone));
        Effect {
            id: format!("e{i}#contact"),
            record: Record::Contact(ContactRecord {
                id: format!("c{i}"),
                phone_e164: Some(phone),
                ..Default::default()
            }),
            fields,
            contact: None,
            in_doubt: false,
        }
    };
    for (fault, expect_rate_limit) in [(Fault::RateLimit, true), (Fault::ServerError, false)] {
        rig.fake.scripted.lock().unwrap().push_back(fault);
        let before = rig.fake.calls.load(Ordering::Relaxed);
        let effects: Vec<Effect> = (0..10).map(contact).collect();
        let results = futures::future::join_all(effects.iter().map(|e| crm.apply(e))).await;
        assert_eq!(
            rig.fake.calls.load(Ordering::Relaxed) - before,
            1,
            "one call"
        );
        for r in results {
            match r {
                Err(CrmError::RateLimited(Some(d))) if expect_rate_limit => {
                    assert_eq!(d, Duration::from_millis(20))
                }
                Err(CrmError::Transient(m)) if !expect_rate_limit => assert!(m.contains("502")),
                other => panic!("{fault:?}: {other:?}"),
            }
        }
    }
}

fn message_from(key: &str, from: &str, item: Value) -> Value {
    let mut item = item;
    item["id"] = json!(key);
    item["timestamp"] = json!("1763780000");
    item["from"] = json!(from);
    json!({"v": 1, "key": key, "kind": "message", "field": "messages", "waba_id": "W1",
           "contact": {"profile": {"name": "Ana Pérez"}, "wa_id": from},
           "item": item, "received_at": 1763780000123i64})
}

#[tokio::test]
async fn hubspot_writes_every_record_kind() {
    let rig = rig_with("hubspot", Fake::default(), Duration::from_secs(3), true).await;
    let clid = "Aff-n8ZTODiE79d22KtAwQKj9e";
    let referral = message_from(
        "wamid.R1",
        "5215599990000",
        json!({"type": "text", "text": {"body": "Hola, vi su anuncio"},
               "referral": {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726",
                            "source_type": "ad", "headline": "Chat with us", "media_type": "image",
                            "ctwa_clid": clid}}),
    );
    let baja = message_from(
        "wamid.R2",
        "5215599990000",
        json!({"type": "text", "text": {"body": "BAJA"}}),
    );
    let resume = json!({"v": 1, "key": "pref:5215599990000:1763780500:resume", "kind": "user_preference",
        "field": "user_preferences", "waba_id": "W1",
        "item": {"wa_id": "5215599990000", "detail": "User requested to resume marketing messages",
                 "category": "marketing_messages", "value": "resume", "timestamp": 1763780500},
        "received_at": 1763780500000i64});
    let tpl = json!({"v": 1, "key": "tpl:1:APPROVED:1", "kind": "template_status", "field": "message_template_status_update",
        "waba_id": "W1", "entry_time": 1763780000, "item": {"event": "APPROVED", "message_template_id": 123,
        "message_template_name": "promo_es", "message_template_language": "es_MX", "reason": "NONE"}, "received_at": 1});
    let quality = json!({"v": 1, "key": "q:1", "kind": "quality_update", "field": "phone_number_quality_update",
        "waba_id": "W1", "item": {"display_phone_number": "5215500000000", "event": "FLAGGED", "current_limit": "TIER_1K"}, "received_at": 1});
    let unknown = json!({"v": 1, "key": "u:1", "kind": "unknown", "field": "account_alerts",
        "waba_id": "W1", "item": {"alert": "x"}, "received_at": 1});
    let phone = "+525599990000";

    // A click-to-WhatsApp referral: contact, communication, first/last touch on the contact,
    // and a deal associated to it with the UTM properties.
    assert_eq!(
        rig.sync.handle(&delivery(&referral, 1)).await,
        Outcome::Done
    );
    let props = rig.fake.contact_props.lock().unwrap()[phone].clone();
    assert_eq!(props["firstname"], "Ana");
    for touch in ["first", "last"] {
        assert_eq!(
            props[format!("wabridge_{touch}_ctwa_clid")],
            clid,
            "{props}"
        );
        assert!(
            props[format!("wabridge_{touch}_utm_source")].is_string(),
            "{props}"
        );
        assert!(props[format!("wabridge_{touch}_at")].is_string(), "{props}");
    }
    let deals = rig.fake.deals.lock().unwrap().clone();
    assert_eq!(deals.len(), 1);
    let deal = &deals[0]["properties"];
    assert_eq!(deal["ctwa_clid"], clid);
    assert_eq!(deal["utm_source"], props["wabridge_first_utm_source"]);
    assert_eq!(deal["pipeline"], "default");
    assert_eq!(deal["wabridge_effect_id"], "wamid.R1#lead");
    assert!(deal["dealname"]
        .as_str()
        .unwrap()
        .starts_with("WhatsApp lead"));
    let hs_contact = rig.fake.contacts.lock().unwrap()[phone].clone();
    assert_eq!(deals[0]["associations"][0]["to"]["id"], hs_contact.as_str());

    // Consent: a keyword opt-out, then Meta's user_preferences resume, as contact properties.
    assert_eq!(rig.sync.handle(&delivery(&baja, 1)).await, Outcome::Done);
    let props = rig.fake.contact_props.lock().unwrap()[phone].clone();
    assert_eq!(props["whatsapp_marketing_consent"], "opt_out");
    assert_eq!(props["whatsapp_consent_source"], "keyword");
    assert_eq!(props["whatsapp_consent_date"], "1763780000000");
    assert_eq!(rig.sync.handle(&delivery(&resume, 1)).await, Outcome::Done);
    let props = rig.fake.contact_props.lock().unwrap()[phone].clone();
    assert_eq!(props["whatsapp_marketing_consent"], "opt_in");
    assert_eq!(props["whatsapp_consent_source"], "user_preferences");
    assert_eq!(props["whatsapp_consent_date"], "1763780500000");

    // Account-level records: nothing written to HubSpot, but each one logged and counted.
    let calls = rig.fake.calls.load(Ordering::Relaxed);
    for ev in [&tpl, &quality, &unknown] {
        assert_eq!(rig.sync.handle(&delivery(ev, 1)).await, Outcome::Done);
    }
    assert_eq!(rig.fake.calls.load(Ordering::Relaxed), calls);
    let skipped = rig.hubspot.as_ref().unwrap().stats().skipped;
    assert_eq!(
        skipped.into_iter().collect::<Vec<_>>(),
        [("quality", 1), ("template_status", 1), ("unknown", 1)]
    );

    // Redelivering everything writes nothing new.
    let comms = rig.fake.comms.lock().unwrap().len();
    assert_eq!(comms, 2);
    for ev in [&referral, &baja, &resume, &tpl, &quality, &unknown] {
        assert_eq!(rig.sync.handle(&delivery(ev, 2)).await, Outcome::Done);
    }
    assert_eq!(rig.fake.calls.load(Ordering::Relaxed), calls);
    assert_eq!(rig.fake.deals.lock().unwrap().len(), 1);
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
}

/// The worker dies after HubSpot created the object but before our ledger's confirm (its
/// future is dropped while HubSpot's answer is on its way). The message is redelivered to a
/// fresh process (new adapter, empty caches, same ledger): the in-doubt effect searches by its
/// effect id, finds the object, and creates nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_crash_between_create_and_confirm_creates_nothing_twice() {
    let lease = Duration::from_millis(300);
    let rig = rig_with("hubspot", Fake::default(), lease, true).await;
    let count = |store: &Mutex<Vec<Value>>, effect: &str| {
        store
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o["properties"]["wabridge_effect_id"] == effect)
            .count()
    };
    for (i, path, effect) in [(1, COMMS, "wamid.T1#activity"), (2, DEALS, "wamid.T2#lead")] {
        let ev = text_event(i, 10);
        rig.fake
            .fail_once
            .lock()
            .unwrap()
            .insert(path.to_string(), Fault::SlowAfter);
        let died = tokio::time::timeout(
            Duration::from_millis(300),
            rig.sync.handle(&delivery(&ev, 1)),
        )
        .await;
        assert!(died.is_err(), "the worker must die mid-call");
        let store = if path == DEALS {
            &rig.fake.deals
        } else {
            &rig.fake.comms
        };
        assert_eq!(count(store, effect), 1, "created at HubSpot, not confirmed");
        // The lease of the dead worker's claim runs out, then SQS redelivers.
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
        let searches_before = rig
            .fake
            .paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.ends_with("/search"))
            .count();
        let fresh = hubspot_crm(rig.addr);
        let sync = crm_sync("hubspot", &rig.db, fresh, lease, true).await;
        assert_eq!(sync.handle(&delivery(&ev, 2)).await, Outcome::Done);
        assert_eq!(count(store, effect), 1, "{effect}: no duplicate");
        let searched: Vec<String> = rig.fake.paths.lock().unwrap()[..]
            .iter()
            .filter(|p| p.ends_with("/search"))
            .skip(searches_before)
            .cloned()
            .collect();
        assert_eq!(searched, [path.replace("batch/create", "search")]);
    }
    // Everything else of both events happened once: 2 communications, 2 deals.
    assert_eq!(rig.fake.comms.lock().unwrap().len(), 2);
    assert_eq!(rig.fake.deals.lock().unwrap().len(), 2);
    assert!(rig.fake.problems.lock().unwrap().is_empty());
}

/// HubSpot's search index lags behind creates. A create is applied but its answer is lost; the
/// in-doubt retry's first search misses (not indexed yet). The adapter does not trust that
/// miss until its search lag has passed since the uncertain attempt: it searches again, finds
/// the communication, and creates no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_in_doubt_search_miss_waits_out_the_index_lag() {
    let rig = rig(
        "hubspot",
        Fake {
            search_lag: Duration::from_millis(1000),
            ..Default::default()
        },
    )
    .await;
    let crm = Arc::new(
        HubSpotCrm::new(
            &format!("http://{}", rig.addr),
            TOKEN,
            "whatsapp_id",
            Some("wabridge_effect_id"),
            TIMEOUT,
        )
        .unwrap()
        .with_search_lag(Duration::from_millis(1000)),
    );
    let sync = crm_sync("hubspot", &rig.db, crm, Duration::from_secs(3), false).await;
    rig.fake
        .fail_once
        .lock()
        .unwrap()
        .insert(COMMS.to_string(), Fault::SlowAfter);
    assert_eq!(
        sync.handle(&delivery(&text_event(1, 10), 1)).await,
        Outcome::Done
    );
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(comms.len(), 1, "no duplicate: {comms:?}");
    let searches = rig
        .fake
        .paths
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.ends_with("/communications/search"))
        .count();
    assert!(searches >= 2, "searched again after the first miss");
    assert!(rig.fake.problems.lock().unwrap().is_empty());
}

async fn fault_injection(kind: &str) {
    let rig = rig(
        kind,
        Fake {
            fault_rate: 0.30,
            ..Default::default()
        },
    )
    .await;
    let events: Vec<Value> = (0..1000).map(|i| text_event(i, 200)).collect();
    let (dead, elapsed) = drain(&rig, &events, 2, 1, 64).await;
    assert_eq!(dead, 0, "nothing may be dead-lettered");
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let calls = rig.fake.calls.load(Ordering::Relaxed);
    println!("{kind}: 2000 deliveries of 1000 events through 30% faults in {elapsed:?}, {calls} CRM calls");
    match kind {
        "webhook" => {
            let hooks = rig.fake.hooks.lock().unwrap().clone();
            let slow_after = rig.fake.slow_after.lock().unwrap().clone();
            for i in 0..1000 {
                let id = format!("wamid.T{i}#activity");
                let n = hooks.get(&id).copied().unwrap_or(0);
                assert!(n >= 1, "{id} never reached the CRM");
                // A receiver deduplicating on webhook-id sees it once; a second raw post only
                // happens when the first was applied but answered after our timeout.
                assert!(
                    n == 1 || slow_after.contains(&id),
                    "{id} posted {n} times without cause"
                );
            }
            let activities = hooks.keys().filter(|k| k.ends_with("#activity")).count();
            assert_eq!(activities, 1000);
        }
        _ => {
            let comms = rig.fake.comms.lock().unwrap().clone();
            let mut per: HashMap<String, usize> = HashMap::new();
            for c in &comms {
                *per.entry(
                    c["properties"]["wabridge_effect_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
                .or_default() += 1;
            }
            assert_eq!(per.len(), 1000, "every event logged");
            assert!(per.values().all(|n| *n == 1), "no communication twice");
            assert_eq!(comms.len(), 1000);
            assert_eq!(rig.fake.contacts.lock().unwrap().len(), 200);
            // Batches happened: far fewer calls than inputs on both batch endpoints.
            let (create_calls, create_inputs) = batch_counts(&rig.fake, COMMS);
            let (upsert_calls, upsert_inputs) = batch_counts(&rig.fake, UPSERT);
            println!("hubspot: {create_calls} communication batches for {create_inputs} inputs, {upsert_calls} upsert batches for {upsert_inputs} inputs");
            assert!(create_calls * 4 <= create_inputs, "{create_calls} calls");
            assert!(upsert_calls * 4 <= upsert_inputs, "{upsert_calls} calls");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_webhook_every_event_exactly_once() {
    fault_injection("webhook").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_hubspot_every_event_exactly_once() {
    fault_injection("hubspot").await;
}

/// `cargo test --release -p wabridge-core --test core -- --ignored --nocapture crm_http::bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_crm_sync_against_a_50ms_crm() {
    // (kind, worker loops, deliveries in flight each, CRM latency). One worker loop keeps its
    // slots full (`consumer::run_worker` refills a freed slot at once); `wabridge serve` runs
    // one loop with 128 (WABRIDGE_SYNC_CONCURRENCY); more loops model Lambda instances. The
    // last row answers at once: the ceiling of our own side (queue, identities, ledger on SQLite).
    let runs = [
        ("webhook", 1, 32, 50),
        ("webhook", 1, 128, 50),
        ("hubspot", 1, 32, 50),
        ("hubspot", 1, 128, 50),
        ("hubspot", 1, 256, 50),
        ("hubspot", 4, 128, 50),
        ("hubspot", 1, 256, 0),
    ];
    for (kind, workers, concurrency, latency_ms) in runs {
        {
            let rig = rig(
                kind,
                Fake {
                    latency: Duration::from_millis(latency_ms),
                    ..Default::default()
                },
            )
            .await;
            let events: Vec<Value> = (0..3000).map(|i| text_event(i, 500)).collect();
            let (dead, elapsed) = drain(&rig, &events, 1, workers, concurrency).await;
            assert_eq!(dead, 0);
            let calls = rig.fake.calls.load(Ordering::Relaxed);
            let mut batches = String::new();
            if kind == "hubspot" {
                assert_eq!(rig.fake.comms.lock().unwrap().len(), events.len());
                let s = rig.hubspot.as_ref().unwrap().stats();
                batches = format!(
                    "; upsert: {} calls, mean batch {:.1}, largest {}; communications: {} calls, mean batch {:.1}, largest {}",
                    s.contacts.calls,
                    s.contacts.inputs as f64 / s.contacts.calls.max(1) as f64,
                    s.contacts.largest,
                    s.communications.calls,
                    s.communications.inputs as f64 / s.communications.calls.max(1) as f64,
                    s.communications.largest,
                );
            }
            println!(
                "BENCH {kind} workers={workers}x{concurrency}: {} events in {:.2}s = {:.0} events/s ({calls} CRM calls of {latency_ms} ms{batches})",
                events.len(),
                elapsed.as_secs_f64(),
                events.len() as f64 / elapsed.as_secs_f64()
            );
        }
    }
}
