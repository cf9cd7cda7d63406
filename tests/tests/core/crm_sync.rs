//! crm-sync over the embedded engine: identity store, effects ledger and the handler writing to
//! the `local` CRM (the SQLite records table), with real SQLite files.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::identity::{IdentityKey, IdentityStore, Phone};
use wabridge_core::ledger::{Claim, Ledger};
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Delivery;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteRecords};

struct Env {
    _dir: tempfile::TempDir,
    db: Db,
    records: SqliteRecords,
    sync: CrmSync,
}

fn env_with(mapping: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::from_toml(mapping).unwrap()),
    );
    Env {
        _dir: dir,
        db,
        records,
        sync,
    }
}

fn env() -> Env {
    env_with(wabridge_core::mapping::LOCAL_EXAMPLE)
}

fn delivery(event: Value) -> Delivery {
    Delivery {
        message_id: event["key"].as_str().unwrap().to_string(),
        receipt: "r".into(),
        body: event.to_string(),
        receive_count: 1,
    }
}

fn message(key: &str, from: Option<&str>, user_id: Option<&str>, name: &str, item: Value) -> Value {
    let mut item = item;
    item["id"] = json!(key);
    item["timestamp"] = json!("1763780000");
    if let Some(f) = from {
        item["from"] = json!(f);
    }
    if let Some(u) = user_id {
        item["from_user_id"] = json!(u);
    }
    let mut contact = json!({"profile": {"name": name}});
    if let Some(f) = from {
        contact["wa_id"] = json!(f);
    }
    if let Some(u) = user_id {
        contact["user_id"] = json!(u);
    }
    json!({"v": 1, "key": key, "kind": "message", "field": "messages", "waba_id": "W1",
           "phone_number_id": "P1", "contact": contact, "item": item, "received_at": 1763780000123i64})
}

fn text(key: &str, from: &str, body: &str) -> Value {
    message(
        key,
        Some(from),
        None,
        "Ana López",
        json!({"type": "text", "text": {"body": body}}),
    )
}

