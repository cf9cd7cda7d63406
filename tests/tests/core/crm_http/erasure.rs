//! Erasure through crm-sync: HubSpot's GDPR delete, and events queued before an erasure that
//! must not bring the person back.

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::audit::Audit;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::erasure::ErasureService;
use wabridge_sqlite::SqliteErasure;

use super::*;

/// An erasure GDPR-deletes the contact of each of the person's identities (read by the id
/// property, then deleted by record id), with its communications; a contact HubSpot does not
/// have is done; a 429 on the read waits and retries.
#[tokio::test]
async fn an_erasure_gdpr_deletes_the_contact_and_its_communications() {
    let rig = rig("hubspot", Fake::default()).await;
    for (i, contacts) in [(1, 10), (2, 10)] {
        assert_eq!(
            rig.sync
                .handle(&delivery(&text_event(i, contacts), 1))
                .await,
            Outcome::Done
        );
    }
    assert!(rig
        .fake
        .contacts
        .lock()
        .unwrap()
        .contains_key("+525500000001"));
    assert_eq!(rig.fake.comms.lock().unwrap().len(), 2);
    let erasure = |id: &str, phones: Value| {
        json!({"v": 1, "key": format!("x:{id}"), "kind": "erasure", "field": "erasure",
            "waba_id": "", "received_at": 1,
            "item": {"v": 1, "erasure_id": id, "contact_id": "c-1", "phones": phones,
                "bsuids": ["MX.999"], "erased_at": 1}})
    };
    // A rate-limited read first: HubSpot's window is short, so the call waits it out and reads
    // again within the delivery.
    rig.fake.fail_once.lock().unwrap().insert(
        "/crm/v3/objects/contacts/%2B525500000001".into(),
        Fault::RateLimit,
    );
    let event = erasure("era_1", json!(["+525500000001"]));
    assert_eq!(rig.sync.handle(&delivery(&event, 1)).await, Outcome::Done);
    let reads = rig
        .fake
        .paths
        .lock()
        .unwrap()
        .iter()
        .filter(|p| *p == "/crm/v3/objects/contacts/%2B525500000001")
        .count();
    assert_eq!(reads, 2, "read, 429, read again");
    assert!(!rig
        .fake
        .contacts
        .lock()
        .unwrap()
        .contains_key("+525500000001"));
    assert!(rig
        .fake
        .contact_props
        .lock()
        .unwrap()
        .get("+525500000001")
        .is_none());
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(
        comms.len(),
        1,
        "the erased contact's communication went with it"
    );
    assert_eq!(comms[0]["properties"]["hs_communication_body"], "mensaje 2");
    let paths = rig.fake.paths.lock().unwrap().clone();
    assert!(paths
        .iter()
        .any(|p| p == "/crm/v3/objects/contacts/gdpr-delete"));
    // Nothing to find (already erased, or never in HubSpot): done, nothing else deleted.
    let again = erasure("era_2", json!(["+525500000001", "+525599999999"]));
    assert_eq!(rig.sync.handle(&delivery(&again, 1)).await, Outcome::Done);
    assert!(rig
        .fake
        .contacts
        .lock()
        .unwrap()
        .contains_key("+525500000002"));
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
}

/// An event received before the erasure (SQS cannot take it back) is skipped and leaves no
/// identity; one received after it is a person writing again, and goes through.
#[tokio::test]
async fn an_event_from_before_the_erasure_does_not_bring_the_person_back() {
    let rig = rig("hubspot", Fake::default()).await;
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(1, 10), 1)).await,
        Outcome::Done
    );
    let erasure = ErasureService::new(
        Arc::new(SqliteErasure::open(rig.db.clone()).await.unwrap()),
        Audit::none(),
    );
    let erased = erasure.erase("+52 55 0000 0001", "cli").await.unwrap();
    let identities = |db: &Db| {
        rusqlite::Connection::open(db.path())
            .unwrap()
            .query_row("SELECT count(*) FROM identities", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(identities(&rig.db), 0);
    let upserts = || batch_counts(&rig.fake, UPSERT).1;
    let before = upserts();

    let mut late = text_event(11, 10); // the same person, queued before the erasure
    late["key"] = json!("wamid.LATE");
    late["item"]["id"] = json!("wamid.LATE");
    late["received_at"] = json!(erased.erased_at - 1);
    assert_eq!(rig.sync.handle(&delivery(&late, 1)).await, Outcome::Done);
    assert_eq!(identities(&rig.db), 0, "no identity came back");
    assert_eq!(upserts(), before, "nothing reached the CRM");

    let mut again = late.clone(); // they write again after the erasure
    again["key"] = json!("wamid.NEW");
    again["item"]["id"] = json!("wamid.NEW");
    again["received_at"] = json!(erased.erased_at + 1);
    assert_eq!(rig.sync.handle(&delivery(&again, 1)).await, Outcome::Done);
    assert_eq!(identities(&rig.db), 1);
    assert!(upserts() > before);
}
