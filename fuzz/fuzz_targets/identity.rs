//! Phone and BSUID parsing: what parses is in canonical form (an E.164 is `+` and 8 to 15
//! digits), parsing the canonical form again gives the same number and the same lookup key (all
//! spellings of a line collide), and the stored forms read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wabridge_core::consent::ContactRef;
use wabridge_core::identity::{Bsuid, IdentityKey, Phone, E164};

/// Default regions people type national numbers for (the markets the product serves first).
const REGIONS: [Option<&str>; 8] = [
    None,
    Some("MX"),
    Some("BR"),
    Some("AR"),
    Some("CO"),
    Some("US"),
    Some("ES"),
    Some("xx"),
];

fn assert_e164(e: &E164) {
    let s = e.as_str();
    assert!(s.starts_with('+'), "{s}");
    assert!((9..=16).contains(&s.len()), "{s}");
    assert!(e.digits().bytes().all(|b| b.is_ascii_digit()), "{s}");
    assert!(!e.digits().starts_with('0'), "{s}");
    // Its stored (serde) form reads back as itself.
    let json = serde_json::to_string(e).unwrap();
    assert_eq!(&serde_json::from_str::<E164>(&json).unwrap(), e);
}

fn check_key(key: &IdentityKey) {
    let stored = key.as_string();
    assert_eq!(IdentityKey::from_stored(&stored).as_ref(), Some(key));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let region = REGIONS[usize::from(selector) % REGIONS.len()];

    // Numbers people type: strict.
    if let Ok(phone) = Phone::parse(input, region) {
        assert_e164(&phone.e164);
        assert!(
            phone.key().bytes().all(|b| b.is_ascii_digit()),
            "{}",
            phone.key()
        );
        check_key(&phone.identity_key());
        // The canonical form is a spelling of the same line: same number, same key.
        let again = Phone::parse(phone.e164.as_str(), None)
            .unwrap_or_else(|e| panic!("{input:?} -> {} does not parse: {e}", phone.e164));
        assert_eq!(again.e164, phone.e164, "{input:?}");
        assert_eq!(again.key(), phone.key(), "{input:?}");
        assert_eq!(E164::parse(input, region).as_ref(), Ok(&phone.e164));
    }

    // Meta's wa_ids: lenient, but still E.164-shaped, and the number Meta gave is kept.
    if let Ok(phone) = Phone::from_wa_id(input) {
        assert_e164(&phone.e164);
        assert_eq!(phone.wa_id.as_deref(), Some(input));
        check_key(&phone.identity_key());
        let again = Phone::from_wa_id(phone.e164.digits()).expect("canonical wa_id parses");
        assert_eq!(again.e164, phone.e164, "{input:?}");
        assert_eq!(again.key(), phone.key(), "{input:?}");
    }

    // The serde path of E164 (stored requests) checks the form, nothing more.
    if let Ok(e) = E164::try_from(input.to_string()) {
        assert_eq!(e.as_str(), input);
        assert_e164(&e);
    }

    if let Ok(b) = Bsuid::parse(input) {
        assert_eq!(b.as_str(), input);
        let (cc, id) = input.split_once('.').unwrap();
        assert!(cc.len() == 2 && cc.bytes().all(|c| c.is_ascii_uppercase()));
        assert_eq!(b.is_parent(), id.starts_with("ENT."));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Bsuid>(&json).unwrap(), b);
        check_key(&b.identity_key());
    }

    if let Some(key) = IdentityKey::from_stored(input) {
        assert_eq!(key.as_string(), input);
    }

    // A recipient written by a person: a BSUID or a phone, keyed by kind.
    if let Some(c) = ContactRef::parse(input) {
        assert!(
            c.key.starts_with("phone:") || c.key.starts_with("bsuid:"),
            "{}",
            c.key
        );
        assert!(c.identity_key().is_some());
        // Its display form (what the API answers) is the same contact.
        let again = ContactRef::parse(&c.display).expect("display form parses");
        assert_eq!(again.key, c.key, "{input:?}");
    }
});
