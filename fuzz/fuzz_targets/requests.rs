//! The `/sends` and `/consents` request parsers. Every body is refused with a code or becomes a
//! request that keeps its invariants (a phone is canonical E.164, the contact key is
//! `phone:`/`bsuid:`, limits hold), and the canonical request, posted again, parses to itself
//! with the same hash (the hash is what an idempotency key is checked against).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wabridge_core::consent::ConsentEntry;
use wabridge_core::sends::request::{SendKind, SendRequest, MAX_BODY_BYTES};
use wabridge_core::sends::service::{consent_request, MAX_CONSENT_BYTES};

/// 2026-01-01T00:00:00Z, the parser's "now" (a fixed one, so runs repeat).
const NOW: i64 = 1_767_225_600_000;

fuzz_target!(|body: &[u8]| {
    sends(body);
    consents(body);
});

fn sends(body: &[u8]) {
    let request = match SendRequest::parse(body) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.code().is_empty() && !e.to_string().is_empty());
            if body.len() > MAX_BODY_BYTES {
                assert_eq!(e.code(), "payload_too_large");
            }
            return;
        }
    };
    match (&request.to, &request.recipient) {
        (Some(to), _) => {
            let s = to.as_str();
            assert!(
                s.starts_with('+') && s[1..].bytes().all(|b| b.is_ascii_digit()),
                "{s}"
            );
            assert!(request.contact.starts_with("phone:"), "{}", request.contact);
        }
        (None, Some(_)) => assert!(request.contact.starts_with("bsuid:")),
        (None, None) => panic!("a send without a recipient"),
    }
    let contact = request.contact_ref();
    assert_eq!(contact.key, request.contact);
    assert!(contact.identity_key().is_some());
    let _ = request.body_parameter_count();
    match &request.kind {
        SendKind::Text { body } => {
            assert!(!body.trim().is_empty() && body.chars().count() <= 4096);
        }
        SendKind::Template {
            name,
            language,
            parameters,
            components,
            ..
        } => {
            // An empty language is left for the sends service to pick by country.
            assert!(!name.is_empty());
            assert!(
                language.is_empty()
                    || language
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            );
            assert!(parameters.len() <= 100 && components.len() <= 20);
            assert!(parameters.iter().all(|p| !p.trim().is_empty()));
        }
        SendKind::Media { media } => {
            assert!(media.digest().is_some(), "{}", media.object);
            assert!(media
                .caption
                .as_ref()
                .is_none_or(|c| c.chars().count() <= 1024));
        }
    }

    // The stored form reads back as the same request.
    let stored = serde_json::to_string(&request).unwrap();
    let back: SendRequest = serde_json::from_str(&stored).expect("stored request reads back");
    assert_same_send(&request, &back);

    // Posting the canonical request again gives the same request and the same hash.
    let mut canonical = serde_json::Map::new();
    if let Some(to) = &request.to {
        canonical.insert("to".into(), json!(to.as_str()));
    }
    if let Some(r) = &request.recipient {
        canonical.insert("recipient".into(), json!(r.as_str()));
    }
    if let Some(from) = &request.from {
        canonical.insert("from".into(), json!(from));
    }
    match &request.kind {
        SendKind::Text { body } => {
            canonical.insert("text".into(), json!(body));
        }
        SendKind::Template {
            name,
            language,
            category,
            parameters,
            components,
            header,
        } => {
            canonical.insert("template".into(), json!(name));
            if let Some(h) = header {
                // The stored form of a file is the request's own shape.
                canonical.insert("header".into(), serde_json::to_value(h).unwrap());
            }
            canonical.insert("language".into(), json!(language));
            if let Some(c) = category {
                canonical.insert("category".into(), serde_json::to_value(c).unwrap());
            }
            if !parameters.is_empty() {
                canonical.insert("parameters".into(), json!(parameters));
            }
            if !components.is_empty() {
                canonical.insert("components".into(), json!(components));
            }
        }
        SendKind::Media { media } => {
            canonical.insert("media".into(), serde_json::to_value(media).unwrap());
        }
    }
    let canonical = serde_json::to_vec(&Value::Object(canonical)).unwrap();
    let again = SendRequest::parse(&canonical).unwrap_or_else(|e| {
        panic!(
            "canonical form refused ({e}): {}",
            String::from_utf8_lossy(&canonical)
        )
    });
    assert_same_send(&request, &again);
    if !has_float(&serde_json::to_value(&request).unwrap()) {
        assert_eq!(request.hash(), again.hash());
    }
    assert_eq!(request.hash(), request.hash());
}

