//! The policy guards fed by webhooks: STOP keywords and `user_preferences` stop marketing until
//! an opt-in, template status updates pause and resume sends, and inbound messages open the
//! 24-hour window.

use serde_json::{json, Value};
use wabridge_tests::prism::Prism;

use super::*;

#[tokio::test]
async fn stop_keywords_and_user_preferences_stop_marketing_until_an_opt_in() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));
    let earlier = Some("2026-01-01T00:00:00Z");

    for (n, (number, wa_id, word)) in [
        ("+525512340011", "5215512340011", "STOP"),
        ("+525512340012", "5215512340012", "baja"),
    ]
    .into_iter()
    .enumerate()
    {
        consent(&gw, number, "opt_in", earlier).await;
        send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;
        inbound(
            &gw,
            wa_id,
            None,
            &format!("wamid.stop.{n}"),
            word,
            now_s() - 5,
        )
        .await;
        let (status, v) = send(&gw, template(number, "promo_verano", "MARKETING")).await;
        assert_eq!(status, 422, "{word}: {v}");
        assert_eq!(v["error"]["code"], "marketing_opted_out", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("keyword"),
            "{v}"
        );
        // Utility templates are not marketing: still allowed.
        send_ok(&gw, template(number, "order_confirmation", "UTILITY")).await;
        // A later opt-in resumes marketing: through the API, or the contact writes ALTA.
        if n == 0 {
            consent(&gw, number, "opt_in", None).await;
        } else {
            inbound(&gw, wa_id, None, "wamid.alta.1", "ALTA", now_s() - 1).await;
        }
        send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;
    }

    // `user_preferences`: stop, then resume.
    let number = "+525512340013";
    consent(&gw, number, "opt_in", earlier).await;
    preference(&gw, "5215512340013", "stop", now_s() - 10).await;
    let (status, v) = send(&gw, template(number, "promo_verano", "MARKETING")).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "marketing_opted_out");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_preferences"),
        "{v}"
    );
    preference(&gw, "5215512340013", "resume", now_s() - 5).await;
    send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;

    // The consent history shows each change once.
    let r = http_client()
        .get(format!("{}/consents?to=%2B525512340011", gw.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let history: Value = r.json().await.unwrap();
    let sources: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["web_form", "keyword", "web_form"], "{history}");
    assert_eq!(history["marketing"], "opted_in");
}

#[tokio::test]
async fn template_status_updates_pause_and_resume_sends() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));
    let t0 = now_s() - 100;

    send_ok(
        &gw,
        template("+525512340021", "recordatorio_cita", "UTILITY"),
    )
    .await;
    template_status(&gw, "recordatorio_cita", "PAUSED", t0).await;
    let (status, v) = send(
        &gw,
        template("+525512340021", "recordatorio_cita", "UTILITY"),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "template_not_sendable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("PAUSED"),
        "{v}"
    );
    // Another template is not affected.
    send_ok(
        &gw,
        template("+525512340021", "order_confirmation", "UTILITY"),
    )
    .await;
    template_status(&gw, "recordatorio_cita", "APPROVED", t0 + 10).await;
    send_ok(
        &gw,
        template("+525512340021", "recordatorio_cita", "UTILITY"),
    )
    .await;
    // An older PAUSED delivered late changes nothing.
    template_status(&gw, "recordatorio_cita", "PAUSED", t0 + 5).await;
    send_ok(
        &gw,
        template("+525512340022", "recordatorio_cita", "UTILITY"),
    )
    .await;
}

#[tokio::test]
async fn an_inbound_message_opens_the_24_hour_window_under_phone_and_bsuid() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));

    let text = |to: Value| {
        let mut b = json!({"text": "Hola Ana, ¿en qué te ayudamos?"});
        b.as_object_mut()
            .unwrap()
            .extend(to.as_object().unwrap().clone());
        b
    };
    let (status, v) = send(&gw, text(json!({"to": "+525512340031"}))).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "outside_customer_service_window");
    let (status, _) = send(&gw, text(json!({"recipient": "MX.win31"}))).await;
    assert_eq!(status, 422);

    // A message 2 hours old opens the window (for its phone and its BSUID)...
    inbound(
        &gw,
        "5215512340031",
        Some("MX.win31"),
        "wamid.win.1",
        "Hola",
        now_s() - 7200,
    )
    .await;
    let id = send_ok(&gw, text(json!({"to": "+525512340031"}))).await;
    wait_state(&gw, &id, "sent").await;
    send_ok(&gw, text(json!({"recipient": "MX.win31"}))).await;
    // ... a message 25 hours old does not.
    inbound(
        &gw,
        "5215512340032",
        None,
        "wamid.win.2",
        "Hola",
        now_s() - 25 * 3600,
    )
    .await;
    let (status, v) = send(&gw, text(json!({"to": "+525512340032"}))).await;
    assert_eq!(status, 422, "{v}");
}
