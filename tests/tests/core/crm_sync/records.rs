//! What each event becomes at the CRM: status activities (forward only), dead letters for records
//! breaking a mapping rule, consent records, template, quality and unknown records.

use serde_json::json;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::queue::Delivery;

use super::*;

#[tokio::test]
async fn statuses_only_move_forward_and_failed_keeps_its_error() {
    let e = env();
    let to = "5215512345678";
    for (suffix, st) in [
        ("sent", "sent"),
        ("read", "read"),
        ("delivered", "delivered"),
    ] {
        assert_eq!(
            e.sync
                .handle(&delivery(status(suffix, "wamid.OUT1", to, st)))
                .await,
            Outcome::Done
        );
    }
    let acts = lines(&e.records, "activity").await;
    assert_eq!(acts.len(), 1, "one activity per outbound message: {acts:?}");
    assert_eq!(
        acts[0]["status"], "read",
        "a late delivered after read changes nothing"
    );
    assert_eq!(acts[0]["direction"], "outbound");
    assert_eq!(acts[0]["type"], "status");
    assert_eq!(acts[0]["event_id"], "wamid.OUT1:read");
    // The unknown recipient became a contact the activity points to.
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(acts[0]["contact_id"], contacts[0]["id"]);

    for (suffix, st) in [("sent", "sent"), ("failed", "failed"), ("read", "read")] {
        assert_eq!(
            e.sync
                .handle(&delivery(status(suffix, "wamid.OUT2", to, st)))
                .await,
            Outcome::Done
        );
    }
    let acts = lines(&e.records, "activity").await;
    let failed = acts
        .iter()
        .find(|a| a["message_id"] == "wamid.OUT2")
        .unwrap();
    assert_eq!(failed["status"], "failed", "failed is terminal");
    assert_eq!(failed["errors"][0]["code"], 131026);
}

#[tokio::test]
async fn records_breaking_a_rule_are_dead_lettered_with_field_and_rule() {
    let e = env_with(
        "version = 1\n[[contact]]\nto = \"nombre\"\nfrom = \"name\"\nmax_length = 5\n[[activity]]\nto = \"body\"\nfrom = \"text\"\nrequired = true",
    );
    let long_name = message(
        "wamid.v1",
        Some("5215512345678"),
        None,
        "Maximiliano",
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    match e.sync.handle(&delivery(long_name)).await {
        Outcome::DeadLetter(reason) => {
            assert!(
                reason.contains("`nombre`") && reason.contains("max_length"),
                "{reason}"
            );
        }
        other => panic!("expected a dead letter, got {other:?}"),
    }
    let no_text = message(
        "wamid.v2",
        Some("5215512345678"),
        None,
        "Ana",
        json!({"type": "image", "image": {"id": "MEDIA1"}}),
    );
    match e.sync.handle(&delivery(no_text)).await {
        Outcome::DeadLetter(reason) => assert!(
            reason.contains("`body`") && reason.contains("required"),
            "{reason}"
        ),
        other => panic!("expected a dead letter, got {other:?}"),
    }
    // Nothing reached the CRM.
    assert_eq!(e.records.count(None).await.unwrap(), 0);
    // A body that is not an event is dead-lettered too, never retried forever.
    let bad = Delivery {
        message_id: "x".into(),
        receipt: "r".into(),
        body: "{".into(),
        receive_count: 1,
        enqueued_at: None,
    };
    assert!(matches!(e.sync.handle(&bad).await, Outcome::DeadLetter(_)));
}

#[tokio::test]
async fn consent_keywords_and_user_preferences_become_consent_records() {
    let e = env();
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.k1", "5491123456789", "BAJA")))
            .await,
        Outcome::Done
    );
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.k2", "5511987654321", "sair")))
            .await,
        Outcome::Done
    );
    let pref = json!({"v": 1, "key": "pref:5215512345678:1763780000:stop", "kind": "user_preference",
        "field": "user_preferences", "waba_id": "W1",
        "item": {"wa_id": "5215512345678", "detail": "User requested to stop marketing messages",
                 "category": "marketing_messages", "value": "stop", "timestamp": 1763780000},
        "received_at": 1763780000000i64});
    assert_eq!(e.sync.handle(&delivery(pref)).await, Outcome::Done);
    let consents = lines(&e.records, "consent").await;
    assert_eq!(consents.len(), 3, "{consents:?}");
    assert!(consents.iter().all(|c| c["status"] == "opt_out"));
    assert_eq!(consents[0]["source"], "keyword");
    assert_eq!(consents[0]["evidence"]["keyword"], "BAJA");
    assert_eq!(consents[2]["source"], "user_preferences");
    assert_eq!(consents[2]["category"], "marketing_messages");
    // The user_preferences sender had no contact yet: one was created for the consent.
    assert_eq!(lines(&e.records, "contact").await.len(), 3);
}

#[tokio::test]
async fn template_quality_and_unknown_events_become_their_records() {
    let e = env();
    let tpl = json!({"v": 1, "key": "tpl:1:APPROVED:1", "kind": "template_status", "field": "message_template_status_update",
        "waba_id": "W1", "entry_time": 1763780000, "item": {"event": "APPROVED", "message_template_id": 123,
        "message_template_name": "promo_es", "message_template_language": "es_MX", "reason": "NONE"}, "received_at": 1});
    let q = json!({"v": 1, "key": "q:1", "kind": "quality_update", "field": "phone_number_quality_update",
        "waba_id": "W1", "item": {"display_phone_number": "5215500000000", "event": "FLAGGED", "current_limit": "TIER_1K"}, "received_at": 1});
    let u = json!({"v": 1, "key": "u:1", "kind": "unknown", "field": "account_alerts",
        "waba_id": "W1", "item": {"alert": "x"}, "received_at": 1});
    for ev in [tpl, q, u] {
        assert_eq!(e.sync.handle(&delivery(ev)).await, Outcome::Done);
    }
    let t = &lines(&e.records, "template_status").await[0];
    assert_eq!(t["template_id"], "123");
    assert_eq!(t["event"], "APPROVED");
    assert_eq!(lines(&e.records, "quality").await[0]["event"], "FLAGGED");
    let u = &lines(&e.records, "unknown").await[0];
    assert_eq!(u["field"], "account_alerts");
    assert_eq!(u["raw"]["alert"], "x");
}
