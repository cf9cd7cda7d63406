//! What the model does not fully understand still lands, never in the dead letters: the samples
//! of events/webhooks posted as Meta sends them (a wa_id the phone metadata does not know, BSUID
//! senders wherever Meta names them, a group's status, values Meta added), through every
//! example mapping.

use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::mapping::{HUBSPOT_EXAMPLE, LOCAL_EXAMPLE, WEBHOOK_EXAMPLE};
use wabridge_core::webhook::split;

use super::*;

const SAMPLES: [&str; 7] = [
    "text_wa_id_unknown_range_es_mx.json",
    "bsuid_in_from_and_wa_id_es_co.json",
    "bsuid_only_in_contacts_es_cl.json",
    "status_group_es_mx.json",
    "status_unmodelled_value_es_pe.json",
    "user_preferences_signup_es_mx.json",
    "account_update_unmodelled_event_es_ar.json",
];

fn deliveries(sample: &str) -> Vec<Delivery> {
    let path = format!("{}/../events/webhooks/{sample}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    split(&body, 1_763_700_400_000)
        .unwrap()
        .into_iter()
        .map(|e| delivery(serde_json::from_str(&e.to_json()).unwrap()))
        .collect()
}

/// Posts a sample: every one of its events must be done.
async fn post(e: &Env, sample: &str) {
    for d in deliveries(sample) {
        assert_eq!(e.sync.handle(&d).await, Outcome::Done, "{sample}");
    }
}

fn by_key<'a>(lines: &'a [Value], key: &str, value: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {lines:?}"))
}

#[tokio::test]
async fn every_sample_is_done_through_every_example_mapping() {
    for mapping in [LOCAL_EXAMPLE, WEBHOOK_EXAMPLE, HUBSPOT_EXAMPLE] {
        let e = env_with(mapping);
        for sample in SAMPLES {
            post(&e, sample).await;
        }
        assert!(!lines(&e.records, "activity").await.is_empty());
    }
}

#[tokio::test]
async fn what_each_sample_becomes() {
    let e = env();
    for sample in SAMPLES {
        post(&e, sample).await;
    }
    let contacts = lines(&e.records, "contact").await;
    let activities = lines(&e.records, "activity").await;
    let unknown = lines(&e.records, "unknown").await;

    // A wa_id the phone metadata does not know: kept as Meta gave it, marked, mapped.
    let mx = by_key(&contacts, "phone_e164", "+528221234567");
    assert_eq!(mx["wa_id"], "5218221234567");
    assert_eq!(mx["phone_verified"], false);
    assert_eq!(mx["fields"]["phone"], "+528221234567");
    assert_eq!(mx["fields"]["phone_verified"], false);
    let text = by_key(&activities, "contact_id", mx["id"].as_str().unwrap());
    assert_eq!(text["text"], "Hola, ¿tienen envío a Monterrey?");

    // BSUID senders: in `from` and `wa_id`, or only in the change's one contact.
    for (bsuid, username) in [
        ("CO.58120394857710293847", "camila.ortiz"),
        ("CL.77301928374655019283", "tomas.fuentes"),
    ] {
        let c = by_key(&contacts, "bsuid", bsuid);
        assert!(c["phone_e164"].is_null(), "{c}");
        assert!(c.get("phone_verified").is_none(), "no phone, no mark: {c}");
        assert_eq!(c["username"], username);
        assert_eq!(c["fields"]["identity"], bsuid);
        by_key(&activities, "contact_id", c["id"].as_str().unwrap());
    }

    // A group's status: on the group's message, no contact made of the group id.
    let group = by_key(&activities, "group_id", "120363045678901234");
    assert_eq!(
        (&group["status"], &group["contact_id"]),
        (&json!("read"), &json!(""))
    );
    assert!(contacts
        .iter()
        .all(|c| c["phone_e164"] != "+120363045678901234"));

    // A status Meta added: kept by its name.
    let held = by_key(&activities, "status", "held_for_review");
    let pe = by_key(&contacts, "phone_e164", "+51987654321");
    assert_eq!(held["contact_id"], pe["id"]);

    // `signup`: the raw preference on the person's contact, and no consent read into it.
    let signup = by_key(&unknown, "field", "user_preferences");
    assert_eq!(signup["raw"]["value"], "signup");
    assert_eq!(signup["raw"]["signup_id"], "27184455012938471");
    let jorge = by_key(&contacts, "phone_e164", "+523312345678");
    assert_eq!(signup["contact_id"], jorge["id"]);
    assert_eq!(jorge["phone_verified"], true);
    assert!(lines(&e.records, "consent").await.is_empty());

    // An account event Meta added: an account record, kept by name with the whole value.
    assert!(unknown.iter().all(|u| u["field"] != "account_update"));
    let accounts = lines(&e.records, "account").await;
    let account = by_key(&accounts, "event", "BUSINESS_PORTFOLIO_LIMIT_UPDATE");
    assert_eq!(
        account["details"]["portfolio_limit_info"]["new_limit"],
        "TIER_10K"
    );

    assert_eq!(contacts.len(), 5, "{contacts:?}");
}

