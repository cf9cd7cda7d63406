use super::*;

fn key(input: &str, region: Option<&str>) -> String {
    Phone::parse(input, region).unwrap().key().to_string()
}

#[test]
fn mexico_spellings_collide_and_drop_the_mobile_one() {
    let wa = Phone::from_wa_id("5215512345678").unwrap();
    assert_eq!(wa.e164.as_str(), "+525512345678");
    assert_eq!(wa.wa_id.as_deref(), Some("5215512345678"));
    let k = wa.key().to_string();
    assert_eq!(key("+52 1 55 1234 5678", None), k);
    assert_eq!(key("+52 55 1234 5678", None), k);
    assert_eq!(key("044 55 1234 5678", Some("MX")), k);
    assert_eq!(key("045 55 1234 5678", Some("MX")), k);
    assert_eq!(key("55 1234 5678", Some("mx")), k);
    assert_eq!(
        Phone::parse("044 55 1234 5678", Some("MX"))
            .unwrap()
            .e164
            .as_str(),
        "+525512345678"
    );
    assert_eq!(Phone::from_wa_id("525512345678").unwrap().key(), k);
}

#[test]
fn argentina_spellings_collide_and_keep_the_mobile_nine() {
    let wa = Phone::from_wa_id("5491123456789").unwrap();
    assert_eq!(wa.e164.as_str(), "+5491123456789");
    let k = wa.key().to_string();
    assert_eq!(key("+54 9 11 2345-6789", None), k);
    assert_eq!(key("+54 11 2345-6789", None), k);
    assert_eq!(
        Phone::from_wa_id("541123456789").unwrap().e164.as_str(),
        "+5491123456789"
    );
    assert_eq!(key("011 15 2345-6789", Some("AR")), k);
    assert_eq!(
        Phone::parse("011 15 2345-6789", Some("AR"))
            .unwrap()
            .e164
            .as_str(),
        "+5491123456789"
    );
    // Córdoba (area 351): 0351 15 612 3456.
    let cba = Phone::from_wa_id("5493516123456").unwrap();
    assert_eq!(key("0351 15 612-3456", Some("AR")), cba.key());
    assert_ne!(cba.key(), k);
}

#[test]
fn brazil_mobiles_with_and_without_the_ninth_digit_collide() {
    let with9 = Phone::from_wa_id("5511987654321").unwrap();
    let without9 = Phone::from_wa_id("551187654321").unwrap();
    assert_eq!(with9.key(), without9.key());
    assert_eq!(without9.e164.as_str(), "+5511987654321");
    assert_eq!(with9.e164.as_str(), "+5511987654321");
    assert_eq!(key("(11) 98765-4321", Some("BR")), with9.key());
    assert_eq!(key("+55 11 8765-4321", None), with9.key());
    // A São Paulo landline is not a mobile: no digit added, a different key.
    let landline = Phone::parse("+55 11 3456-7890", None).unwrap();
    assert_eq!(landline.e164.as_str(), "+551134567890");
    assert_ne!(landline.key(), with9.key());
}

#[test]
fn other_countries_are_plain_e164() {
    let co = Phone::parse("+57 310 123 4567", None).unwrap();
    assert_eq!(co.e164.as_str(), "+573101234567");
    assert_eq!(co.key(), "573101234567");
    assert_eq!(
        Phone::from_wa_id("16505551234").unwrap().e164.as_str(),
        "+16505551234"
    );
}

#[test]
fn garbage_is_refused() {
    assert!(Phone::parse("hello", None).is_err());
    assert!(Phone::parse("", None).is_err());
    assert!(Phone::parse("+52 12", None).is_err());
    assert!(Phone::from_wa_id("12ab").is_err());
    assert!(Phone::from_wa_id("123").is_err());
    assert!(E164::try_from("5215512345678".to_string()).is_err());
    assert!(E164::try_from("+0123456789".to_string()).is_err());
    assert!(serde_json::from_str::<E164>("\"+525512345678\"").is_ok());
    assert!(serde_json::from_str::<E164>("\"55 1234\"").is_err());
    // Fuzzing (fuzz/ identity): a wa_id with a leading 0 became `+0123456789`, an E164 that
    // its own deserializer refuses. No country code starts with 0.
    assert!(Phone::from_wa_id("0123456789").is_err());
    assert!(Phone::from_wa_id("+0123456789").is_err());
}

