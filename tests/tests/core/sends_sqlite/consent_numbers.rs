//! Consent across the numbers of one business (issue 21, `WABRIDGE_CONSENT_SCOPE`): by default
//! an opt-out written to one number stops marketing from every number; scoped to numbers, it
//! stops that number's only, while a consent given to the business (no number) holds for all.
//! `POST /consents` takes the number by label or id, and refuses one the registry lacks.

use std::sync::Arc;

use serde_json::json;
use wabridge_core::consent::{ConsentScope, ContactRef};
use wabridge_core::numbers::Numbers;
use wabridge_core::sends::service::Sends;
use wabridge_sqlite::{Db, SqliteEngine};

use super::refusal_code;

const MX: &str = "106540352242922";
const CO: &str = "206540352242922";

fn registry() -> Arc<Numbers> {
    let number = |label: &str, id: &str, display: &str| {
        format!(
            "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"102290129340398\"\n\
             display_number = \"{display}\"\ntoken_key = \"WHATSAPP_ACCESS_TOKEN_{label}\"\n\
             [number.crm]\nkind = \"local\"\n"
        )
        .replace("TOKEN_ventas-mx", "TOKEN_MX")
        .replace("TOKEN_soporte-co", "TOKEN_CO")
    };
    let text =
        number("ventas-mx", MX, "+52 55 5000 1111") + &number("soporte-co", CO, "+57 601 500 2222");
    Arc::new(Numbers::parse("numbers.toml", text.as_bytes()).unwrap())
}

fn sends(db: &Db, scope: ConsentScope) -> Sends {
    SqliteEngine::new(db.clone())
        .with_consent_scope(scope)
        .sends(wabridge_tests::admin_keys("test-api-key"))
        .with_numbers(registry())
}

fn marketing(from: &str) -> Vec<u8> {
    json!({"to": "+525512345678", "template": "promo_julio", "language": "es_MX",
           "category": "MARKETING", "from": from})
    .to_string()
    .into_bytes()
}

/// The person opts in through a web form (no number), then writes STOP to `ventas-mx`.
async fn opt_in_then_stop_on_mx(s: &Sends) {
    s.record_consent(
        br#"{"to": "+525512345678", "action": "opt_in", "source": "web_form", "at": "2026-01-10T10:00:00Z"}"#,
        None,
    )
    .await
    .unwrap();
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    s.policy
        .consent
        .record_stop_keyword(
            &contact,
            Some(MX),
            "evt-stop",
            "STOP",
            wabridge_core::clock::now_ms(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_opt_out_on_one_number_stops_marketing_from_the_other_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("c.db")).unwrap();
    let s = sends(&db, ConsentScope::Portfolio);
    opt_in_then_stop_on_mx(&s).await;
    for from in ["ventas-mx", "soporte-co"] {
        let e = s.submit(&marketing(from), None).await.unwrap_err();
        assert_eq!(refusal_code(e), (422, "marketing_opted_out"), "from {from}");
    }
    // The history says where the STOP was written.
    let history = s.consents(Some("+525512345678"), None).await.unwrap();
    let numbers: Vec<_> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["number"].clone())
        .collect();
    assert_eq!(numbers, [json!(null), json!(MX)]);
}

#[tokio::test]
async fn scoped_to_numbers_an_opt_out_stops_only_its_own_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("c.db")).unwrap();
    let s = sends(&db, ConsentScope::Number);
    opt_in_then_stop_on_mx(&s).await;
    let e = s.submit(&marketing("ventas-mx"), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    s.submit(&marketing("soporte-co"), None).await.unwrap();
    // An opt-out given to the business through the API, naming no number, holds for every one.
    s.record_consent(
        br#"{"to": "+525512345678", "action": "opt_out", "source": "agent"}"#,
        None,
    )
    .await
    .unwrap();
    let e = s.submit(&marketing("soporte-co"), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // An opt-in on `soporte-co` (by label) reopens that number only.
    s.record_consent(
        br#"{"to": "+525512345678", "action": "opt_in", "source": "agent", "number": "soporte-co"}"#,
        None,
    )
    .await
    .unwrap();
    s.submit(&marketing("soporte-co"), None).await.unwrap();
    let e = s.submit(&marketing("ventas-mx"), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
}

#[tokio::test]
async fn the_consent_api_names_a_number_the_registry_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("c.db")).unwrap();
    let s = sends(&db, ConsentScope::Number);
    let e = s
        .record_consent(
            br#"{"to": "+525512345678", "action": "opt_in", "source": "agent", "number": "ventas-ar"}"#,
            None,
        )
        .await
        .unwrap_err();
    let e = wabridge_core::http::ApiError::from(e);
    assert_eq!((e.status(), e.code()), (422, "unknown_number"), "{e}");
    assert!(e.to_string().contains("`number` \"ventas-ar\""), "{e}");
    let e = s
        .record_consent(
            br#"{"to": "+525512345678", "action": "opt_in", "source": "agent", "number": " "}"#,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (400, "invalid_number"));
}
