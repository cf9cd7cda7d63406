//! Idempotency: one send per key, even under concurrent duplicates; another body under the same
//! key is a conflict.

use wabridge_core::sends::store::SendState;

use super::*;

#[tokio::test]
async fn same_idempotency_key_never_sends_twice_even_under_concurrent_duplicates() {
    let s = setup().await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let sends = s.sends.clone();
        tasks.push(tokio::spawn(async move {
            sends
                .submit(UTILITY.as_bytes(), Some("order-1042"))
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one send for one key: {ids:?}");
    drain(&s).await;
    assert_eq!(
        s.meta.received.lock().unwrap().len(),
        1,
        "Meta got exactly one request"
    );
    assert_eq!(s.sends.get(&ids[0]).await.unwrap().state, SendState::Sent);
    // Retried after it was sent: same id, nothing new sent.
    let again = s
        .sends
        .submit(UTILITY.as_bytes(), Some("order-1042"))
        .await
        .unwrap();
    assert_eq!(again.id, ids[0]);
    drain(&s).await;
    assert_eq!(s.meta.received.lock().unwrap().len(), 1);
    // Same key, another body: 409.
    let other = UTILITY.replace("1042", "1043");
    let e = s
        .sends
        .submit(other.as_bytes(), Some("order-1042"))
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (409, "conflict"));
    // No key: two sends.
    let a = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    let b = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    assert_ne!(a.id, b.id);
}
