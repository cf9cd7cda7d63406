//! The order of an event's effects. `Crm::conversations_first`: crm-sync writes an event's
//! conversation record before the event's activity (so the activity can link to the
//! conversation's CRM record), and never hands such a CRM a revision the conversation store has
//! superseded. Without the flag the effects after the contact run at once, which the second
//! case shows (so the first can fail). `Crm::waits_for_contact`: a record that needs nothing of
//! the contact goes out beside the contact's write, and is still applied once. The contact's
//! write itself starts while the conversation is folded.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::conversations::{
    ConversationRecord, ConversationState, ConversationStore, Conversations, Loaded, Write,
};
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::error::StoreError;
use wabridge_core::records::Record;
use wabridge_sqlite::Db;

use super::conversations::{conversation_event, deliver, on_number, sync_with};
use super::text;

/// Records what reached it, in the order each call *finished*; the `slow` kind takes longer.
#[derive(Default)]
struct Recorder {
    first: bool,
    /// Conversations do not wait for the contact.
    beside: bool,
    slow: &'static str,
    /// Contact writes still to answer with a 503.
    contact_failures: AtomicU32,
    done: Mutex<Vec<String>>,
    /// When each call started, by record kind.
    started: Mutex<Vec<(&'static str, Instant)>>,
}

#[async_trait]
impl Crm for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        let kind = effect.record.kind();
        self.started.lock().unwrap().push((kind, Instant::now()));
        if kind == self.slow {
            // Well above a fold and a claim on a loaded machine.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let failing = |n: u32| n.checked_sub(1);
        if kind == "contact"
            && self
                .contact_failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, failing)
                .is_ok()
        {
            return Err(CrmError::Transient("HTTP 503".into()));
        }
        let seen = match &effect.record {
            Record::Conversation(c) => format!("conversation r{}", c.revision),
            other => other.kind().to_string(),
        };
        self.done.lock().unwrap().push(seen);
        Ok(())
    }
    fn conversations_first(&self) -> bool {
        self.first
    }
    fn waits_for_contact(&self, record: &Record) -> bool {
        !(self.beside && matches!(record, Record::Conversation(_)))
    }
}

fn mapping() -> wabridge_core::mapping::Mapping {
    wabridge_core::mapping::Mapping::from_toml(wabridge_core::mapping::LOCAL_EXAMPLE).unwrap()
}

async fn run(first: bool) -> (Arc<Recorder>, Db, tempfile::TempDir) {
    run_with(Recorder {
        first,
        slow: "conversation",
        ..Recorder::default()
    })
    .await
}

async fn run_with(recorder: Recorder) -> (Arc<Recorder>, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let crm = Arc::new(recorder);
    let (sync, _) = sync_with(&db, crm.clone(), mapping());
    deliver(
        &sync,
        &on_number(text("wamid.f1", "5215512345678", "Hola")),
        1,
    )
    .await;
    (crm, db, dir)
}

#[tokio::test]
async fn the_conversation_is_written_before_the_activity_and_an_older_revision_not_at_all() {
    let (crm, db, _dir) = run(true).await;
    let done = crm.done.lock().unwrap().clone();
    assert_eq!(done, ["contact", "conversation r1", "activity"]);

    // The store moves on (an outcome: revision 2); revision 1's event comes again under a
    // new key, as a late copy would: the CRM is not asked to write it.
    let (sync, conversations) = sync_with(&db, crm.clone(), mapping());
    let open = conversations.store().open().await.unwrap();
    let id = open[0].record.id.clone();
    let state = conversations.store().get(&id).await.unwrap().unwrap();
    let change = wabridge_core::conversations::update::Change {
        outcome: Some("converted".into()),
        ..Default::default()
    };
    let (newer, _) = conversations
        .update(&id, &change, 1_763_790_000_000)
        .await
        .unwrap()
        .unwrap();
    let mut late = conversation_event(&state.record);
    late["key"] = "late-copy".into();
    deliver(&sync, &late, 2).await;
    deliver(&sync, &conversation_event(&newer.record), 1).await;
    let done = crm.done.lock().unwrap().clone();
    assert_eq!(done[3..], ["conversation r2".to_string()], "{done:?}");
}

#[tokio::test]
async fn without_the_flag_the_activity_does_not_wait_for_the_conversation() {
    let (crm, _db, _dir) = run(false).await;
    let done = crm.done.lock().unwrap().clone();
    assert_eq!(done, ["contact", "activity", "conversation r1"]);
}

