//! Every policy guard: marketing opt-in and opt-out, the consent API's validation, the 24-hour
//! window for free-form messages, template status and parameter count, and a guard that changes
//! while the send waits on the queue.

use serde_json::json;
use wabridge_core::consent::ContactRef;
use wabridge_core::sends::store::SendState;

use super::*;

#[tokio::test]
async fn marketing_needs_an_opt_in_and_no_later_opt_out() {
    let s = setup().await;
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_without_opt_in"));
    s.sends
        .record_consent(br#"{"to": "5215512345678", "action": "opt_in", "category": "marketing", "source": "checkout",
            "evidence": "order 1042 checkbox", "at": "2026-01-10T10:00:00Z"}"#, None)
        .await
        .unwrap();
    s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    // The contact writes STOP (the sync handler records it): marketing refused.
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    s.sends
        .policy
        .consent
        .record_stop_keyword(&contact, None, "evt-1", "STOP", now)
        .await
        .unwrap();
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // Utility still goes.
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    // user_preferences resume, then stop.
    s.sends
        .policy
        .consent
        .record_user_preference(&contact, None, "evt-2", "resume", now + 1000)
        .await
        .unwrap();
    s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    s.sends
        .policy
        .consent
        .record_user_preference(&contact, None, "evt-3", "stop", now + 2000)
        .await
        .unwrap();
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // An OLD opt-in registered now does not override the newer stop; the history keeps all.
    s.sends
        .record_consent(br#"{"to": "+525512345678", "action": "opt_in", "source": "store", "at": "2026-01-11T10:00:00Z"}"#, None)
        .await
        .unwrap();
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    let history = s
        .sends
        .consents(Some("+52 55 1234 5678"), None)
        .await
        .unwrap();
    assert_eq!(history["marketing"], "opted_out");
    assert_eq!(history["history"].as_array().unwrap().len(), 5);
    // A redelivered STOP event records nothing new.
    s.sends
        .policy
        .consent
        .record_stop_keyword(&contact, None, "evt-1", "STOP", now)
        .await
        .unwrap();
    let history = s.sends.consents(Some("+525512345678"), None).await.unwrap();
    assert_eq!(history["history"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn consent_api_validates() {
    let s = setup().await;
    for (body, code) in [
        (
            r#"{"action": "opt_in", "source": "store"}"#,
            "missing_recipient",
        ),
        (
            r#"{"to": "x", "action": "opt_in", "source": "store"}"#,
            "invalid_recipient",
        ),
        (
            r#"{"to": "+525512345678", "action": "maybe", "source": "store"}"#,
            "invalid_action",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "keyword"}"#,
            "invalid_source",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "store", "category": "x"}"#,
            "invalid_category",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "store", "at": "yesterday"}"#,
            "invalid_at",
        ),
        (
            r#"{"to": "+525512345678", "action": "opt_in", "source": "store", "at": "2999-01-01T00:00:00Z"}"#,
            "invalid_at",
        ),
        (r#"[1]"#, "invalid_json"),
    ] {
        let e = s
            .sends
            .record_consent(body.as_bytes(), None)
            .await
            .unwrap_err();
        assert_eq!(refusal_code(e), (400, code), "{body}");
    }
}

#[tokio::test]
async fn free_form_only_within_24_hours_of_the_last_inbound() {
    let s = setup().await;
    let text = br#"{"to": "+525512345678", "text": "Hola Ana, ya salio tu pedido"}"#;
    let e = s.sends.submit(text, None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "outside_customer_service_window"));
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    s.sends
        .policy
        .window
        .record_inbound(&contact, None, now - 25 * 3_600_000)
        .await
        .unwrap();
    let e = s.sends.submit(text, None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "outside_customer_service_window"));
    s.sends
        .policy
        .window
        .record_inbound(&contact, None, now - 3_600_000)
        .await
        .unwrap();
    let r = s.sends.submit(text, None).await.unwrap();
    drain(&s).await;
    let got = s.sends.get(&r.id).await.unwrap();
    assert_eq!(got.state, SendState::Sent);
    let body = s.meta.received.lock().unwrap()[0].clone();
    assert_eq!(body["type"], "text");
    // Its status finds the send by wamid (text messages carry no callback data).
    let status = json!({"id": got.wamid.clone().unwrap(), "status": "delivered", "timestamp": "1767000000", "recipient_id": "5215512345678"});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status))
            .await
            .unwrap(),
        Some((r.id.clone(), true))
    );
}

