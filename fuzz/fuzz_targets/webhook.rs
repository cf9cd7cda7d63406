//! The webhook splitter and model: any body either splits into events or is refused with a
//! reason, and every event it yields survives the queue (JSON round trip) and the typed model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wabridge_core::event::{Event, EventKind};
use wabridge_core::webhook::model::{parse_contact, parse_item, Item};
use wabridge_core::webhook::split;
use wabridge_core::webhook::split::MAX_KEY_LEN;

const RECEIVED_AT: i64 = 1_767_225_600_000;

fuzz_target!(|body: &[u8]| {
    let events = match split(body, RECEIVED_AT) {
        Ok(events) => events,
        Err(e) => {
            // Refusals are answered as a 400 with a code and a message.
            assert!(!e.code().is_empty());
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    // Meta's retries resend the same bytes: the keys must come out the same.
    let again = split(body, RECEIVED_AT).expect("a body that split once splits again");
    assert_eq!(
        events.iter().map(|e| &e.key).collect::<Vec<_>>(),
        again.iter().map(|e| &e.key).collect::<Vec<_>>()
    );
    for event in &events {
        check_event(event);
    }
});

fn check_event(event: &Event) {
    assert_eq!(event.received_at, RECEIVED_AT);
    assert_ne!(
        event.kind,
        EventKind::SendResult,
        "only the sender makes send results"
    );
    // Every store takes the key (DynamoDB: 2 KB); long keys are hashed to `x:…`.
    assert!(
        !event.key.is_empty() && event.key.len() <= MAX_KEY_LEN,
        "key {:?}",
        event.key
    );
    // The queue message body reads back as the same event.
    let body = event.to_json();
    let back = Event::from_json(&body).expect("event JSON reads back");
    assert_eq!(back.key, event.key);
    assert_eq!(back.kind, event.kind);
    assert_eq!(back.field, event.field);
    assert_eq!(back.waba_id, event.waba_id);
    assert_eq!(back.entry_time, event.entry_time);
    assert_eq!(back.phone_number_id, event.phone_number_id);
    assert_eq!(back.display_phone_number, event.display_phone_number);
    assert_eq!(
        back.item.get(),
        event.item.get(),
        "raw item kept byte for byte"
    );
    assert_eq!(
        back.contact.as_ref().map(|c| c.get()),
        event.contact.as_ref().map(|c| c.get())
    );
    assert_eq!(back.to_json(), body);

    // The typed model may refuse an item (crm-sync dead-letters it with the reason), never panic.
    if let Ok(item) = parse_item(event) {
        match item {
            Item::Message(m) | Item::Echo(m) => {
                let _ = m.kind();
                let _ = m.content();
            }
            Item::Call(c) => {
                let _ = c.is_status();
            }
            Item::Status(s) => {
                if let Some(kind) = s.status {
                    let _ = kind.rank();
                    let _ = kind.advances(None);
                    let _ = kind.is_terminal();
                }
            }
            Item::TemplateStatus(t) => {
                let _ = t.event_kind();
            }
            Item::QualityUpdate(_)
            | Item::UserPreference(_)
            | Item::AccountUpdate(_)
            | Item::Unknown => {}
            Item::SendResult(_) => panic!("a webhook yielded a send result"),
            Item::Consent(_) => panic!("a webhook yielded an API consent"),
            Item::Erasure(_) => panic!("a webhook yielded an erasure"),
            Item::MediaResult(_) => panic!("a webhook yielded a media result"),
            Item::Conversation(_) => panic!("a webhook yielded a conversation change"),
            Item::Sweep(_) => panic!("a webhook yielded a sweep finding"),
        }
    }
    if let Some(Ok(contact)) = parse_contact(event) {
        let _ = format!("{contact:?}");
    }
}
