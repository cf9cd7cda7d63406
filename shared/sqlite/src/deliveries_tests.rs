use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::event::Event;
use wabridge_core::identity::{IdentityKey, IdentityStore};
use wabridge_core::mapping::Mapping;
use wabridge_core::numbers::records::{RecordsHandler, ScopedLedger, WAIT_RECEIVES};
use wabridge_core::numbers::replay::{original_key, Logged};
use wabridge_core::queue::{Delivery, Queue};
use wabridge_core::sync::CrmSync;

use super::*;
use crate::identity::SqliteIdentityStore;
use crate::ledger::SqliteLedger;
use crate::testing::event;
use crate::SqliteQueue;

const HOUR: i64 = 3_600_000;

fn deliveries(db: &Db, clock: &Clock) -> SqliteDeliveries {
    SqliteDeliveries::new(db.clone()).with_clock(clock.clone())
}

fn delivery(body: String) -> Delivery {
    received(body, 1)
}

fn received(body: String, receive_count: u32) -> Delivery {
    Delivery {
        message_id: "1".into(),
        receipt: "1.r".into(),
        body,
        receive_count,
        enqueued_at: None,
    }
}

async fn keys_on(db: &Db, queue: &str) -> Vec<String> {
    SqliteQueue::new(db.clone(), queue)
        .receive(100, Duration::from_secs(30))
        .await
        .unwrap()
        .iter()
        .map(|d| Event::from_json(&d.body).unwrap().key)
        .collect()
}

/// Done deliveries are logged once per key; a replay enqueues a period's events again under
/// fresh keys, nothing outside it; replayed deliveries log nothing new, so a second replay of
/// the same period sends the same events, not twice as many.
#[tokio::test]
async fn replays_a_period_under_fresh_keys_once() {
    let (_d, db, clock, _inbox) = crate::testing::setup().await;
    let log = Arc::new(deliveries(&db, &clock));
    struct Ok_;
    #[async_trait]
    impl Handler for Ok_ {
        async fn handle(&self, _: &Delivery) -> Outcome {
            Outcome::Done
        }
    }
    let handler = Logged::new("bot", Arc::new(Ok_), log.clone());
    let t0 = clock.now_ms();
    for key in ["wamid.OLD", "wamid.A", "wamid.B", "wamid.NEW"] {
        assert_eq!(
            handler.handle(&delivery(event(key).to_json())).await,
            Outcome::Done
        );
        clock.advance(Duration::from_millis(HOUR as u64));
    }
    // A redelivery of a done one keeps its first time.
    handler.handle(&delivery(event("wamid.A").to_json())).await;
    // The period [t0 + 1h, t0 + 3h): A and B.
    let n = log.replay("bot", t0 + HOUR, t0 + 3 * HOUR).await.unwrap();
    assert_eq!(n, 2);
    let replayed = keys_on(&db, "destination:bot").await;
    assert_eq!(replayed.len(), 2);
    let originals: Vec<&str> = replayed.iter().map(|k| original_key(k)).collect();
    assert_eq!(originals, ["wamid.A", "wamid.B"]);
    assert!(replayed
        .iter()
        .all(|k| k.starts_with("wamid.") && k.contains("~replay-")));
    // Delivered, the replays log nothing new.
    for key in &replayed {
        let mut e = event(original_key(key));
        e.key = key.clone();
        handler.handle(&delivery(e.to_json())).await;
    }
    assert_eq!(
        log.replay("bot", t0 + HOUR, t0 + 3 * HOUR).await.unwrap(),
        2
    );
    assert_eq!(log.replay("other", 0, i64::MAX).await.unwrap(), 0);
}

/// The content purge deletes what destinations were delivered before the retention.
#[tokio::test]
async fn deliveries_are_purged_with_the_content_retention() {
    let (_d, db, clock, _inbox) = crate::testing::setup().await;
    let log = deliveries(&db, &clock);
    log.delivered("bot", "old", &event("old").to_json())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(10 * 24 * 3600));
    log.delivered("bot", "new", &event("new").to_json())
        .await
        .unwrap();
    let purge =
        crate::retention::SqliteContentPurge::new(db.clone(), Duration::from_secs(5 * 24 * 3600))
            .with_clock(clock.clone());
    assert_eq!(purge.purge_deliveries(100).await.unwrap(), 1);
    assert_eq!(log.replay("bot", 0, i64::MAX).await.unwrap(), 1);
    assert_eq!(keys_on(&db, "destination:bot").await.len(), 1);
}

/// A webhook-like CRM that keeps the effect ids it applied (and fails when told).
#[derive(Default)]
struct Posts {
    got: Mutex<Vec<String>>,
    reject: Mutex<bool>,
}