/// The window is the (business number, customer) pair's: a customer who wrote to one number
/// opened none on another; a send naming no number reads the customer's latest message.
#[tokio::test]
async fn each_business_number_has_its_own_window() {
    let s = setup().await;
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    let window = &s.sends.policy.window;
    window
        .record_inbound(&contact, Some("106540352242922"), now - 3_600_000)
        .await
        .unwrap();
    window
        .record_inbound(&contact, Some("206540352242922"), now - 30 * 3_600_000)
        .await
        .unwrap();
    let open = |number: Option<&'static str>| {
        let window = window.clone();
        let contact = contact.clone();
        async move { window.is_open(&contact, number, now).await.unwrap() }
    };
    assert!(
        open(Some("106540352242922")).await,
        "wrote to it an hour ago"
    );
    assert!(!open(Some("206540352242922")).await, "30 hours ago");
    assert!(!open(Some("306540352242922")).await, "never wrote to it");
    assert!(open(None).await, "no number named: the latest message");
}

#[tokio::test]
async fn paused_rejected_disabled_templates_and_wrong_parameter_counts_are_refused() {
    let s = setup().await;
    let registry = &s.sends.policy.templates.implicit();
    for (i, event) in ["PAUSED", "REJECTED", "DISABLED"].into_iter().enumerate() {
        let update = json!({"event": event, "message_template_id": 1, "message_template_name": "order_confirmation",
            "message_template_language": "es_MX", "reason": "NONE"});
        registry
            .apply_status_update(&wabridge_tests::model(update), 1000 + i as i64)
            .await
            .unwrap()
            .unwrap();
        let e = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap_err();
        assert_eq!(refusal_code(e), (422, "template_not_sendable"), "{event}");
    }
    // An older APPROVED arriving late does not undo the newer DISABLED.
    let approved = json!({"event": "APPROVED", "message_template_name": "order_confirmation", "message_template_language": "es_MX"});
    assert!(!registry
        .apply_status_update(&wabridge_tests::model(approved.clone()), 500)
        .await
        .unwrap()
        .unwrap());
    assert!(s.sends.submit(UTILITY.as_bytes(), None).await.is_err());
    assert!(registry
        .apply_status_update(&wabridge_tests::model(approved), 5000)
        .await
        .unwrap()
        .unwrap());
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    // Parameter count, when the registry knows it.
    registry
        .define("order_confirmation", "es_MX", Some("UTILITY"), Some(3))
        .await
        .unwrap();
    let e = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "template_parameter_count"));
    registry
        .define("order_confirmation", "es_MX", Some("UTILITY"), Some(2))
        .await
        .unwrap();
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    // A template the registry knows as MARKETING is marketing whatever the caller says.
    registry
        .define("order_confirmation", "es_MX", Some("MARKETING"), Some(2))
        .await
        .unwrap();
    let e = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_without_opt_in"));
}

#[tokio::test]
async fn a_guard_that_changes_while_queued_refuses_in_the_sender() {
    let s = setup().await;
    s.sends
        .record_consent(
            br#"{"to": "+525512345678", "action": "opt_in", "source": "web_form"}"#,
            None,
        )
        .await
        .unwrap();
    let r = s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    let contact = ContactRef::from_wa_id("5215512345678").unwrap();
    let now = wabridge_core::clock::now_ms();
    s.sends
        .policy
        .consent
        .record_stop_keyword(&contact, None, "evt-9", "BAJA", now + 1)
        .await
        .unwrap();
    drain(&s).await;
    let got = s.sends.get(&r.id).await.unwrap();
    assert_eq!(got.state, SendState::Refused);
    assert_eq!(got.error.unwrap().code, "marketing_opted_out");
    assert!(s.meta.received.lock().unwrap().is_empty(), "nothing left");
}
