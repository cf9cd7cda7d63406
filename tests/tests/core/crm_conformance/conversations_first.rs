//! `Crm::conversations_first`: crm-sync writes an event's conversation record before the
//! event's activity (so the activity can link to the conversation's CRM record), and never
//! hands such a CRM a revision the conversation store has superseded. Without the flag the
//! effects after the contact run at once, which the second case shows (so the first can fail).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::records::Record;
use wabridge_sqlite::Db;

use super::conversations::{conversation_event, deliver, on_number, sync_with};
use super::text;

/// Records what reached it, in the order each call *finished*; a conversation takes longer.
struct Recorder {
    first: bool,
    done: Mutex<Vec<String>>,
}

#[async_trait]
impl Crm for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        let seen = match &effect.record {
            Record::Conversation(c) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                format!("conversation r{}", c.revision)
            }
            other => other.kind().to_string(),
        };
        self.done.lock().unwrap().push(seen);
        Ok(())
    }
    fn conversations_first(&self) -> bool {
        self.first
    }
}

fn mapping() -> wabridge_core::mapping::Mapping {
    wabridge_core::mapping::Mapping::from_toml(wabridge_core::mapping::LOCAL_EXAMPLE).unwrap()
}

async fn run(first: bool) -> (Arc<Recorder>, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let crm = Arc::new(Recorder {
        first,
        done: Mutex::new(Vec::new()),
    });
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
