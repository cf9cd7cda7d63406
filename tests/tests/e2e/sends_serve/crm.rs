//! Sends that end in the sender reach the CRM exactly once.

use std::time::Duration;

use serde_json::json;
use wabridge_tests::prism::Prism;

use super::*;

/// Sends that end in the sender (refused by a guard that changed while they waited, failed at
/// Meta's API, Meta's 131050) each reach the CRM as exactly one outbound activity (and 131050 as
/// a consent record), also when their events are delivered again.
#[tokio::test]
async fn sends_ended_by_the_sender_reach_the_crm_exactly_once() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();

    // No Graph API configured: sends wait on the queue.
    let gw = start(dir.path(), None);
    let number = "+525512340041";
    consent(&gw, number, "opt_in", Some("2026-01-01T00:00:00Z")).await;
    let refused = send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;
    // The contact opts out while the send waits.
    consent(&gw, number, "opt_out", None).await;
    assert!(gw.terminate());

    let gw = start(dir.path(), Some(&front.url));
    let v = wait_state(&gw, &refused, "refused").await;
    assert_eq!(v["error"]["code"], "marketing_opted_out", "{v}");
    let failed = send_ok(
        &gw,
        template(UNDELIVERABLE, "order_confirmation", "UTILITY"),
    )
    .await;
    let v = wait_state(&gw, &failed, "failed").await;
    assert_eq!(v["error"]["code"], "meta_131026", "{v}");
    consent(&gw, STOPPED_AT_META, "opt_in", Some("2026-01-01T00:00:00Z")).await;
    let stopped = send_ok(&gw, template(STOPPED_AT_META, "promo_verano", "MARKETING")).await;
    let v = wait_state(&gw, &stopped, "failed").await;
    assert_eq!(v["error"]["code"], "meta_131050", "{v}");

    let records = wabridge_tests::eventually(
        "three send_result activities, the 131050 consent and the three API consents",
        Duration::from_secs(20),
        || async {
            gw.wait_drained();
            let r = gw.records();
            let results = r.iter().filter(|r| r["type"] == "send_result").count();
            let from_meta = r
                .iter()
                .filter(|r| r["kind"] == "consent" && r["source"] == "meta_error")
                .count();
            let from_api = r
                .iter()
                .filter(|r| r["kind"] == "consent" && r["source"] == "web_form")
                .count();
            (results == 3 && from_meta == 1 && from_api == 3).then_some(r)
        },
    )
    .await;
    let a = outbound(&records, &refused);
    assert_eq!(a.len(), 1, "{records:#?}");
    assert_eq!(a[0]["status"], "refused");
    assert_eq!(a[0]["direction"], "outbound");
    assert_eq!(a[0]["errors"][0]["title"], "marketing_opted_out");
    assert!(a[0]["contact_id"].as_str().is_some_and(|c| !c.is_empty()));
    let b = outbound(&records, &failed);
    assert_eq!(b.len(), 1, "{records:#?}");
    assert_eq!(b[0]["status"], "failed");
    assert_eq!(b[0]["errors"][0]["code"], 131026);
    assert_eq!(b[0]["errors"][0]["title"], "meta_131026");
    let c = outbound(&records, &stopped);
    assert_eq!(c.len(), 1, "{records:#?}");
    assert_eq!(c[0]["errors"][0]["code"], 131050);
    let consent_record = records
        .iter()
        .find(|r| r["kind"] == "consent" && r["source"] == "meta_error")
        .unwrap();
    assert_eq!(consent_record["status"], "opt_out");
    assert_eq!(consent_record["source"], "meta_error");
    assert_eq!(consent_record["evidence"]["send_id"], stopped.as_str());
    assert_eq!(consent_record["contact_id"], c[0]["contact_id"]);
    // Meta's opt-out now stops marketing to that number before anything leaves.
    let (status, v) = send(&gw, template(STOPPED_AT_META, "promo_verano", "MARKETING")).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("meta_error"),
        "{v}"
    );

    // Redelivery: the same send_result events on the events queue again change nothing.
    let before = gw.records();
    let db = rusqlite::Connection::open(dir.path().join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    for (id, state, to, code) in [
        (&refused, "refused", number, "marketing_opted_out"),
        (&failed, "failed", UNDELIVERABLE, "meta_131026"),
    ] {
        let event = wabridge_core::sends::events::event(
            format!("send:{id}:{state}"),
            &wabridge_tests::model(json!({"send_id": id, "state": state, "to": to, "at": 1,
                   "error": {"code": code, "message": "again"}})),
        );
        db.execute(
            "INSERT INTO queue_messages (queue, msg_key, body, visible_at, enqueued_at) \
             VALUES ('events', ?1, ?2, 0, 0)",
            rusqlite::params![event.key, event.to_json()],
        )
        .unwrap();
    }
    let opt_out = wabridge_core::sends::events::event(
        format!("send:{stopped}:opted_out"),
        &wabridge_tests::model(
            json!({"send_id": stopped, "opted_out": true, "to": STOPPED_AT_META, "at": 1}),
        ),
    );
    db.execute(
        "INSERT INTO queue_messages (queue, msg_key, body, visible_at, enqueued_at) \
         VALUES ('events', ?1, ?2, 0, 0)",
        rusqlite::params![opt_out.key, opt_out.to_json()],
    )
    .unwrap();
    gw.wait_drained();
    assert_eq!(gw.stats()["events_queue"]["dead"], 0);
    assert_eq!(
        gw.records(),
        before,
        "a redelivered send_result adds nothing"
    );
}
