//! Helpers the adapters' unit tests share (the inbox and the dedupe log's tests).

use serde_json::value::RawValue;
use wabridge_core::event::{Event, EventKind, EVENT_VERSION};

use crate::db::{sql_err, Clock, Db};
use crate::inbox::SqliteInbox;

pub(crate) fn event(key: &str) -> Event {
    Event {
        v: EVENT_VERSION,
        key: key.into(),
        kind: EventKind::Message,
        field: "messages".into(),
        waba_id: "102290129340398".into(),
        entry_time: None,
        phone_number_id: Some("106540352242922".into()),
        display_phone_number: None,
        contact: None,
        item: RawValue::from_string(format!(r#"{{"id":"{key}","type":"text"}}"#)).unwrap(),
        received_at: 1,
    }
}

pub(crate) async fn queued(db: &Db) -> Vec<String> {
    db.read(|c| {
        let mut s = c
            .prepare("SELECT msg_key FROM queue_messages ORDER BY id")
            .map_err(sql_err)?;
        let rows = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(sql_err)
    })
    .await
    .unwrap()
}

/// The inbox of `db` on `clock` (the second one of a database fails: see `recent`).
pub(crate) async fn open(db: &Db, clock: &Clock) -> SqliteInbox {
    SqliteInbox::open(db.clone())
        .await
        .unwrap()
        .with_clock(clock.clone())
}

/// A fresh database file `i.db` with its inbox, on a manual clock.
pub(crate) async fn setup() -> (tempfile::TempDir, Db, Clock, SqliteInbox) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("i.db")).unwrap();
    let clock = Clock::manual(1_700_000_000_000);
    let inbox = open(&db, &clock).await;
    (dir, db, clock, inbox)
}
