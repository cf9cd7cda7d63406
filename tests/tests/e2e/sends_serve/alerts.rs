//! Business alerts on the local engine, through the real binary: sends through the sender
//! (Prism behind the front), Meta's webhooks, then `wabridge report health` over the same
//! SQLite store. What would break it: a send outcome not counted (or counted again for a
//! redelivered status), a quality or template webhook not reaching the alert state, the report
//! not reading it, a full business number in the report or the log.

use serde_json::{json, Value};
use wabridge_tests::prism::Prism;

use super::*;

fn health(gw: &Gateway, format: &str) -> String {
    gw.cli_ok(&["report", "health", "--window", "24h", "--format", format])
}

#[tokio::test]
async fn health_shows_a_red_number_a_paused_template_and_the_failed_send_rate() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));

    // Three sends: two accepted by Meta (Prism), one refused (131026 from the front).
    let ok1 = send_ok(
        &gw,
        template("+525512340101", "order_confirmation", "UTILITY"),
    )
    .await;
    let ok2 = send_ok(
        &gw,
        template("+525512340102", "order_confirmation", "UTILITY"),
    )
    .await;
    let bad = send_ok(
        &gw,
        template(UNDELIVERABLE, "order_confirmation", "UTILITY"),
    )
    .await;
    let sent = wait_state(&gw, &ok1, "sent").await;
    wait_state(&gw, &ok2, "sent").await;
    wait_state(&gw, &bad, "failed").await;
    // Meta then drops one of the accepted ones: a `failed` status, delivered twice.
    let wamid = sent["wamid"]
        .as_str()
        .unwrap_or("wamid.alerts.1")
        .to_string();
    for _ in 0..2 {
        status(
            &gw,
            &ok1,
            &wamid,
            "5215512340101",
            "failed",
            json!([{"code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement."}]),
        )
        .await;
    }
    // The number is flagged (its quality went RED), and a template is paused: each twice.
    for _ in 0..2 {
        webhook(
            &gw,
            "phone_number_quality_update",
            json!({"display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_2K"}),
        )
        .await;
        template_status(&gw, "promo_julio", "PAUSED", now_s()).await;
    }

    let report: Value = serde_json::from_str(&health(&gw, "json")).unwrap();
    assert_eq!(report["sends"]["attempted"], 3, "{report}");
    assert_eq!(
        report["sends"]["failed"], 2,
        "one failed at the API, one by Meta's status (counted once): {report}"
    );
    let rate = report["sends"]["failed_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{report}");
    let numbers = report["numbers"].as_array().unwrap();
    assert_eq!(numbers.len(), 1, "{report}");
    assert_eq!(numbers[0]["rating"], "RED", "{report}");
    assert_eq!(numbers[0]["event"], "FLAGGED", "{report}");
    assert_eq!(numbers[0]["number"], "155******81", "masked: {report}");
    let templates = report["templates"].as_array().unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t["name"] == "promo_julio" && t["status"] == "PAUSED"),
        "{report}"
    );
    assert!(templates.iter().all(|t| t["status"] != "APPROVED"));

    let table = health(&gw, "table");
    assert!(
        table.contains("155******81") && table.contains("RED"),
        "{table}"
    );
    assert!(
        table.contains("promo_julio") && table.contains("PAUSED"),
        "{table}"
    );
    assert!(table.contains("3 attempted, 2 failed"), "{table}");
    let out = gw.cli(&["report", "health", "--format", "csv"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));

    // The warn lines name the alert, never the whole business number.
    let logs = gw.logs().join("\n");
    assert!(logs.contains("number_quality"), "{logs}");
    assert!(logs.contains("template_blocked"), "{logs}");
    assert!(!logs.contains("15550783881"), "a full number in the log");
}
