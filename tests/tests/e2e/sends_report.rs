//! How the sender reports sends it ends (refused by a guard, failed at Meta's API, Meta's
//! 131050) to the CRM, over the embedded engine (SQLite store and queues) with crm-sync and the
//! local CRM in process, and a loopback "Meta" that answers scripted errors:
//!
//! - the report is a `send_result` event on the EVENTS queue that crm-sync turns into exactly
//!   one outbound activity (and for 131050 one consent record plus the opt-out in the consent
//!   history), however often the report is repeated;
//! - nothing is lost: when putting the report on the queue fails, the sender's delivery is
//!   retried, and the retry reports it;
//! - a send that reached Meta is not reported by the sender (its status webhooks are the CRM's
//!   record).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::{json, Value};
use wabridge_core::consent::{ConsentState, ContactRef};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::error::StoreError;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{DeadLetter, Delivery, OutgoingMessage, Queue};
use wabridge_core::sends::error::SendsError;
use wabridge_core::sends::events::QueueEvents;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_core::sends::service::Sends;
use wabridge_core::sends::store::SendState;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_graph::GraphClient;
use wabridge_sqlite::{
    Db, SqliteEngine, SqliteQueue, SqliteRecords, SqliteSends, EVENTS_QUEUE, SENDS_QUEUE,
};

/// The events queue, failing the first `fail` `send_batch` calls of events of `kind` (an SQS
/// outage).
struct Flaky {
    inner: SqliteQueue,
    kind: &'static str,
    fail: usize,
    calls: AtomicUsize,
}

#[async_trait]
impl Queue for Flaky {
    async fn send_batch(&self, m: &[OutgoingMessage]) -> Result<(), StoreError> {
        let kind = format!("\"kind\":\"{}\"", self.kind);
        if m.iter().any(|m| m.body.contains(&kind))
            && self.calls.fetch_add(1, Ordering::SeqCst) < self.fail
        {
            return Err(StoreError::Unavailable("events queue down".into()));
        }
        self.inner.send_batch(m).await
    }
    async fn receive(&self, max: usize, v: Duration) -> Result<Vec<Delivery>, StoreError> {
        self.inner.receive(max, v).await
    }
    async fn delete(&self, r: &str) -> Result<(), StoreError> {
        self.inner.delete(r).await
    }
    async fn retry_later(&self, r: &str, d: Duration) -> Result<(), StoreError> {
        self.inner.retry_later(r, d).await
    }
    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), StoreError> {
        self.inner.dead_letter(d, reason).await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters(limit).await
    }
    async fn redrive(&self, id: Option<&str>) -> Result<usize, StoreError> {
        self.inner.redrive(id).await
    }
}

struct Setup {
    sends: Arc<Sends>,
    sender: Sender,
    sync: CrmSync,
    sends_queue: SqliteQueue,
    events_queue: SqliteQueue,
    records: SqliteRecords,
    _dir: tempfile::TempDir,
}

/// A loopback Meta: 400 with error 131026 for `to` ending in 26, 131050 for 50, else a wamid.
async fn meta() -> String {
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let to = v["to"].as_str().unwrap_or_default().to_string();
        let error = |code: i64| {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": format!("error {code}"),
                    "type": "OAuthException", "code": code,
                    "error_data": {"messaging_product": "whatsapp", "details": "details"}}})),
            )
        };
        if to.ends_with("26") {
            return error(131026);
        }
        if to.ends_with("50") {
            return error(131050);
        }
        (
            StatusCode::OK,
            axum::Json(json!({"messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": format!("wamid.{to}")}]})),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn setup(events_fail: usize) -> Setup {
    setup_failing("send_result", events_fail).await
}

