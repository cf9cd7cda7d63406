//! The HTTP CRMs (`webhook`, `hubspot`) against a local test server that checks method, path,
//! headers and body shapes (Standard Webhooks; HubSpot CRM v3 as documented) and answers 429,
//! 5xx and slow responses on demand; the fault-injection runs (30% of calls fail, every event
//! delivered twice, through the real SQLite queue and worker) and the throughput benchmark.

mod bench;
mod bench_conversations;
mod bench_routing;
mod erasure;
pub(crate) mod fake;
mod fake_files;
mod fake_hubspot;
mod fake_hubspot_reads;
pub(crate) mod fake_hubspot_tickets;
mod fake_webhook;
mod faults;
mod hubspot;
mod hubspot_media;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::CrmSync;
use wabridge_crm::hubspot::HubSpotCrm;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::Db;

use fake::*;

pub(crate) const SECRET: &str = "whsec_c2VjcmV0LWZvci10ZXN0cw==";
pub(crate) const TOKEN: &str = "pat-na1-test-token";
pub(crate) const TIMEOUT: Duration = Duration::from_millis(400);
pub(crate) const SLOW: Duration = Duration::from_millis(1200);
/// How long the adapter distrusts a search miss after an uncertain create (tests: short).
const SEARCH_LAG: Duration = Duration::from_millis(200);

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
        .with_search_lag(SEARCH_LAG)
        // This fake has no burst limit (the conformance suite's has HubSpot's): these tests
        // measure batching and faults, not pacing.
        .with_rate_limit(1_000_000, Duration::from_secs(10)),
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
        enqueued_at: None,
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
    crate::crm_conformance::drain(&rig.db, &rig.sync, events, times, workers, concurrency).await
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

pub(crate) const COMMS: &str = "/crm/v3/objects/communications/batch/create";

const DEALS: &str = "/crm/v3/objects/deals/batch/create";

async fn handle_all(sync: &Arc<CrmSync>, events: &[Value]) -> Vec<Outcome> {
    futures::future::join_all(events.iter().map(|e| {
        let sync = sync.clone();
        let d = delivery(e, 1);
        async move { sync.handle(&d).await }
    }))
    .await
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
