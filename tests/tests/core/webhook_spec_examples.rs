//! Every example webhook payload in Meta's OpenAPI spec (`/whatsapp/webhooks` POST) splits into
//! events of the expected kinds and parses with the typed model.
//!
//! The spec is found through `WHATSAPP_OPENAPI_SPEC` (set by the test command), falling back to
//! the copy vendored in `tests/specs/`. A missing spec fails the test: it never skips.

use std::path::PathBuf;

use wabridge_core::event::EventKind;
use wabridge_core::webhook::model::{
    self, Envelope, Item, MessageContent, MessageType, MessagesValue, SystemType,
};
use wabridge_core::webhook::split;

fn spec_path() -> PathBuf {
    match std::env::var_os("WHATSAPP_OPENAPI_SPEC") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("specs/whatsapp-business-messaging-api_v23.0.yaml"),
    }
}

/// (name, JSON bytes) of every example, in spec order.
fn examples() -> Vec<(String, Vec<u8>)> {
    let path = spec_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the WhatsApp OpenAPI spec at {} ({e}); set WHATSAPP_OPENAPI_SPEC",
            path.display()
        )
    });
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("spec is YAML");
    let examples = &spec["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]["content"]
        ["application/json"]["examples"];
    let map = examples
        .as_mapping()
        .expect("webhook examples are a mapping");
    map.iter()
        .map(|(name, example)| {
            let name = name.as_str().expect("example name").to_string();
            let value: serde_json::Value =
                serde_json::to_value(&example["value"]).expect("example converts to JSON");
            assert!(value.is_object(), "{name}: example has a value");
            (name, serde_json::to_vec(&value).unwrap())
        })
        .collect()
}

fn expected_kinds(name: &str) -> Vec<EventKind> {
    use EventKind::*;
    match name {
        "Group Create Message" | "Group Settings Update" | "Group Remove Participants" => {
            vec![Unknown]
        }
        _ => vec![Message],
    }
}

#[test]
fn all_sixteen_examples_split_into_the_expected_kinds() {
    let examples = examples();
    assert_eq!(examples.len(), 16, "the spec carries 16 webhook examples");
    for (name, body) in &examples {
        let events = split(body, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, expected_kinds(name), "{name}");
        for e in &events {
            assert!(!e.key.is_empty(), "{name}: key");
            assert!(!e.waba_id.is_empty(), "{name}: waba id");
            // The raw item is valid JSON and is part of the body as sent.
            let item: serde_json::Value = serde_json::from_str(e.item.get()).unwrap();
            assert!(item.is_object(), "{name}: item");
            // The event survives the queue round trip.
            let back = wabridge_core::event::Event::from_json(&e.to_json()).unwrap();
            assert_eq!(back.key, e.key);
            assert_eq!(back.item.get(), e.item.get());
        }
        // Messages carry their sender, except system messages (which have no contacts).
        for e in events.iter().filter(|e| e.kind == EventKind::Message) {
            let typed = match model::parse_item(e).unwrap() {
                Item::Message(m) => m,
                other => panic!("{name}: {other:?}"),
            };
            assert!(typed.id.is_some(), "{name}: message id");
            if typed.kind() != MessageType::System {
                let contact = model::parse_contact(e)
                    .unwrap_or_else(|| panic!("{name}: contact attached"))
                    .unwrap();
                assert_eq!(contact.wa_id, typed.from, "{name}: contact matches sender");
            }
            assert_eq!(e.key, format!("m:{}", typed.id.as_deref().unwrap()));
        }
    }
}

#[test]
fn all_examples_parse_with_the_typed_model() {
    let examples = examples();
    assert_eq!(examples.len(), 16);
    let mut seen_types = Vec::new();
    for (name, body) in &examples {
        let envelope: Envelope =
            serde_json::from_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(envelope.object, "whatsapp_business_account");
        for entry in &envelope.entry {
            for change in &entry.changes {
                if change.field != "messages" {
                    continue;
                }
                let value: MessagesValue = serde_json::from_str(change.value.get())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(value.metadata.as_ref().unwrap().phone_number_id.is_some());
                for m in &value.messages {
                    seen_types.push(m.kind());
                    check_message(name, m);
                }
            }
        }
    }
    use MessageType::*;
    for t in [
        Text,
        Reaction,
        Image,
        Location,
        Contacts,
        Unsupported,
        Button,
        Interactive,
        Order,
        System,
    ] {
        assert!(seen_types.contains(&t), "no example of {t:?}");
    }
}

fn check_message(name: &str, m: &model::Message) {
    match name {
        "Location Message" => {
            // (The v23.0 spec's example does carry `type`; the no-`type` form Meta's docs show is
            // covered by events/webhooks/location_without_type_es_ar.json.)
            assert_eq!(m.kind(), MessageType::Location);
            let MessageContent::Location(l) = m.content() else {
                panic!("{name}")
            };
            assert!(l.latitude.is_some() && l.longitude.is_some());
        }
        "Text Message from Click to WhatsApp Ad" => {
            let r = m.referral.as_ref().expect("referral");
            assert!(r.ctwa_clid.as_deref().is_some_and(|c| !c.is_empty()));
            assert_eq!(r.source_type.as_deref(), Some("ad"));
        }
        "Text Message with Context (Product Inquiry)" => {
            let c = m.context.as_ref().expect("context");
            assert!(c.referred_product.is_some());
        }
        "System Message" => {
            let MessageContent::System(s) = m.content() else {
                panic!("{name}")
            };
            assert_eq!(s.system_type, Some(SystemType::UserChangedNumber));
            assert!(s.wa_id.is_some());
        }
        "Order Message" => {
            let MessageContent::Order(o) = m.content() else {
                panic!("{name}")
            };
            assert_eq!(o.product_items.len(), 2);
            assert_eq!(o.product_items[0].quantity, Some(2));
        }
        "Unsupported Message" => {
            assert_eq!(m.kind(), MessageType::Unsupported);
            assert_eq!(m.errors[0].code, Some(131051));
        }
        "Interactive List Reply Message" => {
            let MessageContent::Interactive(i) = m.content() else {
                panic!("{name}")
            };
            assert!(i.list_reply.as_ref().unwrap().id.is_some());
        }
        "Interactive Button Reply Message" => {
            let MessageContent::Interactive(i) = m.content() else {
                panic!("{name}")
            };
            assert!(i.button_reply.as_ref().unwrap().id.is_some());
        }
        "Reaction Message" => {
            let MessageContent::Reaction(r) = m.content() else {
                panic!("{name}")
            };
            assert!(!r.is_removal());
        }
        _ => assert!(
            !matches!(m.content(), MessageContent::Unknown),
            "{name}: content of a known type is readable"
        ),
    }
}

#[test]
fn group_examples_keep_numeric_wa_ids_raw() {
    let examples = examples();
    let (_, body) = examples
        .iter()
        .find(|(n, _)| n == "Group Create Message")
        .expect("group example");
    let events = split(body, 1).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].field, "group_lifecycle_update");
    // The whole value, numeric wa_ids and all, as received.
    assert!(events[0].item.get().contains("\"wa_id\":16505551234"));
}