#[tokio::test]
async fn a_record_that_needs_nothing_of_the_contact_is_written_beside_it() {
    let slow_contact = |beside| Recorder {
        beside,
        slow: "contact",
        ..Recorder::default()
    };
    let (crm, _db, _dir) = run_with(slow_contact(true)).await;
    let done = crm.done.lock().unwrap().clone();
    assert_eq!(done, ["conversation r1", "contact", "activity"]);

    // By default every record waits for the contact, however slow.
    let (crm, _db, _dir) = run_with(slow_contact(false)).await;
    let done = crm.done.lock().unwrap().clone();
    assert_eq!(done, ["contact", "activity", "conversation r1"]);
}

#[tokio::test]
async fn a_record_written_beside_a_failed_contact_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let crm = Arc::new(Recorder {
        beside: true,
        // More failures than the in-process attempts: the delivery goes back to the queue.
        contact_failures: AtomicU32::new(10),
        ..Recorder::default()
    });
    let (sync, _) = sync_with(&db, crm.clone(), mapping());
    let event = on_number(text("wamid.f2", "5215512345678", "Hola"));
    let first = sync.handle(&super::delivery(&event, 1)).await;
    assert!(matches!(first, Outcome::Retry { .. }), "{first:?}");
    // The conversation went out beside the contact; the activity waited for it.
    assert_eq!(*crm.done.lock().unwrap(), ["conversation r1"]);

    crm.contact_failures.store(0, Ordering::SeqCst);
    let second = sync.handle(&super::delivery(&event, 2)).await;
    assert_eq!(second, Outcome::Done);
    // The redelivery writes what was missing, and the conversation not again (its effect
    // was confirmed in the ledger).
    assert_eq!(
        *crm.done.lock().unwrap(),
        ["conversation r1", "contact", "activity"]
    );
}

/// A conversation store whose fold writes take 100 ms, and that says when the last one ended.
struct SlowFold {
    inner: Arc<dyn ConversationStore>,
    saved: Mutex<Option<Instant>>,
}

#[async_trait]
impl ConversationStore for SlowFold {
    async fn load(&self, thread: &str, message_id: &str) -> Result<Loaded, StoreError> {
        self.inner.load(thread, message_id).await
    }
    async fn save(&self, write: &Write) -> Result<bool, StoreError> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let saved = self.inner.save(write).await;
        *self.saved.lock().unwrap() = Some(Instant::now());
        saved
    }
    async fn get(&self, id: &str) -> Result<Option<ConversationState>, StoreError> {
        self.inner.get(id).await
    }
    async fn open(&self) -> Result<Vec<ConversationState>, StoreError> {
        self.inner.open().await
    }
    async fn opened_since(&self, since: i64) -> Result<Vec<ConversationRecord>, StoreError> {
        self.inner.opened_since(since).await
    }
    async fn latest(
        &self,
        contact_id: &str,
        number: Option<&str>,
    ) -> Result<Option<ConversationState>, StoreError> {
        self.inner.latest(contact_id, number).await
    }
}

/// The contact's write does not wait for the conversation's fold (a store write), unless a
/// record of the event fails the mapping before the fold: then nothing goes out before the
/// event is complete and valid.
#[tokio::test]
async fn the_contact_is_written_while_the_conversation_is_folded() {
    let run = |text_rule: &'static str| async move {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db")).unwrap();
        let (_, conversations) = sync_with(&db, Arc::new(Recorder::default()), mapping());
        let store = Arc::new(SlowFold {
            inner: conversations.store().clone(),
            saved: Mutex::new(None),
        });
        let crm = Arc::new(Recorder::default());
        let mapping = wabridge_core::mapping::Mapping::from_toml(&format!(
            "{}\n[[activity]]\nto = \"texto\"\nfrom = \"text\"\n{text_rule}\n",
            wabridge_core::mapping::LOCAL_EXAMPLE
        ))
        .unwrap();
        let (sync, _) = sync_with(&db, crm.clone(), mapping);
        let sync = sync.with_conversations(Conversations::new(store.clone(), 24 * 3_600_000));
        let event = on_number(text("wamid.f3", "5215512345678", "Hola"));
        let outcome = sync.handle(&super::delivery(&event, 1)).await;
        let saved = store.saved.lock().unwrap().expect("the message was folded");
        let started = crm.started.lock().unwrap().clone();
        (outcome, saved, started)
    };
    let (outcome, saved, started) = run("max_length = 100").await;
    assert_eq!(outcome, Outcome::Done);
    let contact = started.iter().find(|(kind, _)| *kind == "contact").unwrap();
    assert!(contact.1 < saved, "the contact waited for the fold");
    let activity = started
        .iter()
        .find(|(kind, _)| *kind == "activity")
        .unwrap();
    assert!(
        activity.1 > saved,
        "the activity carries the conversation's id"
    );

    // A text the mapping refuses as it is: the event is dead-lettered before any write.
    let (outcome, _, started) = run("max_length = 2").await;
    assert!(matches!(outcome, Outcome::DeadLetter(_)), "{outcome:?}");
    assert!(started.is_empty(), "{started:?}");
}
