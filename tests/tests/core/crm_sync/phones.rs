//! Phone spellings: Mexican, Argentine and Brazilian variants of one number, redelivered or
//! arriving at once, resolve to one contact per person.

use std::sync::Arc;

use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::identity::{IdentityStore, Phone};

use super::*;

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