fn status(key_suffix: &str, wamid: &str, to: &str, status: &str) -> Value {
    let mut item =
        json!({"id": wamid, "status": status, "timestamp": "1763780100", "recipient_id": to});
    if status == "failed" {
        item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    json!({"v": 1, "key": format!("{wamid}:{key_suffix}"), "kind": "status", "field": "messages",
           "waba_id": "W1", "item": item, "received_at": 1763780100000i64})
}

async fn lines(records: &SqliteRecords, kind: &str) -> Vec<Value> {
    records
        .list(Some(kind), 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Value::Object(r.body))
        .collect()
}

#[tokio::test]
async fn mexican_spellings_and_redeliveries_make_one_contact_and_one_activity_each() {
    let e = env();
    // Meta's legacy 521 wa_id, then the modern 52 form, each delivered twice.
    for ev in [
        text("wamid.A", "5215512345678", "Hola"),
        text("wamid.B", "525512345678", "¿Precio?"),
    ] {
        for _ in 0..2 {
            assert_eq!(e.sync.handle(&delivery(ev.clone())).await, Outcome::Done);
        }
    }
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert_eq!(c["kind"], "contact");
    assert_eq!(c["phone_e164"], "+525512345678");
    assert_eq!(c["name"], "Ana López");
    assert_eq!(c["fields"]["first_name"], "Ana");
    let acts = lines(&e.records, "activity").await;
    assert_eq!(acts.len(), 2);
    for a in &acts {
        assert_eq!(a["contact_id"], c["id"]);
        assert_eq!(a["type"], "text");
        assert_eq!(a["direction"], "inbound");
    }
    assert_eq!(acts[0]["event_id"], "wamid.A");
    assert_eq!(acts[0]["text"], "Hola");
}

#[tokio::test]
async fn argentine_and_brazilian_quirks_resolve_to_one_contact_per_person() {
    let e = env();
    let ar1 = text("wamid.ar1", "5491123456789", "hola");
    let ar2 = text("wamid.ar2", "541123456789", "che");
    let br1 = text("wamid.br1", "5511987654321", "oi");
    let br2 = text("wamid.br2", "551187654321", "tudo bem");
    for ev in [ar1, ar2, br1, br2] {
        assert_eq!(e.sync.handle(&delivery(ev)).await, Outcome::Done);
    }
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    let phones: Vec<&str> = contacts
        .iter()
        .map(|c| c["phone_e164"].as_str().unwrap())
        .collect();
    assert!(phones.contains(&"+5491123456789"));
    assert!(phones.contains(&"+5511987654321"));
    // A CRM-side spelling finds the same contact.
    let store = SqliteIdentityStore::new(e.db.clone());
    let local = Phone::parse("011 15 2345-6789", Some("AR")).unwrap();
    let id = store.lookup(&local.identity_key()).await.unwrap().unwrap();
    assert!(contacts.iter().any(|c| c["id"] == id.as_str()));
}

#[tokio::test]
async fn bsuid_only_senders_get_a_contact_and_a_later_phone_joins_it() {
    let e = env();
    let only_user = message(
        "wamid.u1",
        None,
        Some("MX.13491208655302741918"),
        "Luz",
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    assert_eq!(e.sync.handle(&delivery(only_user)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["bsuid"], "MX.13491208655302741918");
    assert!(contacts[0]["phone_e164"].is_null());
    // Both identities on one message: the BSUID links the phone to the same contact.
    let both = message(
        "wamid.u2",
        Some("5215512340000"),
        Some("MX.13491208655302741918"),
        "Luz",
        json!({"type": "text", "text": {"body": "mi número"}}),
    );
    assert_eq!(e.sync.handle(&delivery(both)).await, Outcome::Done);
    // And a later BSUID-only message does not wipe the phone.
    let again = message(
        "wamid.u3",
        None,
        Some("MX.13491208655302741918"),
        "Luz",
        json!({"type": "text", "text": {"body": "otra vez"}}),
    );
    assert_eq!(e.sync.handle(&delivery(again)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["phone_e164"], "+525512340000");
    assert_eq!(contacts[0]["bsuid"], "MX.13491208655302741918");
}

#[tokio::test]
async fn number_change_moves_the_identity_without_a_second_contact() {
    let e = env();
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.n1", "5215511111111", "hola")))
            .await,
        Outcome::Done
    );
    let change = message(
        "wamid.n2",
        Some("5215511111111"),
        None,
        "Ana",
        json!({"type": "system", "system": {"body": "Ana changed from +52 1 55 1111 1111 to +52 1 55 2222 2222",
               "wa_id": "5215522222222", "type": "customer_changed_number"}}),
    );
    for _ in 0..2 {
        assert_eq!(
            e.sync.handle(&delivery(change.clone())).await,
            Outcome::Done
        );
    }
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.n3", "5215522222222", "ya")))
            .await,
        Outcome::Done
    );
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["phone_e164"], "+525522222222");
    assert_eq!(contacts[0]["wa_id"], "5215522222222");
    // The old number is free: its next owner is a new contact.
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.n4", "5215511111111", "soy otro")))
            .await,
        Outcome::Done
    );
    assert_eq!(lines(&e.records, "contact").await.len(), 2);
    let acts = lines(&e.records, "activity").await;
    assert_eq!(acts.iter().filter(|a| a["type"] == "system").count(), 1);
}

