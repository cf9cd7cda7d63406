//! Plans read the webhook model's types: one decoder, one reading of timestamps and codes.

use serde_json::{json, Value};

use super::*;
use crate::event::{EventKind, EVENT_VERSION};
use crate::identity::IdentityKey;
use crate::records::ActivityRecord;

fn event(kind: EventKind, item: Value, contact: Option<Value>) -> Event {
    let raw = |v: &Value| serde_json::value::to_raw_value(v).unwrap();
    Event {
        v: EVENT_VERSION,
        key: "k".into(),
        kind,
        field: "messages".into(),
        waba_id: "1".into(),
        entry_time: None,
        phone_number_id: None,
        display_phone_number: None,
        contact: contact.as_ref().map(raw),
        item: raw(&item),
        received_at: 7_000,
    }
}

fn plan_of(kind: EventKind, item: Value) -> Result<Plan, PlanError> {
    plan(&event(kind, item, None), &ConsentKeywords::default())
}

fn activity(p: &Plan) -> &ActivityRecord {
    match &p.records[0].1 {
        Record::Activity(a) => a,
        other => panic!("not an activity: {other:?}"),
    }
}

#[test]
fn timestamps_and_error_codes_read_the_same_as_strings_or_numbers() {
    for (timestamp, code) in [
        (json!("1767000000"), json!(131050)),
        (json!(1767000000), json!("131050")),
    ] {
        let p = plan_of(
            EventKind::Status,
            json!({"id": "wamid.1", "status": "failed", "timestamp": timestamp,
                   "recipient_id": "5215512345678", "errors": [{"code": code, "title": "t"}]}),
        )
        .unwrap();
        let a = activity(&p);
        assert_eq!(a.at, Some(1_767_000_000_000));
        assert_eq!(a.errors[0].code, Some(131050));
        assert_eq!(p.status, Some(("wamid.1".to_string(), StatusKind::Failed)));
        // Not ours by callback data: the opt-out is the CRM's to see here.
        assert!(matches!(&p.records[1].1, Record::Consent(c) if c.at == Some(1_767_000_000_000)));
        assert!(
            matches!(p.item, Item::Status(_)),
            "the hooks get the typed item"
        );
    }
}

#[test]
fn a_status_meta_adds_later_keeps_its_name_and_ranks_below_every_known_one() {
    let p = plan_of(
        EventKind::Status,
        json!({"id": "wamid.1", "status": "deleted", "recipient_id": "5215512345678"}),
    )
    .unwrap();
    assert_eq!(activity(&p).status.as_deref(), Some("deleted"));
    assert_eq!(p.status.unwrap().1.rank(), 0);
}