/// Found by fuzzing (fuzz/ identity): the canonical form of a number must parse to itself
/// with the same key, whatever region the first spelling was read with.
#[test]
fn canonical_form_reads_back_as_itself() {
    for (input, region) in [
        ("\u{11}\0\0{Z+ 6103456 45678", Some("MX")),
        ("+61 03456 45678", Some("MX")),
        ("+61 03456 45678", None),
        ("+44 07700 900123", Some("BR")),
        ("+52 1 55 1234 5678", Some("AR")),
        ("011 15 1234-5678", Some("AR")),
    ] {
        let Ok(phone) = Phone::parse(input, region) else {
            continue;
        };
        let again = Phone::parse(phone.e164.as_str(), None).unwrap();
        assert_eq!(again.e164, phone.e164, "{input:?}");
        assert_eq!(again.key(), phone.key(), "{input:?}");
    }
    // An Australian number typed with its trunk 0, in a CRM whose default region is MX, was
    // `+610345645678`; typed without the 0 it is `+61345645678`: two contacts for one line.
    let au = Phone::parse("+61 03456 45678", Some("MX")).unwrap();
    assert_eq!(au.e164.as_str(), "+61345645678");
    assert_eq!(
        au.key(),
        Phone::parse("+61 3456 45678", None).unwrap().key()
    );
}

#[test]
fn bsuids_parse_on_entry() {
    let b = Bsuid::parse("MX.13491208655302741918").unwrap();
    assert!(!b.is_parent());
    assert_eq!(
        b.identity_key().as_string(),
        "bsuid:MX.13491208655302741918"
    );
    assert!(Bsuid::parse("BR.ENT.abc123XYZ").unwrap().is_parent());
    assert!(Bsuid::parse(&format!("AR.{}", "a".repeat(128))).is_ok());
    assert!(Bsuid::parse(&format!("AR.{}", "a".repeat(129))).is_err());
    assert!(Bsuid::parse("mx.123").is_err());
    assert!(Bsuid::parse("MX.").is_err());
    assert!(Bsuid::parse("MX.12-3").is_err());
    assert!(Bsuid::parse("5215512345678").is_err());
}

#[test]
fn identity_keys_round_trip_through_storage() {
    for k in [
        IdentityKey::Phone("525512345678".into()),
        IdentityKey::Bsuid("MX.1".into()),
    ] {
        assert_eq!(IdentityKey::from_stored(&k.as_string()), Some(k));
    }
    assert_eq!(IdentityKey::from_stored("x:1"), None);
}

#[test]
fn a_wa_id_in_a_range_the_metadata_does_not_know_is_kept_unverified() {
    // Mexico, area 822: a Mexican length, no range of metadata 9.0.33.
    let new_range = Phone::from_wa_id("5218221234567").unwrap();
    assert_eq!(new_range.e164.as_str(), "+528221234567");
    assert!(!new_range.verified);
    assert_eq!(new_range.e164.validity(), PhoneValidity::Possible);
    assert!(Phone::from_wa_id("5215512345678").unwrap().verified);
    // Typed, the same number is refused: people's input stays strict.
    assert_eq!(
        E164::parse("+52 822 123 4567", None),
        Err(IdentityError::InvalidPhone("+52 822 123 4567".into()))
    );
    assert_eq!(
        Phone::parse("822 123 4567", Some("MX")).unwrap_err(),
        IdentityError::InvalidPhone("822 123 4567".into())
    );
    // Not even a Mexican length, or no country at all.
    let short = E164::try_from("+52822123456".to_string()).unwrap();
    assert_eq!(short.validity(), PhoneValidity::Impossible);
    let nowhere = E164::try_from("+99912345678".to_string()).unwrap();
    assert_eq!(nowhere.validity(), PhoneValidity::Impossible);
    assert!(!Phone::from_wa_id("99912345678").unwrap().verified);
    // The crate would read `+1 101…` as `+1 01…` (a national prefix libphonenumber keeps):
    // Meta's digits stay as they are.
    let nanpa = Phone::from_wa_id("11015550123").unwrap();
    assert_eq!(nanpa.e164.as_str(), "+11015550123");
    assert!(!nanpa.verified);
}

#[test]
fn a_bsuid_is_told_apart_from_a_phone_by_its_form() {
    for bsuid in [
        "US.1234",
        "CO.58120394857710293847",
        "BR.ENT.abc",
        "MX.12-3",
    ] {
        assert!(Bsuid::has_form(bsuid), "{bsuid}");
    }
    for other in [
        "5215512345678",
        "+52155",
        "us.1234",
        "U.1234",
        "US1234",
        "US.",
        "",
    ] {
        assert!(!Bsuid::has_form(other), "{other}");
    }
}
