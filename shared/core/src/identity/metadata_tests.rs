//! The `phonenumber` crate held to libphonenumber: tests/fixtures/phone_numbers.json holds a few
//! hundred numbers of the countries we serve with what libphonenumber (the pinned PyPI port, at
//! the crate's metadata release) says of each; regenerate it with `bash scripts/phone-fixture.sh`.

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Fixture {
    libphonenumber: String,
    crate_metadata: String,
    numbers: Vec<Number>,
}

#[derive(Deserialize)]
struct Number {
    input: String,
    region: String,
    e164: String,
    validity: String,
}

fn root(path: &str) -> String {
    let file = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn fixture() -> Fixture {
    serde_json::from_str(&root("tests/fixtures/phone_numbers.json")).unwrap()
}

/// The libphonenumber release of the crate in Cargo.lock: `0.3.10+9.0.33` → `9.0.33`.
fn crate_metadata() -> String {
    let lock = root("Cargo.lock");
    let at = lock
        .find("name = \"phonenumber\"\nversion = \"")
        .expect("phonenumber in Cargo.lock");
    let version = lock[at..].lines().nth(1).unwrap();
    let version = version
        .trim_start_matches("version = \"")
        .trim_end_matches('"');
    version
        .split_once('+')
        .expect("a +<libphonenumber release> suffix")
        .1
        .to_string()
}

fn name(v: PhoneValidity) -> &'static str {
    match v {
        PhoneValidity::Valid => "valid",
        PhoneValidity::Possible => "possible",
        PhoneValidity::Impossible => "impossible",
    }
}

#[test]
fn the_fixture_is_of_the_crates_metadata_release() {
    let f = fixture();
    assert_eq!(
        f.crate_metadata,
        crate_metadata(),
        "Cargo.lock moved the phonenumber crate: pin phonenumbers to its release in \
         scripts/requirements.txt and run `bash scripts/phone-fixture.sh`"
    );
    // The pinned package is the crate's release today; docs/architecture.md says what to do
    // when PyPI lacks one (pin the closest), so the comparison below names both releases.
    assert!(!f.libphonenumber.is_empty());
}

/// Where the crate (0.3.10) parses differently from libphonenumber, all on numbers neither calls
/// valid, but one: (region, input, the crate's E.164, the crate's answer). The crate strips a
/// leading country code (MX) or NANPA `1` national prefix that libphonenumber keeps because
/// the rest would be too short, and takes one Uruguayan 800 number libphonenumber refuses.
/// A typed number is refused by both in every case but the Uruguayan one.
const KNOWN: [(&str, &str, &str, &str); 6] = [
    ("MX", "522 123 4567", "+5221234567", "impossible"),
    ("US", "+11015550123", "+1015550123", "impossible"),
    ("DO", "+11002123456", "+1002123456", "impossible"),
    ("CA", "1062345678", "+1062345678", "impossible"),
    ("CA", "+1 1002123456", "+1002123456", "impossible"),
    ("UY", "+598 80012343", "+59880012343", "valid"),
];

#[test]
fn the_crate_agrees_with_libphonenumber_on_every_number() {
    let f = fixture();
    assert!(f.numbers.len() >= 300, "a few hundred numbers");
    let mut disagreements = Vec::new();
    let mut seen_known = 0;
    let mut regions = std::collections::BTreeSet::new();
    for n in &f.numbers {
        regions.insert(n.region.as_str());
        let region: phonenumber::country::Id = n.region.parse().unwrap();
        let got = match phonenumber::parse(Some(region), &n.input) {
            Ok(parsed) => (
                parsed.format().mode(phonenumber::Mode::E164).to_string(),
                name(metadata_validity(&parsed)),
            ),
            Err(e) => (format!("parse error: {e}"), "-"),
        };
        let known = KNOWN
            .iter()
            .find(|k| (k.0, k.1) == (n.region.as_str(), n.input.as_str()));
        match known {
            Some(k) => {
                assert_eq!(
                    got,
                    (k.2.to_string(), k.3),
                    "known disagreement changed: {k:?}"
                );
                seen_known += 1;
            }
            None if got != (n.e164.clone(), n.validity.as_str()) => disagreements.push(format!(
                "{} {:?}: libphonenumber {} {}, crate {} {}",
                n.region, n.input, n.e164, n.validity, got.0, got.1
            )),
            None => {}
        }
    }
    assert_eq!(
        seen_known,
        KNOWN.len(),
        "every known disagreement is in the fixture"
    );
    for r in ["MX", "BR", "AR", "CO", "CL", "PE", "US", "ES", "IL"] {
        assert!(regions.contains(r), "{r} is covered");
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} numbers disagree with libphonenumber {} (the crate carries {}):\n{}",
        disagreements.len(),
        f.numbers.len(),
        f.libphonenumber,
        f.crate_metadata,
        disagreements.join("\n")
    );
}

/// What people type stays strict: outside the countries whose quirks rewrite a number (MX, AR,
/// BR) and the known disagreements, a number parses exactly when libphonenumber calls it valid,
/// to its E.164 form.
#[test]
fn typed_numbers_parse_exactly_when_libphonenumber_calls_them_valid() {
    let f = fixture();
    let mut checked = 0;
    for n in f
        .numbers
        .iter()
        .filter(|n| !["MX", "AR", "BR"].contains(&n.region.as_str()))
        .filter(|n| {
            !KNOWN
                .iter()
                .any(|k| (k.0, k.1) == (n.region.as_str(), n.input.as_str()))
        })
    {
        let parsed = E164::parse(&n.input, Some(&n.region));
        // E.164 caps numbers at 15 digits; libphonenumber also knows longer German ones.
        let too_long = n.e164.len() > 16;
        match n.validity.as_str() {
            "valid" if too_long => assert!(parsed.is_err(), "{:?}", n.input),
            "valid" => assert_eq!(
                parsed.as_ref().map(E164::as_str),
                Ok(n.e164.as_str()),
                "{} {:?}",
                n.region,
                n.input
            ),
            _ => assert!(parsed.is_err(), "{} {:?} accepted", n.region, n.input),
        }
        checked += 1;
    }
    assert!(checked >= 200, "{checked}");
}