/// The setup with the first `fail` puts of `kind` events failing.
async fn setup_failing(kind: &'static str, fail: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.db")).unwrap();
    let engine = SqliteEngine::new(db.clone());
    let events = Arc::new(Flaky {
        inner: SqliteQueue::new(db.clone(), EVENTS_QUEUE),
        kind,
        fail,
        calls: AtomicUsize::new(0),
    });
    // The engine's sends service, but reporting through a queue that fails on demand.
    let sends = Arc::new(Sends::new(
        Arc::new(SqliteSends::new(db.clone())),
        Arc::new(engine.queue(SENDS_QUEUE)),
        engine.policy(),
        Arc::new(QueueEvents::new(events)),
        wabridge_tests::admin_keys("k"),
    ));
    let graph = GraphClient::new(GraphConfig {
        base_url: meta().await,
        version: "v23.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: "EAAGtest".into(),
        timeout: Duration::from_secs(5),
    });
    let records = SqliteRecords::new(db.clone());
    let sync = engine
        .crm_sync(
            Arc::new(LocalCrm::new(records.clone())),
            Mapping::example("local").unwrap(),
            Default::default(),
            sends.clone(),
        )
        .await
        .unwrap();
    Setup {
        sender: Sender::new(
            (*sends).clone(),
            std::sync::Arc::new(graph),
            Arc::new(RateLimiter::for_instances(1000.0, 1)),
        ),
        sends,
        sync,
        sends_queue: SqliteQueue::new(db.clone(), SENDS_QUEUE),
        events_queue: SqliteQueue::new(db, EVENTS_QUEUE),
        records,
        _dir: dir,
    }
}

impl Setup {
    /// Runs the sender on every visible send message; returns the outcomes.
    async fn run_sender(&self) -> Vec<Outcome> {
        let mut outcomes = vec![];
        for d in self
            .sends_queue
            .receive(100, Duration::from_secs(30))
            .await
            .unwrap()
        {
            let o = self.sender.handle(&d).await;
            match &o {
                Outcome::Done => self.sends_queue.delete(&d.receipt).await.unwrap(),
                _ => self
                    .sends_queue
                    .retry_later(&d.receipt, Duration::ZERO)
                    .await
                    .unwrap(),
            }
            outcomes.push(o);
        }
        outcomes
    }

