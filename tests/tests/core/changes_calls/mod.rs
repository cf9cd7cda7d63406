//! Edits, deletions, Business-app echoes, calls and account updates through crm-sync over the
//! embedded engine (identity store, effects ledger, the `local` CRM in the SQLite records
//! table), fed with webhook bodies split the way ingest splits them. Every case is delivered
//! twice and, where order matters, in every order.

mod calls;
mod echoes;
mod edits;
mod hubspot;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::event::Event;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::{HookContext, SyncHooks};
use wabridge_core::webhook::split;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteRecords};

/// What the 24-hour window hears: every `on_inbound` call (the event key).
#[derive(Default)]
struct WindowSpy {
    inbound: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl SyncHooks for WindowSpy {
    async fn on_inbound(
        &self,
        ctx: &HookContext<'_>,
        _at: i64,
    ) -> Result<(), wabridge_core::error::StoreError> {
        self.inbound.lock().unwrap().push(ctx.event.key.clone());
        Ok(())
    }
}

struct Env {
    _dir: tempfile::TempDir,
    db: Db,
    records: SqliteRecords,
    sync: wabridge_core::sync::CrmSync,
    window: Arc<WindowSpy>,
}

fn env() -> Env {
    env_with(wabridge_core::mapping::LOCAL_EXAMPLE, None)
}

fn env_with(mapping: &str, media: Option<Arc<dyn wabridge_core::queue::Queue>>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let window = Arc::new(WindowSpy::default());
    let mut sync = wabridge_core::sync::CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::from_toml(mapping).unwrap()),
    )
    .with_hooks(window.clone());
    if let Some(q) = media {
        sync = sync.with_media(q);
    }
    Env {
        _dir: dir,
        db,
        records,
        sync,
        window,
    }
}

impl Env {
    /// Delivers one event and expects it done.
    async fn deliver(&self, event: &Event) {
        let d = Delivery {
            message_id: event.key.clone(),
            receipt: "r".into(),
            body: event.to_json(),
            receive_count: 1,
            enqueued_at: None,
        };
        assert_eq!(self.sync.handle(&d).await, Outcome::Done, "{}", event.key);
    }

    /// Delivers every event twice (a redelivery after each).
    async fn deliver_twice(&self, events: &[&Event]) {
        for e in events {
            self.deliver(e).await;
            self.deliver(e).await;
        }
    }

    async fn lines(&self, kind: &str) -> Vec<Value> {
        self.records
            .list(Some(kind), 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| Value::Object(r.body))
            .collect()
    }

    async fn one(&self, kind: &str) -> Value {
        let mut all = self.lines(kind).await;
        assert_eq!(all.len(), 1, "{kind}: {all:?}");
        all.remove(0)
    }

    /// Whether any stored record still holds `text`.
    async fn store_holds(&self, text: &str) -> bool {
        let text = text.to_string();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM records WHERE instr(body, ?1) > 0",
                    [&text],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| wabridge_core::error::StoreError::Unavailable(e.to_string()))
            })
            .await
            .unwrap()
            > 0
    }
}

/// The events of a webhook body, split as ingest splits them.
fn split_body(body: &Value) -> Vec<Event> {
    split(body.to_string().as_bytes(), 1_763_700_000_000).unwrap()
}

/// The events of a sample in `events/webhooks`.
fn sample(name: &str) -> Vec<Event> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/webhooks")
        .join(name);
    split(&std::fs::read(path).unwrap(), 1_763_700_000_000).unwrap()
}

/// A `messages` webhook from Mariana (`5215512345678`) with one item.
fn inbound(item: Value) -> Event {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "525550001111", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Mariana Torres"}, "wa_id": "5215512345678"}],
        "messages": [item]}}]}]});
    let mut events = split_body(&body);
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn text(id: &str, at: i64, body: &str) -> Event {
    inbound(
        json!({"from": "5215512345678", "id": id, "timestamp": at.to_string(),
        "type": "text", "text": {"body": body}}),
    )
}

fn edit(id: &str, at: i64, original: &str, body: &str) -> Event {
    inbound(
        json!({"from": "5215512345678", "id": id, "timestamp": at.to_string(),
        "type": "edit", "edit": {"original_message_id": original,
        "message": {"type": "text", "text": {"body": body}}}}),
    )
}

fn revoke(id: &str, at: i64, original: &str) -> Event {
    inbound(
        json!({"from": "5215512345678", "id": id, "timestamp": at.to_string(),
        "type": "revoke", "revoke": {"original_message_id": original}}),
    )
}

/// Every order of `items` (small lists only).
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}
