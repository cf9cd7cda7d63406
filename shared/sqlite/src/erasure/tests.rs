use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use wabridge_core::audit::Audit;
use wabridge_core::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentService, ConsentSource, ConsentState,
    ConsentStore, ContactRef,
};
use wabridge_core::erasure::{ErasureError, ErasureService};
use wabridge_core::identity::{IdentityStore, Phone};
use wabridge_core::sends::store::{SendRecord, SendState, SendStore};

use super::*;
use crate::identity::SqliteIdentityStore;
use crate::{SqliteConsent, SqliteSends};

const CONTACT: &str = "0193f0a2-7c4e-7b1a-9d2e-1f2a3b4c5d6e";
const OTHER: &str = "0193f0a2-7c4e-7b1a-9d2e-aaaaaaaaaaaa";
/// Meta's spelling of the Mexican mobile (with the `1`); the identity key drops it.
const WA_ID: &str = "5215512345678";
const OTHER_WA_ID: &str = "5491155554444";
const BSUID: &str = "MX.4815162342";

async fn open() -> (tempfile::TempDir, Db, SqliteErasure) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("e.db")).unwrap();
    let erasure = SqliteErasure::open(db.clone()).await.unwrap();
    (dir, db, erasure)
}

fn phone_key(wa_id: &str) -> IdentityKey {
    Phone::from_wa_id(wa_id).unwrap().identity_key()
}

async fn tables(db: &Db) -> BTreeSet<String> {
    db.read(|c| {
        let mut s = c
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .map_err(sql_err)?;
        let names = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
        names.collect::<Result<_, _>>().map_err(sql_err)
    })
    .await
    .unwrap()
}

