//! The consent history's ordering and the service's entry points.
use super::*;

fn entry(id: &str, action: ConsentAction, at: i64, recorded_at: i64) -> ConsentEntry {
    ConsentEntry {
        id: id.into(),
        contact: "phone:525512345678".into(),
        to: "+525512345678".into(),
        category: ConsentCategory::Marketing,
        action,
        source: ConsentSource::WebForm,
        evidence: None,
        at,
        recorded_at,
        number: None,
    }
}

#[test]
fn latest_by_event_time_wins() {
    // An old opt-in registered after a newer STOP does not override it.
    let mut h = vec![
        entry("b", ConsentAction::OptIn, 100, 300),
        entry("a", ConsentAction::OptOut, 200, 250),
    ];
    sort_history(&mut h);
    assert_eq!(
        state_of(&h, ConsentCategory::Marketing),
        ConsentState::OptedOut
    );
    assert_eq!(
        state_of(&h, ConsentCategory::Utility),
        ConsentState::Unknown
    );
    h.push(entry("c", ConsentAction::OptIn, 300, 400));
    sort_history(&mut h);
    assert_eq!(
        state_of(&h, ConsentCategory::Marketing),
        ConsentState::OptedIn
    );
}

#[test]
fn contacts_parse_from_any_spelling() {
    let a = ContactRef::parse("+52 1 55 1234 5678").unwrap();
    let b = ContactRef::parse("5215512345678").unwrap();
    let c = ContactRef::from_wa_id("5215512345678").unwrap();
    assert_eq!(a.key, b.key);
    assert_eq!(a.key, c.key);
    assert_eq!(a.display, "+525512345678");
    assert_eq!(
        ContactRef::parse("MX.abc123").unwrap().key,
        "bsuid:MX.abc123"
    );
    assert!(ContactRef::parse("hello").is_none());
    assert!(ContactRef::parse("").is_none());
}

#[test]
fn sources_parse() {
    assert_eq!(
        ConsentSource::parse_api("web-form"),
        Some(ConsentSource::WebForm)
    );
    assert_eq!(ConsentSource::parse_api("keyword"), None);
    assert_eq!(
        ConsentSource::parse_stored("keyword"),
        Some(ConsentSource::Keyword)
    );
    assert_eq!(ConsentAction::parse("opt-in"), Some(ConsentAction::OptIn));
}