#[test]
fn an_item_that_does_not_match_the_model_is_refused_naming_its_kind() {
    let e = plan_of(
        EventKind::Message,
        json!({"id": "w", "from": "5215512345678", "type": "text", "text": 5}),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::Malformed {
                kind: "message",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("the message item does not match Meta's model"),
        "{e}"
    );
    let e = plan_of(EventKind::Status, json!({"id": "w", "status": "read"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "status without recipient_id nor recipient_user_id"
    );
}

fn keys(p: &Plan) -> Vec<String> {
    p.identity
        .keys()
        .iter()
        .map(IdentityKey::as_string)
        .collect()
}

#[test]
fn a_preference_value_meta_adds_is_kept_raw_on_the_persons_contact() {
    let p = plan_of(
        EventKind::UserPreference,
        json!({"wa_id": "5215512345678", "category": "marketing_messages", "value": "signup",
               "signup_id": "271", "timestamp": 1763700310}),
    )
    .unwrap();
    assert_eq!(keys(&p), ["phone:525512345678"]);
    assert!(!p.upsert_contact, "written only when the contact is new");
    let [(name, Record::Unknown(u))] = &p.records[..] else {
        panic!("{:?}", p.records)
    };
    assert_eq!(*name, "unknown");
    assert_eq!(u.field, "messages", "the event's field");
    assert_eq!(u.raw["value"], "signup");
    assert_eq!(u.raw["signup_id"], "271");
    // No consent change is read into a value we do not know.
    assert!(matches!(p.item, Item::UserPreference(_)));
    let mut record = p.records[0].1.clone();
    set_contact(&mut record, "c1");
    assert_eq!(record.contact_id(), Some("c1"));
}

#[test]
fn a_group_status_belongs_to_the_group_not_to_a_phone() {
    let p = plan_of(
        EventKind::Status,
        json!({"id": "wamid.G", "status": "read", "timestamp": "5",
               "recipient_id": "120363045678901234", "recipient_type": "group",
               "recipient_participant_id": "5213312345678"}),
    )
    .unwrap();
    assert_eq!(p.identity, IdentityOp::None);
    assert!(p.contact.is_none());
    let a = activity(&p);
    assert_eq!(a.group_id.as_deref(), Some("120363045678901234"));
    assert_eq!(a.contact_id, "");
    assert_eq!(p.status, Some(("wamid.G".to_string(), StatusKind::Read)));
    // A 131050 failure of a group message is no one person's opt-out.
    let p = plan_of(
        EventKind::Status,
        json!({"id": "wamid.G", "status": "failed", "recipient_id": "120363045678901234",
               "recipient_type": "group", "errors": [{"code": 131050}]}),
    )
    .unwrap();
    assert_eq!(p.records.len(), 1);
    let e = plan_of(
        EventKind::Status,
        json!({"id": "wamid.G", "status": "read", "recipient_type": "group"}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "group status without recipient_id");
}

#[test]
fn a_sender_is_found_wherever_it_is_named() {
    let bsuid = "CO.58120394857710293847";
    // A BSUID in `from` (and the contact's `wa_id`), told apart from a phone by its form.
    let ev = event(
        EventKind::Message,
        json!({"id": "w", "from": bsuid, "type": "text", "text": {"body": "hola"}}),
        Some(json!({"wa_id": bsuid, "profile": {"username": "camila"}})),
    );
    let p = plan(&ev, &ConsentKeywords::default()).unwrap();
    assert_eq!(keys(&p), [format!("bsuid:{bsuid}")]);
    let c = p.contact.unwrap();
    assert_eq!((c.bsuid.as_deref(), c.phone_e164), (Some(bsuid), None));
    assert_eq!(c.phone_verified, None);
    // Only in the contact's `user_id`, the message naming no sender.
    let ev = event(
        EventKind::Message,
        json!({"id": "w", "type": "text", "text": {"body": "hola"}}),
        Some(json!({"user_id": "CL.77301928374655019283"})),
    );
    let p = plan(&ev, &ConsentKeywords::default()).unwrap();
    assert_eq!(keys(&p), ["bsuid:CL.77301928374655019283"]);
    // A phone in `from`, the BSUID in `from_user_id`: both keys, phone first.
    let p = plan_of(
        EventKind::Message,
        json!({"id": "w", "from": "5215512345678", "from_user_id": bsuid, "type": "text",
               "text": {"body": "hola"}}),
    )
    .unwrap();
    assert_eq!(
        keys(&p),
        ["phone:525512345678".to_string(), format!("bsuid:{bsuid}")]
    );
    // A malformed BSUID is still refused, naming it.
    let e = plan_of(
        EventKind::Message,
        json!({"id": "w", "from": "CO.12-3", "type": "text", "text": {"body": "x"}}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "identity: not a BSUID (expected CC.<1-128 alphanumerics>): CO.12-3"
    );
    // Nobody at all.
    let e = plan_of(
        EventKind::Message,
        json!({"id": "w", "type": "text", "text": {"body": "x"}}),
    )
    .unwrap_err();
    assert!(matches!(e, PlanError::Missing(_)), "{e}");
}

#[test]
fn a_wa_id_the_phone_metadata_does_not_know_is_kept_unverified() {
    // +52 822 123 4567: a Mexican length, in a range metadata 9.0.33 does not know.
    let p = plan_of(
        EventKind::Message,
        json!({"id": "w", "from": "5218221234567", "type": "text", "text": {"body": "hola"}}),
    )
    .unwrap();
    let c = p.contact.as_ref().unwrap();
    assert_eq!(c.phone_e164.as_deref(), Some("+528221234567"));
    assert_eq!(c.wa_id.as_deref(), Some("5218221234567"));
    assert_eq!(c.phone_verified, Some(false));
    assert_eq!(activity(&p).kind, "text");
    let p = plan_of(
        EventKind::Message,
        json!({"id": "w", "from": "5215512345678", "type": "text", "text": {"body": "hola"}}),
    )
    .unwrap();
    assert_eq!(p.contact.unwrap().phone_verified, Some(true));
}

#[test]
fn a_message_reads_its_sender_from_the_contact_when_the_item_has_none() {
    let ev = event(
        EventKind::Message,
        json!({"id": "w", "from_user_id": "", "timestamp": 5, "type": "location",
               "location": {"latitude": 19.43, "longitude": -99.13},
               "context": {"id": "wamid.0", "forwarded": true, "new_member": 1}}),
        Some(json!({"wa_id": 5215512345678u64, "profile": {"name": "Ana", "username": "ana.mx"}})),
    );
    let p = plan(&ev, &ConsentKeywords::default()).unwrap();
    let a = activity(&p);
    assert_eq!(a.text.as_deref(), Some("19.43,-99.13"));
    assert_eq!(a.at, Some(5_000));
    // The context as Meta sent it: no nulls added, a member we do not model kept.
    assert_eq!(
        a.context,
        Some(json!({"id": "wamid.0", "forwarded": true, "new_member": 1}))
    );
    let c = p.contact.unwrap();
    assert_eq!(c.phone_e164.as_deref(), Some("+525512345678"));
    assert_eq!(
        (c.name.as_deref(), c.username.as_deref()),
        (Some("Ana"), Some("ana.mx"))
    );
    assert!(matches!(p.identity, IdentityOp::Resolve(ref k) if k.len() == 1));
}
