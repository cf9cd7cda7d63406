//! HubSpot's conversation tickets, beyond the conversation case: how few round trips an
//! opening takes, and that the create-first path never lets an older revision win.

use std::time::Duration;

use serde_json::json;
use wabridge_core::conversations::update::Change;
use wabridge_core::crm::Effect;
use wabridge_core::records::{ContactRecord, Record};

use super::conversations::{conversation_event, deliver, on_number, sync_with};
use super::hubspot::HubSpot;
use super::{text, Harness, Subject};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::sync::CrmSync;

const CREATE: &str = "/crm/v3/objects/tickets/batch/create";
const READ: &str = "/crm/v3/objects/tickets/batch/read";
const UPSERT: &str = "/crm/v3/objects/tickets/batch/upsert";
const TO_CONTACT: &str = "/crm/v4/associations/tickets/contacts/batch/associate/default";
const COMM_TO_TICKET: &str = "/crm/v4/associations/communications/tickets/batch/associate/default";
const CONTACTS: &str = "/crm/v3/objects/contacts/batch/upsert";

fn count(paths: &[String], path: &str) -> usize {
    paths.iter().filter(|p| *p == path).count()
}

/// Delivers a conversation's opening message; checks it took one ticket create (no read, no
/// upsert), one contact upsert, a ticket tied to its contact once, and a Communication that
/// carries the ticket inline. Returns the conversation id, the ticket id and the calls made.
async fn opening(
    h: &Harness<HubSpot>,
    sync: &CrmSync,
    wa_id: &str,
) -> (String, String, Vec<String>) {
    let fake = &h.subject.fake;
    let (before, tickets_before) = (
        fake.paths.lock().unwrap().len(),
        fake.tickets.lock().unwrap().clone(),
    );
    let key = format!("wamid.open.{wa_id}");
    deliver(sync, &on_number(text(&key, wa_id, "Hola")), 1).await;
    let paths = fake.paths.lock().unwrap()[before..].to_vec();
    assert_eq!(count(&paths, CREATE), 1, "{paths:?}");
    assert_eq!(count(&paths, CONTACTS), 1, "{paths:?}");
    for path in [READ, UPSERT, COMM_TO_TICKET] {
        assert_eq!(count(&paths, path), 0, "{path}: {paths:?}");
    }
    let (id, ticket) = {
        let tickets = fake.tickets.lock().unwrap();
        let (id, t) = tickets
            .iter()
            .find(|(id, _)| !tickets_before.contains_key(*id))
            .unwrap();
        (id.clone(), t["id"].as_str().unwrap().to_string())
    };
    let comms = fake.comms.lock().unwrap().clone();
    let comm = comms.last().unwrap();
    assert_eq!(
        comm["associations"][1]["to"]["id"],
        ticket.as_str(),
        "the opening's Communication carries its ticket: {comm}"
    );
    let contact = comm["associations"][0]["to"]["id"].as_str().unwrap();
    let links = fake.ticket_links.lock().unwrap().clone();
    let tied = (
        "tickets/contacts".to_string(),
        ticket.clone(),
        contact.to_string(),
    );
    assert_eq!(
        links.iter().filter(|l| **l == tied).count(),
        1,
        "the ticket is tied to its contact once: {links:?}"
    );
    (id, ticket, paths)
}

/// An opening's ticket is created beside its contact's upsert ([`opening`]). A new contact's
/// HubSpot id is not known yet when the process knows everything else (the association types,
/// read by its first ticket), so the ticket is tied to it by one association call once the
/// contact's upsert answers; the contact's next conversation, its id known, is created with
/// the contact association inline. Then the opening revision reaches a new process after a
/// newer one was written (a retry after an outage, on another instance): HubSpot refuses the
/// create (the ticket exists), the adapter reads the ticket, and the older revision overwrites
/// nothing.
#[tokio::test]
async fn an_opening_is_one_create_and_a_late_opening_never_overwrites_a_newer_ticket() {
    // Answers take 150 ms, so the ticket's write is under way when the Communication goes.
    let h = Harness::<HubSpot>::with(Duration::from_secs(3), Duration::from_millis(150)).await;
    let fake = h.subject.fake.clone();
    let (sync, conversations) = sync_with(&h.db, h.subject.crm(), h.subject.mapping());
    let (id, ticket, _) = opening(&h, &sync, "5215512345678").await;
    // Another new contact, the types known: the create does not wait for the contact.
    let (_, _, paths) = opening(&h, &sync, "5215587654321").await;
    assert_eq!(
        count(&paths, TO_CONTACT),
        1,
        "tied after the create: {paths:?}"
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

    let late = {
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
    // Mexico's mobile numbers lose the 1 after the country code in E.164.
    let key = "+525512345678".to_string();
    assert!(fake.contacts.lock().unwrap().contains_key(&key));
    let mut fields = serde_json::Map::new();
    fields.insert("whatsapp_id".into(), key.clone().into());
    let effect = Effect {
        id: "late-opening#conversation".into(),
        record: Record::Conversation(late.clone()),
        fields: serde_json::Map::new(),
        contact: Some((
            Record::Contact(ContactRecord {
                id: late.contact_id.clone(),
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
    assert_eq!(held.len(), 2, "{held:?}");
    let held = held.iter().find(|c| c.id == id).unwrap();
    assert_eq!(held.revision, newer.record.revision);
    assert_eq!(held.outcome.as_deref(), Some("converted"));
    assert_eq!(held.activities, 2, "{held:?}");

    // A day later the thread is idle: a new conversation, whose ticket is created with the
    // (known) contact inline.
    let mut later = on_number(text("wamid.o3", "5215512345678", "Hola otra vez"));
    later["item"]["timestamp"] = json!((1_763_780_000 + 25 * 3600).to_string());
    let before = fake.paths.lock().unwrap().len();
    deliver(&sync, &later, 1).await;
    let paths = fake.paths.lock().unwrap()[before..].to_vec();
    assert_eq!(count(&paths, CREATE), 1, "{paths:?}");
    assert_eq!(count(&paths, TO_CONTACT), 0, "inline, no call: {paths:?}");
    assert_eq!(fake.tickets.lock().unwrap().len(), 3);
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
