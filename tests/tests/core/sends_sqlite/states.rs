//! A send's state machine from 202 to read or failed: forward only, whatever order Meta's
//! statuses arrive in.

use serde_json::json;
use wabridge_core::sends::store::SendState;

use super::*;

#[tokio::test]
async fn state_machine_from_202_to_read_or_failed() {
    let s = setup().await;
    let r = s
        .sends
        .submit(UTILITY.as_bytes(), Some("k1"))
        .await
        .unwrap();
    assert_eq!(r.state, SendState::Queued);
    drain(&s).await;
    let sent = s.sends.get(&r.id).await.unwrap();
    assert_eq!(sent.state, SendState::Sent);
    assert_eq!(sent.wamid.as_deref(), Some("wamid.T1"));
    let body = s.meta.received.lock().unwrap()[0].clone();
    assert_eq!(body["biz_opaque_callback_data"], r.id.as_str());
    let status = |st: &str| {
        json!({"id": "wamid.T1", "status": st, "timestamp": "1767000000",
        "recipient_id": "5215512345678", "biz_opaque_callback_data": r.id})
    };
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("delivered")))
            .await
            .unwrap(),
        Some((r.id.clone(), true))
    );
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("read")))
            .await
            .unwrap(),
        Some((r.id.clone(), true))
    );
    // Late and redelivered statuses change nothing.
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("delivered")))
            .await
            .unwrap(),
        Some((r.id.clone(), false))
    );
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("sent")))
            .await
            .unwrap(),
        Some((r.id.clone(), false))
    );
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(status("read")))
            .await
            .unwrap(),
        Some((r.id.clone(), false))
    );
    assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Read);
    // Not ours: ignored.
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(
                json!({"id": "wamid.other", "status": "read"})
            ))
            .await
            .unwrap(),
        None
    );

    // Failed after sent, with Meta's error.
    let r2 = s
        .sends
        .submit(UTILITY.as_bytes(), Some("k2"))
        .await
        .unwrap();
    drain(&s).await;
    let failed = json!({"id": "wamid.T2", "status": "failed", "timestamp": "1767000001", "recipient_id": "5215512345678",
        "biz_opaque_callback_data": r2.id, "errors": [{"code": 131026, "title": "Message undeliverable",
        "error_data": {"details": "Receiver is incapable of receiving this message"}}]});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(failed))
            .await
            .unwrap(),
        Some((r2.id.clone(), true))
    );
    let got = s.sends.get(&r2.id).await.unwrap();
    assert_eq!(got.state, SendState::Failed);
    let e = got.error.unwrap();
    assert_eq!(e.code, "meta_131026");
    assert!(e.message.contains("Message undeliverable"));
    // `read` cannot follow `failed`.
    let read = json!({"id": "wamid.T2", "status": "read", "biz_opaque_callback_data": r2.id});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(read))
            .await
            .unwrap(),
        Some((r2.id.clone(), false))
    );
    // A `read` that beats the sender's own `sent` write still moves forward.
    let r3 = s
        .sends
        .submit(UTILITY.as_bytes(), Some("k3"))
        .await
        .unwrap();
    let early = json!({"id": "wamid.early", "status": "read", "biz_opaque_callback_data": r3.id});
    assert_eq!(
        s.sends
            .apply_status(&wabridge_tests::model(early))
            .await
            .unwrap(),
        Some((r3.id.clone(), true))
    );
    drain(&s).await;
    assert_eq!(s.sends.get(&r3.id).await.unwrap().state, SendState::Read);
    assert_eq!(
        s.meta.received.lock().unwrap().len(),
        2,
        "a send already read is not sent again"
    );
}
