//! Conversations through crm-sync over the embedded engine (identity store, effects ledger,
//! conversation store and the `local` CRM in one SQLite file): a scripted day on one business
//! number, with times taken from the events themselves, every event delivered twice and some
//! out of order. The first-response times are asserted to the millisecond.

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::event::Event;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::webhook::split;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteEngine, SqliteRecords};

const NUMBER: &str = "106540352242922";
const MARIANA: &str = "5215512345678";
const JOAO: &str = "5511987654321";
/// 2026-12-04 08:00:00 UTC, in seconds (Meta's timestamps).
const T0: i64 = 1_796_371_200;
const MIN: i64 = 60;
const HOUR: i64 = 3600;

struct Env {
    _dir: tempfile::TempDir,
    records: SqliteRecords,
    sync: wabridge_core::sync::CrmSync,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let engine = SqliteEngine::new(db.clone());
    let sync = wabridge_core::sync::CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::from_toml(wabridge_core::mapping::LOCAL_EXAMPLE).unwrap()),
    )
    .with_conversations(engine.conversations(24 * HOUR * 1000));
    Env {
        _dir: dir,
        records,
        sync,
    }
}

impl Env {
    async fn deliver_twice(&self, events: &[&Event]) {
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

    async fn lines(&self, kind: &str) -> Vec<Value> {
        let records = self.records.list(Some(kind), 0, 10_000).await.unwrap();
        records.into_iter().map(|r| Value::Object(r.body)).collect()
    }

    /// The conversations in the CRM, by opening time.
    async fn conversations(&self) -> Vec<Value> {
        let mut all = self.lines("conversation").await;
        all.sort_by_key(|c| c["opened_at"].as_i64());
        all
    }

    async fn activity(&self, message_id: &str) -> Value {
        let all = self.lines("activity").await;
        all.into_iter()
            .find(|a| a["message_id"] == message_id)
            .unwrap_or_else(|| panic!("no activity of {message_id}"))
    }
}

fn one(value: Value, field: &str, item: Value) -> Event {
    let mut v = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "525550001111", "phone_number_id": NUMBER}});
    v[field] = json!([item]);
    let field_name = if field == "message_echoes" {
        "smb_message_echoes"
    } else {
        "messages"
    };
    if let Value::Object(extra) = value {
        for (k, x) in extra {
            v[k] = x;
        }
    }
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": field_name, "value": v}]}]});
    let mut events = split(body.to_string().as_bytes(), T0 * 1000).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn text(from: &str, id: &str, at: i64, extra: Value) -> Event {
    let mut item = json!({"from": from, "id": id, "timestamp": at.to_string(),
        "type": "text", "text": {"body": "Hola"}});
    if let Value::Object(extra) = extra {
        for (k, x) in extra {
            item[k] = x;
        }
    }
    one(
        json!({"contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}]}),
        "messages",
        item,
    )
}

fn status(to: &str, id: &str, status: &str, at: i64, category: &str) -> Event {
    one(
        json!({}),
        "statuses",
        json!({"id": id, "status": status, "timestamp": at.to_string(), "recipient_id": to,
            "pricing": {"pricing_model": "PMP", "category": category, "type": "regular"}}),
    )
}

fn echo(to: &str, id: &str, at: i64) -> Event {
    one(
        json!({}),
        "message_echoes",
        json!({"from": "525550001111", "to": to, "id": id, "timestamp": at.to_string(),
            "type": "text", "text": {"body": "Ya te ayudo"}}),
    )
}

#[tokio::test]
async fn a_scripted_day_gives_each_conversation_its_exact_first_response() {
    let env = env();
    // 08:00 Mariana writes from an ad; the API reply's statuses come delivered first, then sent
    // (07:00 after her message), then read.
    let ad = json!({"referral": {"source_type": "ad", "source_id": "120000", "ctwa_clid": "x1"}});
    let m1 = text(MARIANA, "wamid.M1", T0, ad);
    let r1_delivered = status(
        MARIANA,
        "wamid.R1",
        "delivered",
        T0 + 7 * MIN + 2,
        "service",
    );
    let r1_sent = status(MARIANA, "wamid.R1", "sent", T0 + 7 * MIN, "service");
    let r1_read = status(MARIANA, "wamid.R1", "read", T0 + 9 * MIN, "service");
    env.deliver_twice(&[&m1, &r1_delivered, &r1_sent]).await;
    // 09:00 a template opens João's; he answers at 09:30 and the Business app at 09:32:15.
    let t1 = status(JOAO, "wamid.T1", "sent", T0 + HOUR, "marketing");
    let j1 = text(JOAO, "wamid.J1", T0 + HOUR + 30 * MIN, json!({}));
    let e1 = echo(JOAO, "wamid.E1", T0 + HOUR + 32 * MIN + 15);
    // The echo and the reply arrive before the template's status.
    env.deliver_twice(&[&e1, &j1, &t1]).await;

    let all = env.conversations().await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let (mariana, joao) = (&all[0], &all[1]);
    assert_eq!(mariana["opened_by"], "customer");
    assert_eq!(mariana["origin"], "ctwa_ad");
    assert_eq!(mariana["first_response_ms"], 7 * MIN * 1000);
    assert_eq!(mariana["first_response_at"], (T0 + 7 * MIN) * 1000);
    assert_eq!(mariana["inbound_count"], 1);
    assert_eq!(mariana["outbound_count"], 1);
    assert_eq!(mariana["number"], NUMBER);
    assert_eq!(mariana["pricing_categories"], json!(["service"]));
    assert_eq!(mariana["closed_at"], Value::Null);
    assert_eq!(joao["opened_by"], "business");
    assert_eq!(joao["origin"], "template");
    assert_eq!(joao["opened_at"], (T0 + HOUR) * 1000);
    assert_eq!(joao["first_response_ms"], (2 * MIN + 15) * 1000);
    assert_eq!(joao["agent"], "whatsapp_business_app");
    assert_eq!(joao["outbound_count"], 2);
    assert_eq!(joao["pricing_categories"], json!(["marketing"]));
    // Every message's activity names its conversation.
    let mariana_id = mariana["id"].clone();
    assert_eq!(
        env.activity("wamid.M1").await["conversation_id"],
        mariana_id
    );
    assert_eq!(
        env.activity("wamid.R1").await["conversation_id"],
        mariana_id
    );
    assert_eq!(
        env.activity("wamid.E1").await["conversation_id"],
        joao["id"]
    );

    // The next day, 26 h later, Mariana writes again: the first closes at its last message +
    // 24 h, a new one opens. Then the first reply's late `read` arrives: it changes nothing
    // and reopens nothing.
    let m2 = text(MARIANA, "wamid.M2", T0 + 26 * HOUR, json!({}));
    env.deliver_twice(&[&m2, &r1_read]).await;
    let all = env.conversations().await;
    assert_eq!(all.len(), 3, "{all:#?}");
    let closed = &all[0];
    assert_eq!(closed["id"], mariana_id);
    assert_eq!(closed["close_reason"], "idle");
    assert_eq!(closed["closed_at"], (T0 + 7 * MIN + 2 + 24 * HOUR) * 1000);
    assert_eq!(closed["first_response_ms"], 7 * MIN * 1000);
    assert_eq!(closed["outbound_count"], 1);
    let next = &all[2];
    assert_eq!(next["contact_id"], mariana["contact_id"]);
    assert_eq!(next["opened_by"], "customer");
    assert_eq!(next["origin"], "organic");
    assert_eq!(next["first_response_ms"], Value::Null);
    assert_eq!(next["closed_at"], Value::Null);
    assert_eq!(
        env.activity("wamid.R1").await["conversation_id"],
        mariana_id
    );
}
