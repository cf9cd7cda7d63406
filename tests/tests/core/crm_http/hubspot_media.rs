//! Media in HubSpot, against the fake's documented file manager and notes: a stored photo is
//! uploaded (private, with the content retention as its ttl, into wabridge's folder) and
//! attached to a note on the contact, once however often the result is redelivered; a file that
//! could not be stored becomes a note saying why; the contact's GDPR delete takes the notes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::media::store::MediaStore;
use wabridge_core::media::Sha256Digest;
use wabridge_crm::hubspot::media::FOLDER;
use wabridge_sqlite::{Db, LocalMediaStore};

use super::fake::{serve, Fake};
use super::{crm_sync, delivery, hubspot_crm, message_from};

const PHONE: &str = "+525599990000";

fn photo() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect()
}

fn result(media_id: &str, item: Value) -> Value {
    let mut item = item;
    item["activity_event_id"] = json!("wamid.M1");
    item["message_id"] = json!("wamid.M1");
    item["contact"] = json!(format!("phone:{}", PHONE.trim_start_matches('+')));
    item["media_id"] = json!(media_id);
    item["at"] = json!(1763780100000i64);
    let state = item["state"].as_str().unwrap().to_string();
    json!({"v": 1, "key": format!("media:wamid.M1:{media_id}:{state}"), "kind": "media_result",
           "field": "media_result", "waba_id": "", "item": item, "received_at": 1763780100000i64})
}

#[tokio::test]
async fn hubspot_gets_the_file_uploaded_and_attached_to_a_note_once() {
    let fake = Arc::new(Fake::default());
    let addr = serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMediaStore::open(dir.path()).unwrap();
    let sha = Sha256Digest::of(&photo());
    let mut pending = store.begin().await.unwrap();
    pending.write(&photo()).await.unwrap();
    pending.commit(&sha.object_key()).await.unwrap();
    let retention = Duration::from_secs(90 * 86_400);
    let hubspot = Arc::new(
        Arc::try_unwrap(hubspot_crm(addr))
            .ok()
            .unwrap()
            .with_media(Arc::new(store), retention),
    );
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let sync = crm_sync(
        "hubspot",
        &db,
        hubspot.clone(),
        Duration::from_secs(3),
        false,
    )
    .await;

    let message = message_from(
        "wamid.M1",
        "5215599990000",
        json!({"type": "image", "image": {"id": "m1", "mime_type": "image/jpeg", "caption": "Llegó roto"}}),
    );
    assert_eq!(sync.handle(&delivery(&message, 1)).await, Outcome::Done);
    let stored = result(
        "m1",
        json!({"kind": "image", "state": "stored", "stored": {"size": photo().len(),
               "sha256": sha.hex(), "mime_type": "image/jpeg", "filename": "foto.jpg"}}),
    );
    assert_eq!(sync.handle(&delivery(&stored, 1)).await, Outcome::Done);

    let files = fake.files.lock().unwrap().clone();
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert_eq!(file.bytes, photo(), "the file byte for byte");
    assert_eq!(file.mime, "image/jpeg");
    assert_eq!(file.folder, FOLDER);
    assert_eq!(file.name, format!("{}.jpg", sha.hex()));
    assert_eq!(file.options["access"], "PRIVATE");
    assert_eq!(file.options["ttl"], "P90D");
    let notes = fake.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1);
    let hs_contact = fake.contacts.lock().unwrap()[PHONE].clone();
    assert_eq!(notes[0]["associations"][0]["to"]["id"], hs_contact.as_str());
    let props = &notes[0]["properties"];
    assert_eq!(props["hs_attachment_ids"], file.id.as_str());
    assert_eq!(props["hs_timestamp"], "1763780100000");
    assert_eq!(
        props["wabridge_effect_id"],
        "media:wamid.M1:m1:stored#media"
    );
    assert!(props["hs_note_body"].as_str().unwrap().contains("foto.jpg"));

    // Redelivered: nothing uploaded or noted again.
    assert_eq!(sync.handle(&delivery(&stored, 2)).await, Outcome::Done);
    assert_eq!(fake.files.lock().unwrap().len(), 1);
    assert_eq!(fake.notes.lock().unwrap().len(), 1);

    // Refused by WhatsApp's limits: a note that says so, nothing attached.
    let refused = result(
        "m2",
        json!({"kind": "document", "state": "refused", "error": {"code": "media_type_not_allowed",
               "message": "application/x-msdownload is not a type WhatsApp accepts for document"}}),
    );
    assert_eq!(sync.handle(&delivery(&refused, 1)).await, Outcome::Done);
    let notes = fake.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 2);
    assert!(notes[1]["properties"].get("hs_attachment_ids").is_none());
    let body = notes[1]["properties"]["hs_note_body"].as_str().unwrap();
    assert!(body.contains("media_type_not_allowed"), "{body}");

    // A file erased or purged before its record reached HubSpot: skipped, counted.
    let gone = result(
        "m3",
        json!({"kind": "image", "state": "stored", "stored": {"size": 3,
               "sha256": Sha256Digest::of(b"gone").hex(), "mime_type": "image/jpeg"}}),
    );
    assert_eq!(sync.handle(&delivery(&gone, 1)).await, Outcome::Done);
    assert_eq!(fake.notes.lock().unwrap().len(), 2);
    assert_eq!(hubspot.stats().skipped.get("media"), Some(&1));
    assert!(
        fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        fake.problems.lock().unwrap()
    );
}
