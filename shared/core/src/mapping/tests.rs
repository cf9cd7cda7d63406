//! Mapping files: parsing, transforms, validation rules, the example mappings.

use super::*;
use crate::records::{ContactRecord, Record};

fn contact(name: Option<&str>, phone: Option<&str>) -> Record {
    Record::Contact(ContactRecord {
        v: Default::default(),
        id: "c1".into(),
        phone_e164: phone.map(String::from),
        name: name.map(String::from),
        bsuid: Some("MX.77".into()),
        username: Some("Ana.Lopez".into()),
        updated_at: 1,
        ..Default::default()
    })
}

fn one(field: &str) -> Mapping {
    Mapping::from_toml(&format!("version = 1\n[[contact]]\n{field}")).unwrap()
}

fn rule_of(m: &Mapping, r: &Record) -> String {
    m.apply(r).unwrap_err().rule
}

#[test]
fn required_rejects_absent_and_empty_values() {
    let m = one("to = \"firstname\"\nfrom = \"name\"\nrequired = true");
    assert_eq!(rule_of(&m, &contact(None, None)), "required");
    assert_eq!(rule_of(&m, &contact(Some(""), None)), "required");
    let err = m.apply(&contact(None, None)).unwrap_err();
    assert_eq!(err.field, "firstname");
    assert!(err.to_string().contains("`firstname`") && err.to_string().contains("required"));
    assert_eq!(
        m.apply(&contact(Some("Ana"), None)).unwrap()["firstname"],
        "Ana"
    );
}

#[test]
fn e164_rule_accepts_canonical_numbers_only() {
    let m = one("to = \"phone\"\nfrom = \"phone_e164\"\ne164 = true");
    assert!(m.apply(&contact(None, Some("+525512345678"))).is_ok());
    assert_eq!(
        rule_of(&m, &contact(None, Some("+52 55 1234 5678"))),
        "e164"
    );
    assert_eq!(rule_of(&m, &contact(None, Some("12345"))), "e164");
    // Absent and not required: the field is left out, no error.
    assert!(m.apply(&contact(None, None)).unwrap().is_empty());
}

#[test]
fn e164_takes_a_wa_id_the_metadata_does_not_know_unless_the_mapping_asks_for_valid() {
    // +52 822 123 4567: a Mexican length in a range metadata 9.0.33 does not know.
    let unknown_range = contact(None, Some("+528221234567"));
    let possible = one("to = \"phone\"\nfrom = \"phone_e164\"\ne164 = true");
    assert_eq!(
        possible.apply(&unknown_range).unwrap()["phone"],
        "+528221234567"
    );
    let same = one("to = \"phone\"\nfrom = \"phone_e164\"\ne164 = \"possible\"");
    assert!(same.apply(&unknown_range).is_ok());
    let valid = one("to = \"phone\"\nfrom = \"phone_e164\"\ne164 = \"valid\"");
    let err = valid.apply(&unknown_range).unwrap_err();
    assert_eq!(err.rule, "e164");
    assert!(err.detail.contains("phone metadata"), "{}", err.detail);
    assert!(valid.apply(&contact(None, Some("+525512345678"))).is_ok());
    // Not a Mexican length, nor canonical (Meta's legacy 521 form): refused by both.
    for bad in ["+52822123456", "+5215512345678"] {
        assert_eq!(
            rule_of(&possible, &contact(None, Some(bad))),
            "e164",
            "{bad}"
        );
    }
    let off = one("to = \"phone\"\nfrom = \"phone_e164\"\ne164 = false");
    assert!(off.apply(&contact(None, Some("12345"))).is_ok());
    let e = Mapping::from_toml(
        "version = 1\n[[contact]]\nto = \"p\"\nfrom = \"phone_e164\"\ne164 = \"strict\"",
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"valid\""), "{e}");
}

#[test]
fn phone_verified_reaches_the_mapping_as_a_field() {
    let m = one("to = \"verified\"\nfrom = \"phone_verified\"");
    let Record::Contact(mut c) = contact(None, Some("+528221234567")) else {
        unreachable!()
    };
    c.phone_verified = Some(false);
    let fields = m.apply(&Record::Contact(c.clone())).unwrap();
    assert_eq!(fields["verified"], false);
    // The explicit refusal of unverified phones a mapping can also write as a catalog.
    let refuse = one("to = \"verified\"\nfrom = \"phone_verified\"\none_of = [\"true\"]");
    assert_eq!(rule_of(&refuse, &Record::Contact(c)), "one_of");
}