/// Rows of `table` whose every column, as text, contains `needle`.
async fn rows_with(db: &Db, table: &str, needle: &str) -> usize {
    let (table, needle) = (table.to_string(), needle.to_string());
    db.read(move |c| {
        let mut s = c
            .prepare(&format!("SELECT * FROM {table}"))
            .map_err(sql_err)?;
        let n = s.column_count();
        let rows = s
            .query_map([], |r| {
                let mut text = String::new();
                for i in 0..n {
                    text.push_str(&format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
                }
                Ok(text)
            })
            .map_err(sql_err)?;
        let texts: Vec<String> = rows.collect::<Result<_, _>>().map_err(sql_err)?;
        Ok(texts.iter().filter(|t| t.contains(&needle)).count())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_table_of_the_file_says_how_an_erasure_reaches_it() {
    let (_dir, db, _erasure) = open().await;
    let listed: BTreeSet<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
    let found = tables(&db).await;
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "tables no erasure reaches (add them to TABLES): {missing:?}"
    );
    let gone: Vec<_> = listed.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "TABLES lists tables the file lacks: {gone:?}"
    );
}

/// One person's data in every store, and another's beside it.
async fn seed(db: &Db, contact: &str, wa_id: &str, bsuid: Option<&str>) {
    let ids = SqliteIdentityStore::new(db.clone());
    let mut keys = vec![phone_key(wa_id)];
    keys.extend(bsuid.map(|b| IdentityKey::Bsuid(b.into())));
    ids.resolve(&keys, contact).await.unwrap();
    let key = phone_key(wa_id).as_string();
    let consent = SqliteConsent::new(db.clone());
    consent
        .append(&ConsentEntry {
            id: format!("k-{contact}"),
            contact: key.clone(),
            to: format!("+{wa_id}"),
            category: ConsentCategory::Marketing,
            action: ConsentAction::OptIn,
            source: ConsentSource::WebForm,
            evidence: Some("formulario".into()),
            at: 1_000,
            recorded_at: 1_000,
            number: None,
        })
        .await
        .unwrap();
    SqliteSends::new(db.clone())
        .create(&SendRecord {
            id: format!("snd-{contact}"),
            idempotency_key: None,
            request_hash: "h".into(),
            request: json!({"contact": key, "type": "text", "body": "Hola"}),
            contact: key.clone(),
            state: SendState::Sent,
            error: None,
            wamid: None,
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    let (contact, wa_id) = (contact.to_string(), wa_id.to_string());
    db.write(move |t| {
        let body = json!({"v":1,"key":format!("m:wamid.{wa_id}"),"kind":"message","field":"messages",
            "waba_id":"1","item":{"from":wa_id,"id":"wamid.x","timestamp":"1","type":"text",
            "text":{"body":"quiero cancelar"}},"received_at":1})
        .to_string();
        enqueue_in(t, EVENTS_QUEUE, "m:x", &body, None, 1)?;
        t.execute_batch(&format!(
            "INSERT INTO last_inbound VALUES ('{key}', 1);
             INSERT INTO last_inbound_number VALUES ('{key}', '106540352242922', 1);
             INSERT INTO send_pair_windows VALUES ('{key}', '106540352242922', 's', 1);
             INSERT INTO consent_keys VALUES ('ck-{contact}', 'h', '{{}}', '{key}', 99999999999999);
             INSERT INTO attribution_contacts VALUES ('{contact}', 1, '{{}}');
             INSERT INTO conversations VALUES ('cnv-{contact}', '{contact}', 1, 1, NULL, '{{}}');
             INSERT INTO conversation_heads VALUES ('{contact}|pn', '{contact}', 'cnv-{contact}');
             INSERT INTO conversation_messages VALUES ('wamid.c-{contact}', 'cnv-{contact}', 1, 1);
             INSERT INTO dedupe_keys VALUES ('p:{wa_id}:marketing_messages:stop:1', 99999999999999);
             INSERT INTO effects VALUES ('p:{wa_id}:marketing_messages:stop:1:consent', 'done', 0, 1, 1);
             INSERT INTO queue_dead_letters VALUES ({n}, 'events', 'k', '{{\"note\":\"+{wa_id}\"}}', 'r', 1, 1, 1);",
            n = if contact == CONTACT { 1 } else { 2 }
        ))
        .map_err(sql_err)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_erasure_removes_the_person_everywhere_keeps_others_and_leaves_a_tombstone() {
    let (_dir, db, store) = open().await;
    seed(&db, CONTACT, WA_ID, Some(BSUID)).await;
    seed(&db, OTHER, OTHER_WA_ID, None).await;
    let service = ErasureService::new(Arc::new(store), Audit::none());

    // Typed as a person would, without Mexico's `1`: still the same person.
    let erased = service.erase("+52 55 1234 5678", "cli").await.unwrap();
    assert!(!erased.already_erased);
    assert_eq!(erased.contact_id.as_deref(), Some(CONTACT));
    for table in [
        "identities",
        "consent_history",
        "sends",
        "queue_messages",
        "dedupe_keys",
        "effects",
        "queue_dead_letters",
        "attribution_contacts",
        "last_inbound",
        "last_inbound_number",
        "send_pair_windows",
        "consent_keys",
        "conversations",
        "conversation_heads",
        "conversation_messages",
    ] {
        assert!(
            erased.removed.get(table).is_some_and(|n| *n > 0),
            "{table}: {:?}",
            erased.removed
        );
    }
    let key = phone_key(WA_ID).as_string();
    for needle in [CONTACT, WA_ID, key.as_str(), "525512345678", BSUID] {
        for table in tables(&db).await {
            if table == "erasures" || table == "queue_messages" {
                continue; // the marker's contact id; the erasure event for the CRM
            }
            assert_eq!(
                rows_with(&db, &table, needle).await,
                0,
                "{needle} left in {table}"
            );
        }
    }
    // The other person is untouched.
    assert_eq!(rows_with(&db, "identities", OTHER).await, 1);
    assert_eq!(rows_with(&db, "dedupe_keys", OTHER_WA_ID).await, 1);
    assert_eq!(rows_with(&db, "queue_dead_letters", OTHER_WA_ID).await, 1);
    assert_eq!(rows_with(&db, "sends", OTHER).await, 1);
    assert_eq!(rows_with(&db, "conversation_messages", OTHER).await, 1);
    // The only queued event left about them is the CRM's erasure event.
    let queued: Vec<String> = db
        .read(|c| {
            let mut s = c
                .prepare("SELECT msg_key FROM queue_messages WHERE instr(body, ?1) > 0")
                .map_err(sql_err)?;
            let r = s.query_map([CONTACT], |r| r.get(0)).map_err(sql_err)?;
            r.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(queued, vec![format!("x:{}", erased.erasure_id)]);

    // The tombstone: marketing is refused as an opt-out at the erasure; a stale opt-in loses.
    let consent = ConsentService::new(Arc::new(SqliteConsent::new(db.clone())));
    let who = ContactRef::from_wa_id(WA_ID).unwrap();
    assert_eq!(
        consent
            .state(&who, ConsentCategory::Marketing)
            .await
            .unwrap(),
        ConsentState::OptedOut
    );
    let history = consent.history(&who).await.unwrap();
    assert_eq!(history[0].source, ConsentSource::Erasure);
    let mut stale = history[0].clone();
    (stale.id, stale.action, stale.source, stale.at) = (
        "old".into(),
        ConsentAction::OptIn,
        ConsentSource::WebForm,
        5,
    );
    consent.record(&stale).await.unwrap();
    assert_eq!(
        consent
            .state(&who, ConsentCategory::Marketing)
            .await
            .unwrap(),
        ConsentState::OptedOut
    );
    let mut fresh = stale.clone();
    (fresh.id, fresh.at) = ("new".into(), erased.erased_at + 1);
    consent.record(&fresh).await.unwrap();
    assert_eq!(
        consent
            .state(&who, ConsentCategory::Marketing)
            .await
            .unwrap(),
        ConsentState::OptedIn
    );
    let other = ContactRef::from_wa_id(OTHER_WA_ID).unwrap();
    assert_eq!(
        consent
            .state(&other, ConsentCategory::Marketing)
            .await
            .unwrap(),
        ConsentState::OptedIn
    );

    // Idempotent: again by phone, by BSUID, by contact id: the same erasure, nothing removed.
    db.write(|t| {
        t.execute("DELETE FROM consent_history", [])
            .map_err(sql_err)
    })
    .await
    .unwrap();
    for again in ["5215512345678", BSUID, CONTACT] {
        let repeat = service.erase(again, "cli").await.unwrap();
        assert!(repeat.already_erased, "{again}");
        assert_eq!(repeat.erasure_id, erased.erasure_id);
        assert!(repeat.removed.is_empty());
    }
    // Never seen: 404; malformed: 400.
    assert!(matches!(
        service.erase("+55 11 98888 7777", "cli").await,
        Err(ErasureError::NotFound)
    ));
    assert!(matches!(
        service
            .erase("0193f0a2-0000-7000-8000-000000000000", "cli")
            .await,
        Err(ErasureError::NotFound)
    ));
    assert!(matches!(
        service.erase("robert'); drop table", "cli").await,
        Err(ErasureError::BadTarget(_))
    ));
}
