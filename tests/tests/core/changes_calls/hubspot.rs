//! HubSpot gets edits and deletions as updates of the message's communication body (or a
//! communication of their own when the message is not there), and a call as one Call
//! engagement from its terminate event. A small fake of the CRM v3 endpoints these use.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use wabridge_crm::hubspot::HubSpotCrm;

use super::*;

/// Objects by type (`communications`, `calls`): (id, properties, associations).
#[derive(Default)]
struct Fake {
    objects: Mutex<Vec<(String, String, Value, Value)>>,
}

impl Fake {
    fn of(&self, object: &str) -> Vec<Value> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, ..)| o == object)
            .map(|(_, id, p, a)| json!({"id": id, "properties": p, "associations": a}))
            .collect()
    }
}

async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().trim_start_matches("/crm/v3/objects/");
    let parts: Vec<&str> = path.split('/').collect();
    let mut objects = fake.objects.lock().unwrap();
    let answer = match (method.as_str(), parts.as_slice()) {
        ("POST", ["contacts", "batch", "upsert"]) => {
            let results: Vec<Value> = v["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    json!({
                "id": format!("hs-{}", i["id"].as_str().unwrap()),
                "properties": {"whatsapp_id": i["id"]},
                "objectWriteTraceId": i["objectWriteTraceId"]})
                })
                .collect();
            json!({"status": "COMPLETE", "results": results})
        }
        ("POST", [object, "batch", "create"]) => {
            let mut results = Vec::new();
            for i in v["inputs"].as_array().unwrap() {
                let id = format!("{object}-{}", objects.len() + 1);
                objects.push((
                    object.to_string(),
                    id.clone(),
                    i["properties"].clone(),
                    i["associations"].clone(),
                ));
                results.push(json!({"id": id, "objectWriteTraceId": i["objectWriteTraceId"]}));
            }
            json!({"status": "COMPLETE", "results": results})
        }
        ("POST", [object, "batch", "update"]) => {
            for i in v["inputs"].as_array().unwrap() {
                let found = objects
                    .iter_mut()
                    .find(|(o, id, ..)| o == object && id == &i["id"]);
                let Some((_, _, props, _)) = found else {
                    return (axum::http::StatusCode::NOT_FOUND, "{}").into_response();
                };
                for (k, val) in i["properties"].as_object().unwrap() {
                    props[k] = val.clone();
                }
            }
            json!({"status": "COMPLETE"})
        }
        ("POST", [object, "search"]) => {
            let f = &v["filterGroups"][0]["filters"][0];
            let prop = f["propertyName"].as_str().unwrap();
            let hits: Vec<Value> = objects
                .iter()
                .filter(|(o, _, p, _)| o == object && p[prop] == f["value"])
                .map(|(_, id, ..)| json!({"id": id}))
                .collect();
            json!({"total": hits.len(), "results": hits})
        }
        ("POST", [object]) => {
            let id = format!("{object}-{}", objects.len() + 1);
            objects.push((
                object.to_string(),
                id.clone(),
                v["properties"].clone(),
                v["associations"].clone(),
            ));
            json!({"id": id})
        }
        ("GET", [object, id]) => match objects.iter().find(|(o, i, ..)| o == object && i == id) {
            Some((_, id, p, _)) => json!({"id": id, "properties": p}),
            None => return (axum::http::StatusCode::NOT_FOUND, "{}").into_response(),
        },
        _ => return (axum::http::StatusCode::NOT_FOUND, "{}").into_response(),
    };
    axum::Json(answer).into_response()
}

async fn serve(fake: Arc<Fake>) -> SocketAddr {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct HubEnv {
    _dir: tempfile::TempDir,
    fake: Arc<Fake>,
    sync: wabridge_core::sync::CrmSync,
}

async fn hub_env(extra_mapping: &str) -> HubEnv {
    let fake = Arc::new(Fake::default());
    let addr = serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("h.db")).unwrap();
    let crm = HubSpotCrm::new(
        &format!("http://{addr}"),
        "pat-test",
        "whatsapp_id",
        Some("wabridge_effect_id"),
        Duration::from_secs(5),
    )
    .unwrap()
    .with_batching(1, Duration::from_millis(1));
    let mapping = format!(
        "{}\n{extra_mapping}",
        wabridge_core::mapping::HUBSPOT_EXAMPLE
    );
    let sync = wabridge_core::sync::CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db)),
        Arc::new(crm),
        Arc::new(Mapping::from_toml(&mapping).unwrap()),
    );
    HubEnv {
        _dir: dir,
        fake,
        sync,
    }
}

