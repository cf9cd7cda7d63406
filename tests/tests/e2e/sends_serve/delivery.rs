//! Delivery tracking: a send moves forward with its status webhooks (never back) and lands in
//! the CRM as one outbound activity with its final state.

use serde_json::{json, Value};
use wabridge_tests::prism::Prism;

use super::*;

#[tokio::test]
async fn a_send_moves_forward_with_its_status_webhooks_and_lands_in_the_crm() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));

    // 202 → sent (Prism, Meta's spec) → delivered → read.
    let id = send_ok(
        &gw,
        template("+52 1 55 1234 0001", "order_confirmation", "UTILITY"),
    )
    .await;
    wait_state(&gw, &id, "sent").await;
    status(
        &gw,
        &id,
        "wamid.track.1",
        "5215512340001",
        "delivered",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id).await["state"], "delivered");
    status(
        &gw,
        &id,
        "wamid.track.1",
        "5215512340001",
        "read",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id).await["state"], "read");
    // Meta may send only `read`; a `delivered` arriving after it does not move the send back.
    let id3 = send_ok(
        &gw,
        template("+525512340003", "order_confirmation", "UTILITY"),
    )
    .await;
    wait_state(&gw, &id3, "sent").await;
    status(
        &gw,
        &id3,
        "wamid.track.3",
        "5215512340003",
        "read",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id3).await["state"], "read");
    status(
        &gw,
        &id3,
        "wamid.track.3",
        "5215512340003",
        "delivered",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id3).await["state"], "read");

    // A `failed` status ends a sent send failed, with Meta's error.
    let id2 = send_ok(
        &gw,
        template("+525512340002", "order_confirmation", "UTILITY"),
    )
    .await;
    wait_state(&gw, &id2, "sent").await;
    status(
        &gw,
        &id2,
        "wamid.track.2",
        "5215512340002",
        "failed",
        json!([{"code": 131026, "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "The recipient is not on WhatsApp"}}]),
    )
    .await;
    let v = get_send(&gw, &id2).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "meta_131026", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not on WhatsApp"),
        "{v}"
    );

    // The CRM: one outbound activity per send, carrying the send id and the final state.
    let records = gw.records();
    let a = outbound(&records, &id);
    assert_eq!(a.len(), 1, "{records:#?}");
    assert_eq!(a[0]["status"], "read");
    assert_eq!(
        outbound(&records, &id3)[0]["status"],
        "read",
        "{records:#?}"
    );
    assert_eq!(a[0]["direction"], "outbound");
    assert_eq!(a[0]["callback_data"], id.as_str());
    let b = outbound(&records, &id2);
    assert_eq!(b.len(), 1, "{records:#?}");
    assert_eq!(b[0]["status"], "failed");
    assert_eq!(b[0]["errors"][0]["code"], 131026);
}
