//! Plans read the webhook model's types: one decoder, one reading of timestamps and codes.

use serde_json::{json, Value};

use super::*;
use crate::event::{EventKind, EVENT_VERSION};
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
    let e = plan_of(
        EventKind::UserPreference,
        json!({"wa_id": "5215512345678", "value": "maybe"}),
    )
    .unwrap_err();
    assert!(matches!(e, PlanError::UnknownPreference));
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