#[tokio::test]
async fn user_id_change_moves_the_bsuid() {
    let e = env();
    let first = message(
        "wamid.b1",
        None,
        Some("BR.111"),
        "Bia",
        json!({"type": "text", "text": {"body": "oi"}}),
    );
    assert_eq!(e.sync.handle(&delivery(first)).await, Outcome::Done);
    let change = message(
        "wamid.b2",
        None,
        Some("BR.111"),
        "Bia",
        json!({"type": "system", "system": {"body": "changed", "user_id": "BR.222", "type": "user_changed_user_id"}}),
    );
    assert_eq!(e.sync.handle(&delivery(change)).await, Outcome::Done);
    let later = message(
        "wamid.b3",
        None,
        Some("BR.222"),
        "Bia",
        json!({"type": "text", "text": {"body": "de novo"}}),
    );
    assert_eq!(e.sync.handle(&delivery(later)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["bsuid"], "BR.222");
}

/// Meta's current shape: `user_changed_number`, carrying the regenerated BSUID
/// (`previous_user_id` → `user_id`). Both the new number and the new BSUID land on the one contact.
#[tokio::test]
async fn user_changed_number_moves_the_phone_and_links_the_new_bsuid() {
    let e = env();
    let first = message(
        "wamid.u1",
        Some("5215511111111"),
        Some("MX.0f9e8d7c"),
        "Ana",
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    assert_eq!(e.sync.handle(&delivery(first)).await, Outcome::Done);
    let change = message(
        "wamid.u2",
        Some("5215511111111"),
        None,
        "Ana",
        json!({"type": "system", "system": {"body": "User Ana changed from 5215511111111 to 5215522222222",
               "wa_id": "5215522222222", "type": "user_changed_number",
               "user_id": "MX.1a2b3c4d", "previous_user_id": "MX.0f9e8d7c"}}),
    );
    for _ in 0..2 {
        assert_eq!(
            e.sync.handle(&delivery(change.clone())).await,
            Outcome::Done
        );
    }
    // Later messages by the new number alone, or by the new BSUID alone: the same contact.
    let by_phone = text("wamid.u3", "5215522222222", "ya");
    assert_eq!(e.sync.handle(&delivery(by_phone)).await, Outcome::Done);
    let by_bsuid = message(
        "wamid.u4",
        None,
        Some("MX.1a2b3c4d"),
        "Ana",
        json!({"type": "text", "text": {"body": "sin número"}}),
    );
    assert_eq!(e.sync.handle(&delivery(by_bsuid)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["phone_e164"], "+525522222222");
    assert_eq!(contacts[0]["bsuid"], "MX.1a2b3c4d");
}

/// The sample shape of `user_changed_user_id`: `from_user_id` already carries the NEW BSUID and
/// the old one is only in `system.previous_user_id`.
#[tokio::test]
async fn user_id_change_with_the_new_id_as_sender_moves_the_previous_one() {
    let e = env();
    let first = message(
        "wamid.p1",
        None,
        Some("BR.99812345"),
        "Bia",
        json!({"type": "text", "text": {"body": "oi"}}),
    );
    assert_eq!(e.sync.handle(&delivery(first)).await, Outcome::Done);
    let change = message(
        "wamid.p2",
        None,
        Some("BR.13491208"),
        "Bia",
        json!({"type": "system", "system": {"body": "changed", "type": "user_changed_user_id",
               "user_id": "BR.13491208", "previous_user_id": "BR.99812345"}}),
    );
    assert_eq!(e.sync.handle(&delivery(change)).await, Outcome::Done);
    let later = message(
        "wamid.p3",
        None,
        Some("BR.13491208"),
        "Bia",
        json!({"type": "text", "text": {"body": "de novo"}}),
    );
    assert_eq!(e.sync.handle(&delivery(later)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["bsuid"], "BR.13491208");
    // The previous id is free again: whoever holds it next is someone else.
    let other = message(
        "wamid.p4",
        None,
        Some("BR.99812345"),
        "Outra",
        json!({"type": "text", "text": {"body": "olá"}}),
    );
    assert_eq!(e.sync.handle(&delivery(other)).await, Outcome::Done);
    assert_eq!(lines(&e.records, "contact").await.len(), 2);
}

#[tokio::test]
async fn concurrent_first_messages_of_one_person_create_one_contact() {
    let e = env();
    let sync = Arc::new(e.sync);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let sync = sync.clone();
        // Alternate spellings of the same Brazilian mobile.
        let from = if i % 2 == 0 {
            "5521987650000"
        } else {
            "552187650000"
        };
        tasks.push(tokio::spawn(async move {
            sync.handle(&delivery(text(&format!("wamid.c{i}"), from, "oi")))
                .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Outcome::Done);
    }
    assert_eq!(lines(&e.records, "contact").await.len(), 1);
    assert_eq!(lines(&e.records, "activity").await.len(), 20);
}

#[tokio::test]
async fn statuses_only_move_forward_and_failed_keeps_its_error() {
    let e = env();
    let to = "5215512345678";
    for (suffix, st) in [
        ("sent", "sent"),
        ("read", "read"),
        ("delivered", "delivered"),
    ] {
        assert_eq!(
            e.sync
                .handle(&delivery(status(suffix, "wamid.OUT1", to, st)))
                .await,
            Outcome::Done
        );
    }
    let acts = lines(&e.records, "activity").await;
    assert_eq!(acts.len(), 1, "one activity per outbound message: {acts:?}");
    assert_eq!(
        acts[0]["status"], "read",
        "a late delivered after read changes nothing"
    );
    assert_eq!(acts[0]["direction"], "outbound");
    assert_eq!(acts[0]["type"], "status");
    assert_eq!(acts[0]["event_id"], "wamid.OUT1:read");
    // The unknown recipient became a contact the activity points to.
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(acts[0]["contact_id"], contacts[0]["id"]);

    for (suffix, st) in [("sent", "sent"), ("failed", "failed"), ("read", "read")] {
        assert_eq!(
            e.sync
                .handle(&delivery(status(suffix, "wamid.OUT2", to, st)))
                .await,
            Outcome::Done
        );
    }
    let acts = lines(&e.records, "activity").await;
    let failed = acts
        .iter()
        .find(|a| a["message_id"] == "wamid.OUT2")
        .unwrap();
    assert_eq!(failed["status"], "failed", "failed is terminal");
    assert_eq!(failed["errors"][0]["code"], 131026);
}

#[tokio::test]
async fn records_breaking_a_rule_are_dead_lettered_with_field_and_rule() {
    let e = env_with(
        "version = 1\n[[contact]]\nto = \"nombre\"\nfrom = \"name\"\nmax_length = 5\n[[activity]]\nto = \"body\"\nfrom = \"text\"\nrequired = true",
    );
    let long_name = message(
        "wamid.v1",
        Some("5215512345678"),
        None,
        "Maximiliano",
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    match e.sync.handle(&delivery(long_name)).await {
        Outcome::DeadLetter(reason) => {
            assert!(
                reason.contains("`nombre`") && reason.contains("max_length"),
                "{reason}"
            );
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let no_text = message(
        "wamid.v2",
        Some("5215512345678"),
        None,
        "Ana",
        json!({"type": "image", "image": {"id": "MEDIA1"}}),
    );
    match e.sync.handle(&delivery(no_text)).await {
        Outcome::DeadLetter(reason) => assert!(
            reason.contains("`body`") && reason.contains("required"),
            "{reason}"
        ),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    // Nothing reached the CRM.
    assert_eq!(e.records.count(None).await.unwrap(), 0);
    // A body that is not an event is dead-lettered too, never retried forever.
    let bad = Delivery {
        message_id: "x".into(),
        receipt: "r".into(),
        body: "{".into(),
        receive_count: 1,
    };
    assert!(matches!(e.sync.handle(&bad).await, Outcome::DeadLetter(_)));
}

#[tokio::test]
async fn consent_keywords_and_user_preferences_become_consent_records() {
    let e = env();
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.k1", "5491123456789", "BAJA")))
            .await,
        Outcome::Done
    );
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.k2", "5511987654321", "sair")))
            .await,
        Outcome::Done
    );
    let pref = json!({"v": 1, "key": "pref:5215512345678:1763780000:stop", "kind": "user_preference",
        "field": "user_preferences", "waba_id": "W1",
        "item": {"wa_id": "5215512345678", "detail": "User requested to stop marketing messages",
                 "category": "marketing_messages", "value": "stop", "timestamp": 1763780000},
        "received_at": 1763780000000i64});
    assert_eq!(e.sync.handle(&delivery(pref)).await, Outcome::Done);
    let consents = lines(&e.records, "consent").await;
    assert_eq!(consents.len(), 3, "{consents:?}");
    assert!(consents.iter().all(|c| c["status"] == "opt_out"));
    assert_eq!(consents[0]["source"], "keyword");
    assert_eq!(consents[0]["evidence"]["keyword"], "BAJA");
    assert_eq!(consents[2]["source"], "user_preferences");
    assert_eq!(consents[2]["category"], "marketing_messages");
    // The user_preferences sender had no contact yet: one was created for the consent.
    assert_eq!(lines(&e.records, "contact").await.len(), 3);
}

#[tokio::test]
async fn template_quality_and_unknown_events_become_their_records() {
    let e = env();
    let tpl = json!({"v": 1, "key": "tpl:1:APPROVED:1", "kind": "template_status", "field": "message_template_status_update",
        "waba_id": "W1", "entry_time": 1763780000, "item": {"event": "APPROVED", "message_template_id": 123,
        "message_template_name": "promo_es", "message_template_language": "es_MX", "reason": "NONE"}, "received_at": 1});
    let q = json!({"v": 1, "key": "q:1", "kind": "quality_update", "field": "phone_number_quality_update",
        "waba_id": "W1", "item": {"display_phone_number": "5215500000000", "event": "FLAGGED", "current_limit": "TIER_1K"}, "received_at": 1});
    let u = json!({"v": 1, "key": "u:1", "kind": "unknown", "field": "account_alerts",
        "waba_id": "W1", "item": {"alert": "x"}, "received_at": 1});
    for ev in [tpl, q, u] {
        assert_eq!(e.sync.handle(&delivery(ev)).await, Outcome::Done);
    }
    let t = &lines(&e.records, "template_status").await[0];
    assert_eq!(t["template_id"], "123");
    assert_eq!(t["event"], "APPROVED");
    assert_eq!(lines(&e.records, "quality").await[0]["event"], "FLAGGED");
    let u = &lines(&e.records, "unknown").await[0];
    assert_eq!(u["field"], "account_alerts");
    assert_eq!(u["raw"]["alert"], "x");
}

#[tokio::test]
async fn ledger_claims_are_exclusive_and_done_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::new(Db::open(dir.path().join("l.db")).unwrap());
    let lease = Duration::from_millis(300);
    assert_eq!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    assert!(matches!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Busy(_)
    ));
    // The holder "crashed": after the lease the next attempt proceeds, in doubt.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Proceed { in_doubt: true }
    );
    ledger.confirm("e1").await.unwrap();
    assert_eq!(ledger.claim("e1", lease).await.unwrap(), Claim::Done);
    ledger.release("e1").await.unwrap();
    assert_eq!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Done,
        "release never reopens done"
    );
    // A definite failure releases: the retry is not in doubt.
    assert_eq!(
        ledger.claim("e2", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    ledger.release("e2").await.unwrap();
    assert_eq!(
        ledger.claim("e2", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    // An attempt that ended without knowing ends its lease: the next one proceeds at once, in doubt.
    assert_eq!(
        ledger.claim("e3", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    ledger.abandon("e3").await.unwrap();
    assert_eq!(
        ledger.claim("e3", lease).await.unwrap(),
        Claim::Proceed { in_doubt: true }
    );
    // Forward-only ranks.
    assert!(ledger.advance_status("m", 1).await.unwrap());
    assert!(ledger.advance_status("m", 3).await.unwrap());
    assert!(!ledger.advance_status("m", 2).await.unwrap());
    assert!(
        ledger.advance_status("m", 3).await.unwrap(),
        "equal rank passes (retries)"
    );
}

#[tokio::test]
async fn identity_store_links_and_moves_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteIdentityStore::new(Db::open(dir.path().join("i.db")).unwrap());
    let phone = IdentityKey::Phone("525512345678".into());
    let bsuid = IdentityKey::Bsuid("MX.1".into());
    let r = store
        .resolve(std::slice::from_ref(&phone), "c1")
        .await
        .unwrap();
    assert!(r.created);
    let r = store
        .resolve(&[phone.clone(), bsuid.clone()], "c2")
        .await
        .unwrap();
    assert_eq!((r.contact_id.as_str(), r.created), ("c1", false));
    assert_eq!(store.lookup(&bsuid).await.unwrap().as_deref(), Some("c1"));
    // A key linked elsewhere is never stolen by resolve.
    let other = IdentityKey::Phone("5491100000000".into());
    store
        .resolve(std::slice::from_ref(&other), "c3")
        .await
        .unwrap();
    let r = store
        .resolve(&[phone.clone(), other.clone()], "c4")
        .await
        .unwrap();
    assert_eq!(r.contact_id, "c1");
    assert_eq!(store.lookup(&other).await.unwrap().as_deref(), Some("c3"));
    // Move.
    let new_phone = IdentityKey::Phone("525599999999".into());
    assert_eq!(
        store.move_key(&phone, &new_phone, "c5").await.unwrap(),
        "c1"
    );
    assert_eq!(store.lookup(&phone).await.unwrap(), None);
    assert_eq!(
        store.lookup(&new_phone).await.unwrap().as_deref(),
        Some("c1")
    );
    // Moving again (a redelivery) keeps it on c1.
    assert_eq!(
        store.move_key(&phone, &new_phone, "c6").await.unwrap(),
        "c1"
    );
}

#[derive(Default)]
struct RecordingHooks {
    calls: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl wabridge_core::sync::SyncHooks for RecordingHooks {
    async fn consent_changed(
        &self,
        contact_id: &str,
        consent: &wabridge_core::records::ConsentRecord,
    ) -> Result<(), wabridge_core::error::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("consent {contact_id} {:?}", consent.status));
        Ok(())
    }
    async fn inbound_message(
        &self,
        contact_id: &str,
        at_ms: i64,
    ) -> Result<(), wabridge_core::error::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("inbound {contact_id} {at_ms}"));
        Ok(())
    }
}

#[tokio::test]
async fn sending_side_hooks_hear_consent_changes_and_inbound_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("h.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let hooks = Arc::new(RecordingHooks::default());
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::example("local").unwrap()),
    )
    .with_hooks(hooks.clone());
    assert_eq!(
        sync.handle(&delivery(text("wamid.h1", "5215512345678", "PARAR")))
            .await,
        Outcome::Done
    );
    let contact = lines(&records, "contact").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls = hooks.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            format!("consent {contact} OptOut"),
            format!("inbound {contact} 1763780000123")
        ]
    );
}