    /// Runs crm-sync on every visible event; returns the event keys it handled.
    async fn run_sync(&self) -> Vec<String> {
        let mut keys = vec![];
        for d in self
            .events_queue
            .receive(100, Duration::from_secs(30))
            .await
            .unwrap()
        {
            assert_eq!(self.sync.handle(&d).await, Outcome::Done);
            self.events_queue.delete(&d.receipt).await.unwrap();
            keys.push(
                serde_json::from_str::<Value>(&d.body).unwrap()["key"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        keys
    }

    async fn records(&self, kind: &str) -> Vec<Value> {
        self.records
            .list(Some(kind), 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| Value::Object(r.body))
            .collect()
    }
}

async fn opt_in(s: &Setup, to: &str) {
    s.sends
        .record_consent(
            json!({"to": to, "action": "opt_in", "source": "web_form",
                   "at": "2026-01-01T00:00:00Z"})
            .to_string()
            .as_bytes(),
            None,
        )
        .await
        .unwrap();
    drain_consent(s).await;
}

/// The CRM's consent records from Meta's 131050 (the API's opt-ins are consents too).
async fn meta_consents(s: &Setup) -> Vec<Value> {
    s.records("consent")
        .await
        .into_iter()
        .filter(|c| c["source"] == "meta_error")
        .collect()
}

/// crm-sync takes the one consent event a `POST /consents` put on the events queue.
async fn drain_consent(s: &Setup) {
    let keys = s.run_sync().await;
    assert!(
        matches!(&keys[..], [k] if k.starts_with("consent:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_refusal_is_reported_once_even_when_the_first_report_fails() {
    let s = setup(1).await;
    opt_in(&s, "+525512340061").await;
    let send = s
        .sends
        .submit(
            br#"{"to": "+525512340061", "template": "promo", "language": "es_MX", "category": "MARKETING"}"#,
            None,
        )
        .await
        .unwrap();
    s.sends
        .record_consent(
            br#"{"to": "+525512340061", "action": "opt_out", "source": "agent"}"#,
            None,
        )
        .await
        .unwrap();
    drain_consent(&s).await;
    // The report fails: the delivery is retried, the send is refused already.
    let first = s.run_sender().await;
    assert!(matches!(first[..], [Outcome::Retry { .. }]), "{first:?}");
    assert_eq!(
        s.sends.get(&send.id).await.unwrap().state,
        SendState::Refused
    );
    assert!(s.run_sync().await.is_empty(), "nothing reported yet");
    // The retry reports it.
    assert_eq!(s.run_sender().await, vec![Outcome::Done]);
    assert_eq!(
        s.run_sync().await,
        vec![format!("send:{}:refused", send.id)]
    );
    // A duplicate of the send's queue message reports again; crm-sync adds nothing.
    s.sends_queue
        .send_batch(&[OutgoingMessage {
            id: send.id.clone(),
            body: wabridge_core::sends::service::queue_body(&send.id),
            delay: None,
        }])
        .await
        .unwrap();
    assert_eq!(s.run_sender().await, vec![Outcome::Done]);
    assert_eq!(s.run_sync().await.len(), 1);
    let activities = s.records("activity").await;
    assert_eq!(activities.len(), 1, "{activities:#?}");
    let a = &activities[0];
    assert_eq!(a["type"], "send_result");
    assert_eq!(a["send_id"], send.id.as_str());
    assert_eq!(a["status"], "refused");
    assert_eq!(a["errors"][0]["title"], "marketing_opted_out");
    assert!(a["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("opted out"));
    // The contact exists in the CRM (created by the report) and the activity is theirs.
    let contacts = s.records("contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    assert_eq!(contacts[0]["phone_e164"], "+525512340061");
    assert_eq!(a["contact_id"], contacts[0]["id"]);
}

#[tokio::test]
async fn meta_failures_become_one_activity_and_131050_a_consent_record() {
    let s = setup(0).await;
    let failed = s
        .sends
        .submit(
            br#"{"to": "+525512340026", "template": "order_confirmation", "language": "es_MX"}"#,
            None,
        )
        .await
        .unwrap();
    opt_in(&s, "+525512340050").await;
    let stopped = s
        .sends
        .submit(
            br#"{"to": "+525512340050", "template": "promo", "language": "es_MX", "category": "MARKETING"}"#,
            None,
        )
        .await
        .unwrap();
    let ok = s
        .sends
        .submit(
            br#"{"to": "+525512340099", "template": "order_confirmation", "language": "es_MX"}"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.run_sender().await, vec![Outcome::Done; 3]);
    assert_eq!(s.sends.get(&ok.id).await.unwrap().state, SendState::Sent);
    let mut keys = s.run_sync().await;
    keys.sort();
    let mut want = vec![
        format!("send:{}:failed", failed.id),
        format!("send:{}:failed", stopped.id),
        format!("send:{}:opted_out", stopped.id),
    ];
    want.sort();
    assert_eq!(keys, want, "the sent send is not reported by the sender");

    let activities = s.records("activity").await;
    assert_eq!(activities.len(), 2, "{activities:#?}");
    let of = |id: &str| {
        activities
            .iter()
            .find(|a| a["send_id"] == id)
            .unwrap_or_else(|| panic!("no activity for {id}: {activities:#?}"))
    };
    assert_eq!(of(&failed.id)["status"], "failed");
    assert_eq!(of(&failed.id)["errors"][0]["code"], 131026);
    assert_eq!(of(&stopped.id)["errors"][0]["code"], 131050);
    let consents = meta_consents(&s).await;
    assert_eq!(consents.len(), 1, "{consents:#?}");
    assert_eq!(consents[0]["source"], "meta_error");
    assert_eq!(consents[0]["status"], "opt_out");
    assert_eq!(consents[0]["evidence"]["send_id"], stopped.id.as_str());
    // The opt-out is in the consent history once (the sender recorded it; the hook adds none).
    let contact = ContactRef::parse("+525512340050").unwrap();
    let history = s.sends.policy.consent.history(&contact).await.unwrap();
    assert_eq!(history.len(), 2, "opt-in + Meta's opt-out: {history:?}");
    assert_eq!(
        s.sends
            .policy
            .consent
            .state(&contact, wabridge_core::consent::ConsentCategory::Marketing)
            .await
            .unwrap(),
        ConsentState::OptedOut
    );
}

/// A failed status webhook with Meta's 131050, as crm-sync receives it on the events queue.
/// `code` as Meta sends it (a number), or as a numeric string, which counts the same.
async fn enqueue_131050(
    s: &Setup,
    wamid: &str,
    recipient: &str,
    callback: Option<&str>,
    code: Value,
) {
    let mut status = json!({
        "id": wamid, "status": "failed", "timestamp": "1767225600", "recipient_id": recipient,
        "errors": [{"code": code, "title": "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business."}]
    });
    if let Some(c) = callback {
        status["biz_opaque_callback_data"] = json!(c);
    }
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "statuses": [status]}}]}]});
    let events =
        wabridge_core::webhook::split(body.to_string().as_bytes(), 1_767_225_601_000).unwrap();
    let messages: Vec<OutgoingMessage> = events.iter().map(|e| e.to_message()).collect();
    s.events_queue.send_batch(&messages).await.unwrap();
}

/// 131050 on a message another tool sent from the same number: still the person's word on
/// marketing. The CRM gets the status activity and ONE consent record, the consent history the
/// opt-out (so our marketing sends are refused from then on), and a redelivery adds nothing.
#[tokio::test]
async fn meta_131050_on_a_message_we_did_not_send_is_an_opt_out_once() {
    let s = setup(0).await;
    opt_in(&s, "+525512340077").await;
    // Delivered twice (a redelivery: same event key, nothing new).
    for _ in 0..2 {
        enqueue_131050(
            &s,
            "wamid.HBgNNTIxNTUxMjM0MDA3NxUCABEYEkZPUkVJR04A",
            "5215512340077",
            None,
            json!(131050),
        )
        .await;
        assert_eq!(s.run_sync().await.len(), 1);
    }
    assert_eq!(s.records("activity").await.len(), 1);
    let consents = meta_consents(&s).await;
    assert_eq!(consents.len(), 1, "{consents:#?}");
    assert_eq!(consents[0]["source"], "meta_error");
    assert_eq!(consents[0]["status"], "opt_out");
    assert_eq!(
        consents[0]["evidence"]["message_id"],
        "wamid.HBgNNTIxNTUxMjM0MDA3NxUCABEYEkZPUkVJR04A"
    );
    let contact = ContactRef::parse("+525512340077").unwrap();
    let history = s.sends.policy.consent.history(&contact).await.unwrap();
    assert_eq!(
        history.len(),
        2,
        "opt-in + Meta's opt-out, once: {history:?}"
    );
    let marketing = wabridge_core::consent::ConsentCategory::Marketing;
    assert_eq!(
        s.sends
            .policy
            .consent
            .state(&contact, marketing)
            .await
            .unwrap(),
        ConsentState::OptedOut
    );
}

/// Our own send, its 131050 status without the callback data (found by its wamid): the send
/// fails with meta_131050, the opt-out is recorded, and the CRM still gets exactly ONE consent
/// record (from the status plan; the sender does not report it a second time). With the callback
/// data the sender reports it instead (`sends_lambda`), again once.
#[tokio::test]
async fn meta_131050_for_our_send_found_by_wamid_reaches_the_crm_once() {
    let s = setup(0).await;
    opt_in(&s, "+525512340033").await;
    let send = s
        .sends
        .submit(
            br#"{"to": "+525512340033", "template": "promo", "language": "es_MX", "category": "MARKETING"}"#,
            None,
        )
        .await
        .unwrap();
    assert_eq!(s.run_sender().await, vec![Outcome::Done]);
    let wamid = s.sends.get(&send.id).await.unwrap().wamid.unwrap();
    // The code as a numeric string this time: read the same as a number everywhere.
    enqueue_131050(&s, &wamid, "525512340033", None, json!("131050")).await;
    let keys = s.run_sync().await;
    assert_eq!(
        keys.len(),
        1,
        "only the status event, no sender report: {keys:?}"
    );
    assert!(s.run_sync().await.is_empty());
    let record = s.sends.get(&send.id).await.unwrap();
    assert_eq!(record.state, SendState::Failed);
    assert_eq!(record.error.unwrap().code, "meta_131050");
    let consents = meta_consents(&s).await;
    assert_eq!(consents.len(), 1, "{consents:#?}");
    assert_eq!(consents[0]["evidence"]["message_id"], wamid.as_str());
    let contact = ContactRef::parse("+525512340033").unwrap();
    let marketing = wabridge_core::consent::ConsentCategory::Marketing;
    assert_eq!(
        s.sends
            .policy
            .consent
            .state(&contact, marketing)
            .await
            .unwrap(),
        ConsentState::OptedOut
    );
}

/// `POST /consents` with an `Idempotency-Key`: a retried call records one consent and answers
/// with it, the key with another body is refused, and the consent reaches the CRM as one
/// `consent` record however often it is emitted, including after a failed first emit.
#[tokio::test]
async fn api_consents_are_idempotent_and_reach_the_crm_once() {
    // The first consent event cannot be queued: the call answers 5xx after recording.
    let s = setup_failing("consent", 1).await;
    let body = br#"{"to": "+52 55 1234 0099", "action": "opt_in", "source": "checkout",
        "evidence": "pedido 1042, casilla marcada"}"#;
    let first = s.sends.record_consent(body, Some("order-1042-optin")).await;
    assert!(
        matches!(first, Err(SendsError::Store(_))),
        "the failed emit is an error the caller retries: {first:?}"
    );
    assert!(s.run_sync().await.is_empty());
    // The caller retries (same key, same body re-serialised): the same entry, emitted now.
    let reordered = br#"{"source": "checkout", "action": "opt_in", "to": "+52 55 1234 0099",
        "evidence": "pedido 1042, casilla marcada"}"#;
    let again = s
        .sends
        .record_consent(reordered, Some("order-1042-optin"))
        .await
        .unwrap();
    let third = s
        .sends
        .record_consent(body, Some("order-1042-optin"))
        .await
        .unwrap();
    assert_eq!(again, third, "one entry per key");
    assert!(again.id.starts_with("api_"), "{}", again.id);
    let contact = ContactRef::parse("+525512340099").unwrap();
    let history = s.sends.policy.consent.history(&contact).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    // Two emits, one CRM record.
    let keys = s.run_sync().await;
    assert_eq!(keys, vec![format!("consent:{}", again.id); 2]);
    let consents = s.records("consent").await;
    assert_eq!(consents.len(), 1, "{consents:?}");
    assert_eq!(consents[0]["source"], "checkout");
    assert_eq!(consents[0]["status"], "opt_in");
    assert_eq!(consents[0]["category"], "marketing_messages");
    assert_eq!(consents[0]["evidence"]["consent_id"], again.id.as_str());
    // The key with another body: 409, nothing recorded.
    let other = br#"{"to": "+525512340099", "action": "opt_out", "source": "agent"}"#;
    let conflict = s
        .sends
        .record_consent(other, Some("order-1042-optin"))
        .await;
    assert!(
        matches!(conflict, Err(SendsError::KeyReused)),
        "{conflict:?}"
    );
    assert_eq!(
        s.sends
            .policy
            .consent
            .history(&contact)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.run_sync().await.is_empty());
    // Without a key, each call is its own entry (and its own CRM record).
    s.sends.record_consent(other, None).await.unwrap();
    drain_consent(&s).await;
    assert_eq!(s.records("consent").await.len(), 2);
}