#[tokio::test]
async fn a_mapping_can_still_refuse_a_phone_the_metadata_does_not_know() {
    let strict = LOCAL_EXAMPLE.replace("e164 = true", "e164 = \"valid\"");
    assert_ne!(strict, LOCAL_EXAMPLE);
    let e = env_with(&strict);
    let d = deliveries("text_wa_id_unknown_range_es_mx.json").remove(0);
    let Outcome::DeadLetter(reason) = e.sync.handle(&d).await else {
        panic!("refused")
    };
    assert!(
        reason.contains("`phone`") && reason.contains("`e164`"),
        "{reason}"
    );
    assert!(reason.contains("phone metadata"), "{reason}");
    // Known numbers still pass the strict mapping.
    post(&e, "user_preferences_signup_es_mx.json").await;
}

/// Each contact write of an unverified phone is counted (`metric=phone_unverified`), masked.
#[tokio::test]
async fn unverified_phones_are_counted_in_a_metric() {
    let logs = wabridge_tests::LogBuffer::default();
    let subscriber = wabridge_core::telemetry::lambda_subscriber(logs.clone(), Some("info"));
    let _guard = tracing::subscriber::set_default(subscriber);
    let e = env();
    post(&e, "text_wa_id_unknown_range_es_mx.json").await;
    post(&e, "user_preferences_signup_es_mx.json").await;
    post(&e, "bsuid_only_in_contacts_es_cl.json").await;
    let text = logs.text();
    let counted: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["fields"]["metric"] == "phone_unverified")
        .collect();
    assert_eq!(counted.len(), 1, "{text}");
    assert!(!text.contains("8221234567"), "phones are masked: {text}");
}

/// Numbers people type stay strict: the wa_id crm-sync keeps is refused as a send's `to` and as
/// a consent's contact.
#[test]
fn typed_numbers_in_a_range_the_metadata_does_not_know_are_refused() {
    use wabridge_core::consent::ContactRef;
    use wabridge_core::sends::request::SendRequest;
    let send = |to: &str| {
        SendRequest::parse(
            json!({"to": to, "template": "order_confirmation", "language": "es_MX",
                   "category": "utility"})
            .to_string()
            .as_bytes(),
        )
    };
    let refused = send("+52 822 123 4567").unwrap_err();
    assert!(
        refused.to_string().contains("valid phone number"),
        "{refused}"
    );
    assert!(send("+52 55 1234 5678").is_ok());
    assert!(ContactRef::parse_phone("+528221234567").is_none());
    assert!(ContactRef::parse_phone("5218221234567").is_none());
    assert!(ContactRef::parse_phone("+525512345678").is_some());
}
