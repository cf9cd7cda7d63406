//! Conversations through crm-sync over the embedded engine (identity store, effects ledger,
//! conversation store, events queue and the `local` CRM in one SQLite file): the scripted day
//! of [`wabridge_tests::conversation_day`], every event delivered twice, with tags by rule, a
//! tag through the API and an outcome by a conversion, each posted twice.

use std::sync::Arc;

use serde_json::Value;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::conversations::route::Catalogues;
use wabridge_core::conversations::update::{ConversationUpdates, Converted, Target};
use wabridge_core::event::Event;
use wabridge_core::queue::Delivery;
use wabridge_core::queue::Queue;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteEngine, SqliteQueue, SqliteRecords, EVENTS_QUEUE};
use wabridge_tests::conversation_day as day;

struct Env {
    _dir: tempfile::TempDir,
    records: SqliteRecords,
    sync: wabridge_core::sync::CrmSync,
    queue: SqliteQueue,
    updates: ConversationUpdates,
    catalogues: Catalogues,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let engine = SqliteEngine::new(db.clone());
    let mapping = day::mapping(wabridge_core::mapping::LOCAL_EXAMPLE);
    let catalogues = Catalogues::of(&mapping);
    let sync = wabridge_core::sync::CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(mapping),
    )
    .with_conversations(engine.conversations(day::IDLE_MS))
    .with_attribution(
        Arc::new(SqliteAttribution::open(db.clone()).await.unwrap()),
        Default::default(),
    );
    let queue = SqliteQueue::new(db.clone(), EVENTS_QUEUE);
    let updates =
        ConversationUpdates::new(engine.conversations(day::IDLE_MS), Arc::new(queue.clone()));
    Env {
        _dir: dir,
        records,
        sync,
        queue,
        updates,
        catalogues,
    }
}

impl Env {
    async fn deliver_twice(&self, events: &[Event]) {
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

    /// Hands what the API queued to crm-sync, each delivery twice; returns how many.
    async fn drain(&self) -> usize {
        let mut n = 0;
        loop {
            let batch = self
                .queue
                .receive(10, std::time::Duration::from_secs(60))
                .await
                .unwrap();
            if batch.is_empty() {
                return n;
            }
            for d in batch {
                let event = Event::from_json(&d.body).unwrap();
                self.deliver_twice(&[event]).await;
                self.queue.delete(&d.receipt).await.unwrap();
                n += 1;
            }
        }
    }

    async fn lines(&self, kind: &str) -> Vec<Value> {
        let records = self.records.list(Some(kind), 0, 10_000).await.unwrap();
        records.into_iter().map(|r| Value::Object(r.body)).collect()
    }

    async fn activity(&self, message_id: &str) -> Value {
        let all = self.lines("activity").await;
        all.into_iter()
            .find(|a| a["message_id"] == message_id)
            .unwrap_or_else(|| panic!("no activity of {message_id}"))
    }
}

#[tokio::test]
async fn a_scripted_day_gives_each_conversation_its_exact_first_response() {
    let env = env().await;
    env.deliver_twice(&day::morning()).await;
    // The local CRM keeps one record per conversation, its latest revision.
    let all = env.lines("conversation").await;
    let all = day::latest(&all);
    day::check_morning(&all);
    // Every message's activity names its conversation.
    let (mariana, joao) = (all[0]["id"].clone(), all[1]["id"].clone());
    assert_eq!(env.activity("wamid.M1").await["conversation_id"], mariana);
    assert_eq!(env.activity("wamid.R1").await["conversation_id"], mariana);
    assert_eq!(env.activity("wamid.E1").await["conversation_id"], joao);
    assert_eq!(env.activity("wamid.J1").await["conversation_id"], joao);

    // Tags by rule: a keyword and a button, out of order and twice.
    env.deliver_twice(&day::late_morning()).await;
    day::check_late_morning(&day::latest(&env.lines("conversation").await));
    // The lead of Mariana's first message names her conversation.
    let leads = env.lines("lead").await;
    let lead = |contact: &Value| {
        leads
            .iter()
            .find(|l| &l["contact_id"] == contact)
            .unwrap_or_else(|| panic!("no lead of {contact}: {leads:#?}"))
    };
    assert_eq!(lead(&all[0]["contact_id"])["conversation_id"], mariana);
    assert_eq!(lead(&all[1]["contact_id"])["conversation_id"], joao);

    // A tag through the API and Mariana's conversion, each twice: queued, then in the CRM.
    let vip = env
        .catalogues
        .change(None, None, None, &["vip".to_string()])
        .unwrap();
    for _ in 0..2 {
        let state = env
            .updates
            .apply(joao.as_str().unwrap(), &vip)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.record.tags, ["pricing", "promo", "vip"]);
    }
    let contact = all[0]["contact_id"].as_str().unwrap().to_string();
    let target = Target {
        contact_id: contact.clone(),
        number: Some(day::NUMBER.to_string()),
        conversation_id: None,
    };
    let sale = Converted {
        event_id: "deal-8812".into(),
        value: day::SALE,
        currency: "MXN".into(),
        at: (day::T0 + 3 * day::HOUR) * 1000,
    };
    for _ in 0..2 {
        let state = env
            .updates
            .converted(&target, &sale)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.record.id, mariana.as_str().unwrap());
    }
    // Each once: the same tag or conversion again changes and queues nothing.
    assert_eq!(env.drain().await, 2);
    let all = day::latest(&env.lines("conversation").await);
    day::check_api_changes(&all);
    // Without a number: the conversation the contact opened last; an unknown contact: none.
    let elsewhere = Target {
        number: None,
        ..target.clone()
    };
    let found = env.updates.converted(&elsewhere, &sale).await.unwrap();
    assert_eq!(found.unwrap().record.id, mariana.as_str().unwrap());
    assert_eq!(env.drain().await, 0);
    assert_eq!(day::latest(&env.lines("conversation").await), all);
    let nobody = Target {
        contact_id: "c_nobody".into(),
        ..target
    };
    assert!(env
        .updates
        .converted(&nobody, &sale)
        .await
        .unwrap()
        .is_none());

    env.deliver_twice(&day::next_day()).await;
    let all = day::latest(&env.lines("conversation").await);
    day::check_next_day(&all, &mariana);
    assert_eq!(all[0]["outcome"], "converted");
    assert_eq!(env.activity("wamid.R1").await["conversation_id"], mariana);
    assert_ne!(env.activity("wamid.M2").await["conversation_id"], mariana);
}

