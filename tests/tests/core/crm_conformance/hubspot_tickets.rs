//! HubSpot's conversation tickets, beyond the conversation case: how few round trips an
//! opening takes, and that the create-first path never lets an older revision win.

use wabridge_core::conversations::update::Change;
use wabridge_core::crm::Effect;
use wabridge_core::records::{ContactRecord, Record};

use super::conversations::{conversation_event, deliver, on_number, sync_with};
use super::hubspot::HubSpot;
use super::{text, Harness, Subject};
use crate::crm_http::fake_hubspot_tickets::TICKET_TO_CONTACT;
use wabridge_core::consumer::{Handler, Outcome};

const CREATE: &str = "/crm/v3/objects/tickets/batch/create";
const READ: &str = "/crm/v3/objects/tickets/batch/read";
const UPSERT: &str = "/crm/v3/objects/tickets/batch/upsert";
const TO_CONTACT: &str = "/crm/v4/associations/tickets/contacts/batch/associate/default";

fn count(paths: &[String], path: &str) -> usize {
    paths.iter().filter(|p| *p == path).count()
}

/// The opening revision is created with its contact association inline (no read, no upsert,
/// no association call); the next message's Communication is tied to the ticket inline too.
/// Then the opening revision reaches a new process after a newer one was written (a retry
/// after an outage, on another instance): HubSpot refuses the create (the ticket exists), the
/// adapter reads the ticket, and the older revision overwrites nothing.
#[tokio::test]
async fn an_opening_is_one_create_and_a_late_opening_never_overwrites_a_newer_ticket() {
    let h = Harness::<HubSpot>::start().await;
    let fake = h.subject.fake.clone();
    let (sync, conversations) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    deliver(
        &sync,
        &on_number(text("wamid.o1", "5215512345678", "Hola")),
        1,
    )
    .await;
    let paths = fake.paths.lock().unwrap().clone();
    assert_eq!(count(&paths, CREATE), 1, "{paths:?}");
    for path in [READ, UPSERT, TO_CONTACT] {
        assert_eq!(count(&paths, path), 0, "{path}: {paths:?}");
    }
    let (id, ticket) = {
        let tickets = fake.tickets.lock().unwrap();
        assert_eq!(tickets.len(), 1);
        let (id, t) = tickets.iter().next().unwrap();
        (id.clone(), t["id"].as_str().unwrap().to_string())
    };
    let contact = fake.contacts.lock().unwrap().values().next().cloned();
    let links = fake.ticket_links.lock().unwrap().clone();
    assert!(
        links.contains(&("tickets/contacts".into(), ticket.clone(), contact.unwrap())),
        "the contact association was written with the ticket (type {TICKET_TO_CONTACT}): {links:?}"
    );

    // The second message: its Communication carries the ticket association.
    deliver(
        &sync,
        &on_number(text("wamid.o2", "5215512345678", "¿Hay envíos?")),
        1,
    )
    .await;
    let comms = fake.comms.lock().unwrap().clone();
    let last = comms.last().unwrap();
    assert_eq!(
        last["associations"][1]["to"]["id"],
        ticket.as_str(),
        "{last}"
    );

    let opening = {
        let mut record = conversations
            .store()
            .get(&id)
            .await
            .unwrap()
            .unwrap()
            .record;
        record.revision = 1;
        record.outcome = Some("lost".into());
        record
    };
    let change = Change {
        outcome: Some("converted".into()),
        ..Default::default()
    };
    let (newer, _) = conversations
        .update(&id, &change, 1_763_790_000_000)
        .await
        .unwrap()
        .unwrap();
    deliver(&sync, &conversation_event(&newer.record), 1).await;

    // The opening revision's effect (it names its contact, as a message's event does) applied
    // by a new process.
    let key = fake
        .contacts
        .lock()
        .unwrap()
        .keys()
        .next()
        .cloned()
        .unwrap();
    let mut fields = serde_json::Map::new();
    fields.insert("whatsapp_id".into(), key.clone().into());
    let effect = Effect {
        id: "late-opening#conversation".into(),
        record: Record::Conversation(opening.clone()),
        fields: serde_json::Map::new(),
        contact: Some((
            Record::Contact(ContactRecord {
                id: opening.contact_id.clone(),
                phone_e164: Some(key),
                ..Default::default()
            }),
            fields,
        )),
        in_doubt: false,
    };
    let before = fake.paths.lock().unwrap().len();
    h.subject.crm().apply(&effect).await.unwrap();
    let paths = fake.paths.lock().unwrap()[before..].to_vec();
    assert_eq!(count(&paths, CREATE), 1, "tried to create: {paths:?}");
    assert_eq!(count(&paths, READ), 1, "then read what exists: {paths:?}");
    assert_eq!(
        count(&paths, UPSERT),
        0,
        "and wrote nothing older: {paths:?}"
    );

    let held = h.subject.conversations().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].revision, newer.record.revision);
    assert_eq!(held[0].outcome.as_deref(), Some("converted"));
    assert_eq!(held[0].activities, 2, "{held:?}");
}

/// A call in a conversation's thread: its Call engagement is on the contact and on the
/// conversation's ticket, also when the process learns the ticket only by reading it.
#[tokio::test]
async fn a_call_is_on_its_conversations_ticket() {
    let h = Harness::<HubSpot>::start().await;
    let fake = h.subject.fake.clone();
    let (sync, _) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    // Ten minutes before the call: the call happens in this conversation.
    let mut first = on_number(text("wamid.k1", "5215512345678", "¿Me llaman?"));
    first["item"]["timestamp"] = "1763700000".into();
    deliver(&sync, &first, 1).await;
    let ticket = {
        let tickets = fake.tickets.lock().unwrap();
        assert_eq!(tickets.len(), 1);
        tickets.values().next().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // A new process: the ticket is not known there until it is read.
    let (fresh, _) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/webhooks/call_user_connect_terminate_es_mx.json");
    let events =
        wabridge_core::webhook::split(&std::fs::read(path).unwrap(), 1_763_700_000_000).unwrap();
    for event in &events {
        let event: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        let outcome = fresh.handle(&super::delivery(&event, 1)).await;
        let problems = fake.problems.lock().unwrap().clone();
        assert_eq!(outcome, Outcome::Done, "{}: {problems:?}", event["key"]);
    }
    let calls = fake.call_engagements.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let contact = fake
        .contacts
        .lock()
        .unwrap()
        .values()
        .next()
        .cloned()
        .unwrap();
    assert_eq!(calls[0]["associations"][0]["to"]["id"], contact.as_str());
    let call = calls[0]["id"].as_str().unwrap().to_string();
    let links = fake.ticket_links.lock().unwrap().clone();
    assert!(
        links.contains(&("calls/tickets".into(), call, ticket)),
        "{links:?} {calls:?}"
    );
}
