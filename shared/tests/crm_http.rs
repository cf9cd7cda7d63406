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
use wabridge_core::adapters::sqlite::identity::SqliteIdentityStore;
use wabridge_core::adapters::sqlite::ledger::SqliteLedger;
use wabridge_core::adapters::sqlite::{Db, SqliteQueue, EVENTS_QUEUE};
use wabridge_core::consumer::{run_worker, Handler, Outcome, WorkerOptions};
use wabridge_core::crm::hubspot::HubSpotCrm;
use wabridge_core::crm::webhook::WebhookCrm;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{Delivery, OutgoingMessage, Queue};
use wabridge_core::sync::CrmSync;

const SECRET: &str = "whsec_c2VjcmV0LWZvci10ZXN0cw==";
const TOKEN: &str = "pat-na1-test-token";
const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(1200);

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
    paths: Mutex<Vec<String>>,
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
    let fault = fake.next_fault();
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
    match path {
        "/crm/v3/objects/contacts/batch/upsert" => {
            let Some(inputs) = v["inputs"].as_array() else {
                return fake.problem("upsert without inputs".into());
            };
            if inputs.is_empty() || inputs.len() > 100 {
                return fake.problem(format!("upsert with {} inputs", inputs.len()));
            }
            let mut results = Vec::new();
            for input in inputs {
                if input["idProperty"] != "whatsapp_id" {
                    return fake.problem(format!("idProperty {}", input["idProperty"]));
                }
                let Some(id) = input["id"].as_str() else {
                    return fake.problem("input without id".into());
                };
                let Some(props) = input["properties"].as_object() else {
                    return fake.problem("input without properties".into());
                };
                if let Some((k, _)) = props.iter().find(|(_, v)| !v.is_string()) {
                    return fake.problem(format!("property {k} is not a string"));
                }
                let mut contacts = fake.contacts.lock().unwrap();
                let n = contacts.len();
                let hs_id = contacts
                    .entry(id.to_string())
                    .or_insert_with(|| format!("{}", 1000 + n))
                    .clone();
                fake.contact_props
                    .lock()
                    .unwrap()
                    .insert(id.to_string(), Value::Object(props.clone()));
                results.push(json!({"id": hs_id, "properties": props, "new": false}));
            }
            (
                StatusCode::OK,
                rate_headers(),
                Json(json!({"status": "COMPLETE", "results": results})),
            )
                .into_response()
        }
        "/crm/v3/objects/communications" => {
            let p = &v["properties"];
            if p["hs_communication_channel_type"] != "WHATS_APP"
                || p["hs_communication_logged_from"] != "CRM"
            {
                return fake.problem(format!("communication properties: {p}"));
            }
            if !p["hs_timestamp"].is_string() || !p["hs_communication_body"].is_string() {
                return fake.problem(format!("communication without hs_timestamp/body: {p}"));
            }
            let a = &v["associations"][0];
            let to = a["to"]["id"].as_str().unwrap_or_default();
            if !fake.contacts.lock().unwrap().values().any(|id| id == to) {
                return fake.problem(format!("association to unknown contact {to}"));
            }
            if a["types"][0]["associationCategory"] != "HUBSPOT_DEFINED"
                || a["types"][0]["associationTypeId"] != 81
            {
                return fake.problem(format!("association types: {}", a["types"]));
            }
            let mut comms = fake.comms.lock().unwrap();
            let id = format!("{}", 5000 + comms.len());
            comms.push(v.clone());
            (
                StatusCode::CREATED,
                rate_headers(),
                Json(json!({"id": id, "properties": p})),
            )
                .into_response()
        }
        "/crm/v3/objects/communications/search" => {
            let f = &v["filterGroups"][0]["filters"][0];
            if f["operator"] != "EQ" || !f["propertyName"].is_string() {
                return fake.problem(format!("search filter: {f}"));
            }
            let prop = f["propertyName"].as_str().unwrap();
            let total = fake
                .comms
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c["properties"][prop] == f["value"])
                .count();
            (
                StatusCode::OK,
                rate_headers(),
                Json(json!({"total": total, "results": []})),
            )
                .into_response()
        }
        other => fake.problem(format!("unexpected path {other}")),
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    db: Db,
    sync: Arc<CrmSync>,
    fake: Arc<Fake>,
}

async fn rig(kind: &str, fake: Fake) -> Rig {
    let fake = Arc::new(fake);
    let addr = serve(fake.clone()).await;
    let mapping = Mapping::example(kind).unwrap();
    let crm: Arc<dyn Crm> = match kind {
        "webhook" => {
            Arc::new(WebhookCrm::new(&format!("http://{addr}/hook"), SECRET, TIMEOUT).unwrap())
        }
        _ => Arc::new(
            HubSpotCrm::new(
                &format!("http://{addr}"),
                TOKEN,
                mapping.id_property.as_deref().unwrap(),
                mapping.effect_property.as_deref(),
                TIMEOUT,
            )
            .unwrap(),
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        crm,
        Arc::new(mapping),
    )
    .with_lease(Duration::from_secs(3));
    Rig {
        _dir: dir,
        db,
        sync: Arc::new(sync),
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

/// Enqueues every event `times` times on a real SQLite queue and runs the real worker until the
/// queue is empty. Returns the dead-letter count and the elapsed time.
async fn drain(rig: &Rig, events: &[Value], times: usize, concurrency: usize) -> (u64, Duration) {
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
    let worker = tokio::spawn(run_worker(
        queue.clone(),
        rig.sync.clone() as Arc<dyn Handler>,
        WorkerOptions {
            batch: 100,
            concurrency,
            visibility: Duration::from_secs(30),
            idle: Duration::from_millis(10),
        },
        stop_rx,
    ));
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
    worker.await.unwrap();
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
    // A failed outbound message is logged with its error; other statuses are not.
    for (st, suffix) in [("sent", "s"), ("failed", "f")] {
        let mut item = json!({"id": "wamid.OUT", "status": st, "timestamp": "1763780100", "recipient_id": "5215500000001"});
        if st == "failed" {
            item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
        }
        let ev = json!({"v": 1, "key": format!("wamid.OUT:{suffix}"), "kind": "status", "field": "messages",
            "waba_id": "W1", "item": item, "received_at": 1});
        assert_eq!(rig.sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    }
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(comms.len(), 3);
    assert!(comms[2]["properties"]["hs_communication_body"]
        .as_str()
        .unwrap()
        .contains("131026"));
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
    let (dead, elapsed) = drain(&rig, &events, 2, 64).await;
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

/// `cargo test -p wabridge-core --test crm_http -- --ignored --nocapture bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_crm_sync_against_a_50ms_crm() {
    for kind in ["webhook", "hubspot"] {
        for concurrency in [64, 256] {
            let rig = rig(
                kind,
                Fake {
                    latency: Duration::from_millis(50),
                    ..Default::default()
                },
            )
            .await;
            let events: Vec<Value> = (0..3000).map(|i| text_event(i, 500)).collect();
            let (dead, elapsed) = drain(&rig, &events, 1, concurrency).await;
            assert_eq!(dead, 0);
            let calls = rig.fake.calls.load(Ordering::Relaxed);
            println!(
                "BENCH {kind} concurrency={concurrency}: {} events in {:.2}s = {:.0} events/s ({calls} CRM calls of 50 ms)",
                events.len(),
                elapsed.as_secs_f64(),
                events.len() as f64 / elapsed.as_secs_f64()
            );
        }
    }
}
