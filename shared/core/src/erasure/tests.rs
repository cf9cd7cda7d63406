use super::*;

#[test]
fn targets_parse_as_contact_ids_bsuids_and_phones_in_any_spelling() {
    let id = "0193f0a2-7c4e-7b1a-9d2e-1f2a3b4c5d6e";
    assert_eq!(Target::parse(id).unwrap(), Target::Contact(id.into()));
    assert_eq!(
        Target::parse(&id.to_uppercase()).unwrap(),
        Target::Contact(id.into()),
        "a contact id in capitals is the same id"
    );
    match Target::parse("US.13491208655302741918").unwrap() {
        Target::Identity { key, e164 } => {
            assert_eq!(key.as_string(), "bsuid:US.13491208655302741918");
            assert_eq!(e164, None);
        }
        other => panic!("{other:?}"),
    }
    // Mexico's mobile `1`: every spelling is one identity.
    let keys: Vec<_> = ["+52 1 55 1234 5678", "5215512345678", "+525512345678"]
        .iter()
        .map(|p| match Target::parse(p).unwrap() {
            Target::Identity { key, e164 } => (key, e164.is_some()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
    assert!(keys[0].1, "a phone keeps its E.164 for the CRM");
}

#[test]
fn a_malformed_target_is_refused_without_repeating_it() {
    for bad in ["", "   ", "not-a-person", "+52 55", "12", &"9".repeat(300)] {
        let err = Target::parse(bad).unwrap_err().to_string();
        assert!(matches!(
            Target::parse(bad),
            Err(ErasureError::BadTarget(_))
        ));
        if bad.trim().len() > 3 {
            assert!(!err.contains(bad.trim()), "{err}");
        }
    }
}

#[test]
fn tombstones_are_keyed_by_the_salt_and_never_the_plain_identity() {
    let salt = new_salt();
    let a = tombstone(&salt, "phone:525512345678");
    assert_eq!(a, tombstone(&salt, "phone:525512345678"), "deterministic");
    assert_ne!(a, tombstone(&new_salt(), "phone:525512345678"), "salted");
    assert_ne!(a, tombstone(&salt, "phone:525512345679"));
    assert_eq!(a.len(), 64);
    assert!(!a.contains("5512345678"));
}

#[test]
fn the_crm_gets_the_canonical_e164_of_each_number_as_contacts_carry_it() {
    for wa_id in ["5511987654321", "5493514567890", "5215512345678"] {
        let phone = crate::identity::Phone::from_wa_id(wa_id).unwrap();
        let person = Person {
            contact_id: None,
            keys: vec![phone.identity_key()],
        };
        let item = ErasureItem::new("era", &person, None, 1);
        assert_eq!(item.phones, vec![phone.e164.to_string()], "{wa_id}");
    }
}

#[test]
fn the_erasure_event_carries_the_contact_and_its_spellings_and_round_trips() {
    let person = Person {
        contact_id: Some("c-1".into()),
        keys: vec![
            IdentityKey::Phone("525512345678".into()),
            IdentityKey::Bsuid("MX.123".into()),
        ],
    };
    let item = ErasureItem::new("era_1", &person, Some("+525512345678"), 42);
    assert_eq!(item.phones, vec!["+525512345678"]);
    assert_eq!(item.bsuids, vec!["MX.123"]);
    let event = item.event();
    assert_eq!(event.key, "x:era_1");
    match crate::webhook::model::parse_item(&event).unwrap() {
        crate::webhook::model::Item::Erasure(back) => assert_eq!(back, item),
        other => panic!("{other:?}"),
    }
}