impl HubEnv {
    async fn deliver(&self, events: &[&Event]) {
        for e in events {
            for _ in 0..2 {
                let d = Delivery {
                    message_id: e.key.clone(),
                    receipt: "r".into(),
                    body: e.to_json(),
                    receive_count: 1,
                    enqueued_at: None,
                };
                assert_eq!(self.sync.handle(&d).await, Outcome::Done, "{}", e.key);
            }
        }
    }
}

const ORIG: &str = "wamid.ORIG1";

#[tokio::test]
async fn an_edit_updates_the_communication_body_once() {
    let hub = hub_env("").await;
    let original = text(ORIG, 1_763_700_000, "Quiero 2 camisas");
    let fix = edit("wamid.E1", 1_763_700_060, ORIG, "Quiero 3 camisas");
    hub.deliver(&[&original, &fix]).await;
    let comms = hub.fake.of("communications");
    assert_eq!(comms.len(), 1, "{comms:?}");
    assert_eq!(
        comms[0]["properties"]["hs_communication_body"],
        "Quiero 3 camisas\n\n(edited 2025-11-21T04:41:00Z)"
    );
}

#[tokio::test]
async fn an_edit_before_its_message_is_logged_on_its_own_and_not_lost() {
    let hub = hub_env("").await;
    let original = text(ORIG, 1_763_700_000, "Quiero 2 camisas");
    let fix = edit("wamid.E1", 1_763_700_060, ORIG, "Quiero 3 camisas");
    hub.deliver(&[&fix, &original]).await;
    let bodies: Vec<Value> = hub
        .fake
        .of("communications")
        .into_iter()
        .map(|c| c["properties"]["hs_communication_body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [
            json!("WhatsApp message wamid.ORIG1 edited: Quiero 3 camisas\n\n(edited 2025-11-21T04:41:00Z)"),
            json!("Quiero 2 camisas"),
        ]
    );
}

#[tokio::test]
async fn a_deletion_clears_or_marks_the_body_as_the_mapping_says() {
    for (mapping, expected) in [
        ("", "(deleted by the sender)"),
        (
            "[revoke]\ncontent = \"keep\"\n",
            "Mi tarjeta termina en 4421\n\n(deleted by the sender)",
        ),
    ] {
        let hub = hub_env(mapping).await;
        let original = text(ORIG, 1_763_700_000, "Mi tarjeta termina en 4421");
        hub.deliver(&[&original, &revoke("wamid.R1", 1_763_700_090, ORIG)])
            .await;
        let comms = hub.fake.of("communications");
        assert_eq!(comms.len(), 1);
        assert_eq!(comms[0]["properties"]["hs_communication_body"], expected);
    }
}

#[tokio::test]
async fn a_call_becomes_one_call_engagement_from_its_terminate() {
    let hub = hub_env("").await;
    let events = sample("call_user_connect_terminate_es_mx.json");
    hub.deliver(&events.iter().rev().collect::<Vec<_>>()).await;
    let calls = hub.fake.of("calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let p = &calls[0]["properties"];
    assert_eq!(p["hs_call_status"], "COMPLETED");
    assert_eq!(p["hs_call_direction"], "INBOUND");
    assert_eq!(p["hs_call_duration"], "180000");
    assert_eq!(p["hs_timestamp"], "1763700610000");
    assert_eq!(
        calls[0]["associations"][0]["types"][0]["associationTypeId"],
        wabridge_crm::hubspot::calls::CALL_TO_CONTACT
    );
    assert_eq!(calls[0]["associations"][0]["to"]["id"], "hs-+525512345678");
    assert!(p["wabridge_effect_id"]
        .as_str()
        .unwrap()
        .ends_with(":terminate#call"));
}