#[tokio::test]
async fn a_conversation_changed_through_the_api_reaches_the_crm_once() {
    let env = env().await;
    env.deliver_twice(&day::morning()).await;
    let mut record: wabridge_core::conversations::ConversationRecord =
        serde_json::from_value(day::latest(&env.lines("conversation").await)[0].clone()).unwrap();
    record.outcome = Some("resolved".into());
    record.revision += 1;
    env.deliver_twice(&[wabridge_core::conversations::outcome::event(&record)])
        .await;
    let all = day::latest(&env.lines("conversation").await);
    assert_eq!(all[0]["outcome"], "resolved");
    assert_eq!(all[0]["first_response_ms"], 7 * day::MIN * 1000);
}

#[tokio::test]
async fn calls_and_edits_name_their_conversation_without_counting_in_it() {
    let env = env().await;
    env.deliver_twice(&day::morning()).await;
    let before = day::latest(&env.lines("conversation").await);
    let mariana = before[0]["id"].clone();
    env.deliver_twice(&[
        // Her edit of her first message, and a call an hour after it.
        day::edit(
            day::MARIANA,
            "wamid.ED1",
            "wamid.M1",
            day::T0 + 5 * day::MIN,
        ),
        day::call(day::MARIANA, "wacid.C1", day::T0 + day::HOUR),
        // A call two days later: her conversation went idle long before.
        day::call(day::MARIANA, "wacid.C2", day::T0 + 48 * day::HOUR),
    ])
    .await;
    let changes = env.lines("message_change").await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["conversation_id"], mariana);
    let calls = env.lines("call").await;
    let call = |id: &str| calls.iter().find(|c| c["call_id"] == id).unwrap().clone();
    assert_eq!(call("wacid.C1")["conversation_id"], mariana);
    assert!(
        call("wacid.C2").get("conversation_id").is_none(),
        "{calls:?}"
    );
    // They are no messages of the thread: the conversations did not change.
    assert_eq!(day::latest(&env.lines("conversation").await), before);
}