#[async_trait]
impl Crm for Posts {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        if *self.reject.lock().unwrap() {
            return Err(CrmError::Rejected("HTTP 400: no".into()));
        }
        self.got
            .lock()
            .unwrap()
            .push(format!("{}:{}", effect.record.kind(), effect.id));
        Ok(())
    }
}

fn message(key: &str) -> Event {
    let mut e = event(key);
    e.contact = Some(
        RawValue::from_string(r#"{"profile":{"name":"Ana"},"wa_id":"5215512345678"}"#.into())
            .unwrap(),
    );
    e.item = RawValue::from_string(format!(
        r#"{{"from":"5215512345678","id":"{key}","timestamp":"1763780000","type":"text","text":{{"body":"hola"}}}}"#
    ))
    .unwrap();
    e
}

fn sync(db: &Db, crm: Arc<Posts>, ledger: Arc<dyn wabridge_core::ledger::Ledger>) -> CrmSync {
    CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        ledger,
        crm,
        Arc::new(Mapping::example("webhook").unwrap()),
    )
}

fn records_handler(db: &Db, crm: Arc<Posts>) -> RecordsHandler {
    let db = db.clone();
    let shared = Arc::new(SqliteIdentityStore::new(db.clone()));
    RecordsHandler::new("crmcopy", None, shared, move |_, identities| {
        CrmSync::new(
            identities,
            Arc::new(ScopedLedger::new(
                Arc::new(SqliteLedger::new(db.clone())),
                "crmcopy",
            )),
            crm.clone(),
            Arc::new(Mapping::example("webhook").unwrap()),
        )
    })
}

/// A records destination gets an event's records even though the CRM's crm-sync confirmed the
/// same effects in the shared ledger; a redelivery posts nothing twice; it writes no identity
/// (an unknown person waits for the CRM's crm-sync a few receives, then goes out; the CRM's
/// crm-sync, running after it, still creates the contact); a refused record is dead-lettered
/// naming the destination.
#[tokio::test]
async fn a_records_destination_posts_each_record_once_beside_the_crm() {
    let (_d, db, _clock, _inbox) = crate::testing::setup().await;
    let (dest, crm) = (Arc::new(Posts::default()), Arc::new(Posts::default()));
    let handler = records_handler(&db, dest.clone());
    let body = message("wamid.ONE").to_json();

    // The destination first: it waits for the CRM's crm-sync to resolve the person...
    match handler.handle(&delivery(body.clone())).await {
        Outcome::Retry { reason, .. } => {
            assert!(reason.starts_with("destination crmcopy: "), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(dest.got.lock().unwrap().is_empty());
    // ...and past the wait goes out, writing no identity.
    let late = received(body.clone(), WAIT_RECEIVES + 1);
    assert_eq!(handler.handle(&late).await, Outcome::Done);
    let posted = dest.got.lock().unwrap().clone();
    assert!(
        posted.iter().any(|p| p.starts_with("activity:")),
        "{posted:?}"
    );
    assert!(
        posted.iter().any(|p| p.starts_with("contact:")),
        "{posted:?}"
    );
    let ids = SqliteIdentityStore::new(db.clone());
    let phone = IdentityKey::Phone("525512345678".into());
    assert_eq!(
        ids.lookup(&phone).await.unwrap(),
        None,
        "the destination links nobody"
    );

    // Then the CRM: its own effects, unaffected by the destination's.
    let crm_sync = sync(&db, crm.clone(), Arc::new(SqliteLedger::new(db.clone())));
    assert_eq!(
        crm_sync.handle(&delivery(body.clone())).await,
        Outcome::Done
    );
    assert_eq!(crm.got.lock().unwrap().clone(), posted, "the same effects");
    assert!(ids.lookup(&phone).await.unwrap().is_some());

    // Redelivered to the destination: nothing again.
    assert_eq!(handler.handle(&delivery(body)).await, Outcome::Done);
    assert_eq!(dest.got.lock().unwrap().len(), posted.len());

    // A second message: the CRM first, then the destination still gets it.
    let two = message("wamid.TWO").to_json();
    assert_eq!(crm_sync.handle(&delivery(two.clone())).await, Outcome::Done);
    let before = dest.got.lock().unwrap().len();
    assert_eq!(handler.handle(&delivery(two.clone())).await, Outcome::Done);
    assert!(
        dest.got.lock().unwrap().len() > before,
        "the CRM's ledger made it skip nothing"
    );

    *dest.reject.lock().unwrap() = true;
    match handler
        .handle(&delivery(message("wamid.THREE").to_json()))
        .await
    {
        Outcome::DeadLetter(reason) => {
            assert!(reason.starts_with("destination crmcopy: "), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
