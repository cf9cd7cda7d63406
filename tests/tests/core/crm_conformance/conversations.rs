//! The conversation case: crm-sync with the conversation store on, writing one conversation's
//! records to a subject: every message's change, an outcome, a late older revision, the close,
//! with redeliveries and a new process. The CRM must hold one conversation, on the person's
//! contact, showing the highest revision, tied to the activities of its messages.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::conversations::{outcome, ConversationRecord, Conversations};
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::sync::CrmSync;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteEngine};

use super::{delivery, status, text, Harness, Subject};

const NUMBER: &str = "106540352242922";
const IDLE_MS: i64 = 24 * 3_600_000;

pub(super) fn sync_with(db: &Db, crm: Arc<dyn Crm>, mapping: Mapping) -> (CrmSync, Conversations) {
    let conversations = SqliteEngine::new(db.clone()).conversations(IDLE_MS);
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        crm,
        Arc::new(mapping),
    )
    .with_lease(Duration::from_secs(3))
    .with_conversations(conversations.clone());
    (sync, conversations)
}

/// The event on the business number (conversations are threads of a contact and a number).
pub(super) fn on_number(mut event: Value) -> Value {
    event["phone_number_id"] = json!(NUMBER);
    event
}

pub(super) fn conversation_event(record: &ConversationRecord) -> Value {
    serde_json::from_str(&outcome::event(record).to_json()).unwrap()
}

pub(super) async fn deliver(sync: &CrmSync, event: &Value, times: usize) {
    for _ in 0..times {
        let outcome = sync.handle(&delivery(event, 1)).await;
        assert_eq!(outcome, Outcome::Done, "{}", event["key"]);
    }
}

pub(crate) async fn conversation_records<S: Subject>() {
    let h = Harness::<S>::start().await;
    let (sync, conversations) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    let messages = [
        on_number(text("wamid.c1", "5215512345678", "Hola, ¿tienen envíos?")),
        on_number(status("wamid.out1", "5215512345678", "sent")),
        on_number(text("wamid.c2", "5215512345678", "¿Y a Monterrey?")),
    ];
    // Every message delivered twice.
    for e in &messages {
        deliver(&sync, e, 2).await;
    }
    // A new process (empty caches) gets the last message again: nothing new.
    let (restarted, _) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    deliver(&restarted, &messages[2], 1).await;

    let Some(held) = h.subject.conversations() else {
        // A CRM without conversations skips them: every delivery above still ended Done.
        h.assert_documented();
        return;
    };
    assert_eq!(held.len(), 1, "{}: {held:?}", S::KIND);
    let id = held[0].id.clone();
    let state = conversations.store().get(&id).await.unwrap().unwrap();
    assert_eq!(held[0].revision, state.record.revision, "{}", S::KIND);

    // An outcome (a new revision), then a late older revision saying otherwise, in a new
    // process: the CRM keeps the newer.
    let change = wabridge_core::conversations::update::Change {
        outcome: Some("converted".into()),
        ..Default::default()
    };
    let (with_outcome, _) = conversations
        .update(&id, &change, 1_763_790_000_000)
        .await
        .unwrap()
        .unwrap();
    deliver(&sync, &conversation_event(&with_outcome.record), 2).await;
    let mut older = with_outcome.record.clone();
    older.revision -= 1;
    older.outcome = Some("lost".into());
    let (late, _) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    deliver(&late, &conversation_event(&older), 1).await;
    let held = h.subject.conversations().unwrap();
    assert_eq!(held.len(), 1, "{}: {held:?}", S::KIND);
    assert_eq!(
        (held[0].revision, held[0].outcome.as_deref()),
        (with_outcome.record.revision, Some("converted")),
        "{}: the late older revision changed nothing",
        S::KIND
    );
    // The close.
    let closed = conversations
        .close(&id, 1_763_800_000_000)
        .await
        .unwrap()
        .unwrap();
    deliver(&sync, &conversation_event(&closed.record), 2).await;

    h.assert_documented();
    let held = h.subject.conversations().unwrap();
    assert_eq!(held.len(), 1, "{}: one conversation: {held:?}", S::KIND);
    let c = &held[0];
    let contacts = h.subject.contacts();
    assert_eq!(contacts.len(), 1, "{}", S::KIND);
    assert_eq!(
        c.contact,
        contacts[0].key,
        "{}: on the person's contact",
        S::KIND
    );
    assert_eq!(c.revision, closed.record.revision, "{}", S::KIND);
    assert_eq!(c.outcome.as_deref(), Some("converted"), "{}", S::KIND);
    assert!(c.closed, "{}", S::KIND);
    // Both inbound messages and the status of our reply, each once.
    assert_eq!(c.activities, 3, "{}: {c:?}", S::KIND);
}