fn consents(body: &[u8]) {
    let entry = match consent_request(body, NOW) {
        Ok(e) => e,
        Err(e) => {
            assert!(!e.code().is_empty() && !e.to_string().is_empty());
            if body.len() > MAX_CONSENT_BYTES {
                assert_eq!(e.code(), "payload_too_large");
            }
            return;
        }
    };
    assert!(entry.id.starts_with("con_"));
    assert_eq!(entry.recorded_at, NOW);
    assert!(entry.at <= NOW + 5 * 60_000, "consent in the future");
    if let Some(evidence) = &entry.evidence {
        assert!(!evidence.is_empty() && evidence.trim() == evidence);
        assert!(evidence.chars().count() <= 2048);
    }
    let by_phone = entry.contact.starts_with("phone:");
    assert!(
        by_phone || entry.contact.starts_with("bsuid:"),
        "{}",
        entry.contact
    );
    if by_phone {
        assert!(entry.to.starts_with('+') && entry.to[1..].bytes().all(|b| b.is_ascii_digit()));
    }

    // The stored form reads back.
    let stored = serde_json::to_string(&entry).unwrap();
    assert_eq!(
        serde_json::from_str::<ConsentEntry>(&stored).unwrap(),
        entry
    );

    // Posting the entry again as the API shows it gives the same consent.
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(entry.at) * 1_000_000)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let mut canonical = json!({
        if by_phone { "to" } else { "recipient" }: entry.to,
        "action": entry.action.as_str(),
        "category": entry.category.as_str(),
        "source": entry.source.as_str(),
        "at": at,
    });
    if let Some(e) = &entry.evidence {
        canonical["evidence"] = json!(e);
    }
    let canonical = serde_json::to_vec(&canonical).unwrap();
    let again = consent_request(&canonical, NOW).unwrap_or_else(|e| {
        panic!(
            "canonical form refused ({e}): {}",
            String::from_utf8_lossy(&canonical)
        )
    });
    assert_eq!(
        (
            &again.contact,
            &again.to,
            again.category,
            again.action,
            again.source
        ),
        (
            &entry.contact,
            &entry.to,
            entry.category,
            entry.action,
            entry.source
        )
    );
    assert_eq!((&again.evidence, again.at), (&entry.evidence, entry.at));
}

fn assert_same_send(a: &SendRequest, b: &SendRequest) {
    assert_eq!(
        (&a.to, &a.recipient, &a.contact, &a.from),
        (&b.to, &b.recipient, &b.contact, &b.from)
    );
    match (&a.kind, &b.kind) {
        (SendKind::Text { body: x }, SendKind::Text { body: y }) => assert_eq!(x, y),
        (SendKind::Media { media: x }, SendKind::Media { media: y }) => assert_eq!(x, y),
        (
            SendKind::Template {
                name: n1,
                language: l1,
                category: c1,
                parameters: p1,
                components: k1,
                header: h1,
            },
            SendKind::Template {
                name: n2,
                language: l2,
                category: c2,
                parameters: p2,
                components: k2,
                header: h2,
            },
        ) => {
            assert_eq!((n1, l1, c1, p1, h1), (n2, l2, c2, p2, h2));
            assert_eq!(k1.len(), k2.len());
            for (x, y) in k1.iter().zip(k2) {
                assert!(json_close(x, y), "{x} != {y}");
            }
        }
        (x, y) => panic!("{x:?} != {y:?}"),
    }
}

/// JSON equality, with floats equal to the last bit or two: serde_json's default float parsing
/// is not exact (its `float_roundtrip` feature is), which is no fault of the parser under test.
fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= f64::EPSILON * 4.0 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