#[test]
fn email_and_url_rules() {
    let m = one("to = \"email\"\nfrom = \"name\"\nemail = true");
    assert!(m.apply(&contact(Some("ana@example.com"), None)).is_ok());
    assert_eq!(rule_of(&m, &contact(Some("ana at example"), None)), "email");
    let m = one("to = \"site\"\nfrom = \"name\"\nurl = true");
    assert!(m
        .apply(&contact(Some("https://example.com/x"), None))
        .is_ok());
    assert_eq!(rule_of(&m, &contact(Some("not a url"), None)), "url");
}

#[test]
fn enum_catalog_max_length_and_regex() {
    let m = one(
        "to = \"tier\"\nfrom = \"name\"\none_of = [\"gold\", \"silver\"]\ntransform = [\"lower\"]",
    );
    assert_eq!(
        m.apply(&contact(Some("GOLD"), None)).unwrap()["tier"],
        "gold"
    );
    assert_eq!(rule_of(&m, &contact(Some("bronze"), None)), "one_of");
    let m = one("to = \"n\"\nfrom = \"name\"\nmax_length = 5");
    assert!(
        m.apply(&contact(Some("Añoñó"), None)).is_ok(),
        "characters, not bytes"
    );
    assert_eq!(rule_of(&m, &contact(Some("Ana María"), None)), "max_length");
    let m = one("to = \"u\"\nfrom = \"username\"\nregex = \"^[a-z.]+$\"");
    assert_eq!(rule_of(&m, &contact(None, None)), "regex");
    let m = one("to = \"u\"\nfrom = \"username\"\nregex = \"^[a-z.]+$\"\ntransform = [\"lower\"]");
    assert_eq!(m.apply(&contact(None, None)).unwrap()["u"], "ana.lopez");
}

#[test]
fn transforms_split_names_and_defaults_fill_gaps() {
    let m = Mapping::from_toml(
        "version = 1\n[[contact]]\nto = \"first\"\nfrom = \"name\"\ntransform = [\"trim\", \"first_name\"]\ndefault = \"WhatsApp\"\n[[contact]]\nto = \"last\"\nfrom = \"name\"\ntransform = [\"last_name\", \"upper\"]\n[[contact]]\nto = \"id\"\nfrom = \"phone_e164|bsuid\"\n[[contact]]\nto = \"source\"\ndefault = \"whatsapp\"",
    )
    .unwrap();
    let out = m
        .apply(&contact(Some("  María José Pérez "), None))
        .unwrap();
    assert_eq!(out["first"], "María");
    assert_eq!(out["last"], "JOSÉ PÉREZ");
    assert_eq!(
        out["id"], "MX.77",
        "falls back to the BSUID without a phone"
    );
    assert_eq!(out["source"], "whatsapp");
    let out = m
        .apply(&contact(Some("Ana"), Some("+525512345678")))
        .unwrap();
    assert!(!out.contains_key("last"), "empty after transform = absent");
    assert_eq!(out["id"], "+525512345678");
    let out = m.apply(&contact(None, None)).unwrap();
    assert_eq!(out["first"], "WhatsApp");
}

#[test]
fn broken_mapping_files_are_refused_with_a_reason() {
    let bad = |t: &str| Mapping::from_toml(t).unwrap_err().to_string();
    assert!(bad("version = 2").contains("version 2"));
    assert!(
        bad("version = 1\n[[contact]]\nto = \"a\"\nfrom = \"b\"\nregex = \"(\"").contains("regex")
    );
    assert!(bad("version = 1\n[[contact]]\nto = \"a\"\nfrom = \"b\"\nbogus = 1").contains("bogus"));
    assert!(bad("version = 1\n[[contact]]\nto = \"a\"").contains("needs `from`"));
    assert!(bad(
        "version = 1\n[[contact]]\nto = \"a\"\nfrom=\"x\"\n[[contact]]\nto = \"a\"\nfrom=\"y\""
    )
    .contains("twice"));
    assert!(
        bad("version = 1\n[[contact]]\nto = \"a\"\nfrom = \"b\"\ntransform = [\"reverse\"]")
            .contains("reverse")
    );
}

#[test]
fn example_mappings_load_and_keywords_classify() {
    for kind in [
        "local",
        "webhook",
        "hubspot",
        "pipedrive",
        "zoho",
        "kommo",
        "salesforce",
    ] {
        let m = Mapping::example(kind).unwrap();
        assert!(
            m.consent.opt_out_keywords.iter().any(|k| k == "BAJA"),
            "{kind}"
        );
    }
    let k = ConsentKeywords::default();
    for stop in ["STOP", "baja", " Alto ", "parar!", "Sair"] {
        assert!(
            matches!(k.classify(stop), Some(KeywordMatch::OptOut(_))),
            "{stop}"
        );
    }
    assert_eq!(k.classify("alta"), Some(KeywordMatch::OptIn("ALTA".into())));
    assert_eq!(k.classify("no quiero darme de baja"), None);
    assert_eq!(k.classify(""), None);
}
