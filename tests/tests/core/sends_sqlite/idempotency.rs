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

/// `POST /sends` writes its queue message first: when the queue is down the call fails and
/// nothing is stored, so no send waits `queued` for a message that never comes (before, the
/// record was stored first and stayed `queued` for ever). A queue message whose send was never
/// stored waits out the grace for the store write, then is dropped.
#[tokio::test]
async fn a_failed_enqueue_stores_nothing_and_an_orphan_message_is_dropped_after_its_grace() {
    use wabridge_core::sends::error::SendsError;
    use wabridge_core::sends::sender::ORPHAN_GRACE;
    use wabridge_core::sends::service::{queue_body, NoEvents};
    let s = setup().await;
    let down = Sends::new(
        s.sends.store.clone(),
        Arc::new(wabridge_tests::faults::FailingQueue::new(
            s.queue.clone(),
            1,
            0,
        )),
        s.sends.policy.clone(),
        Arc::new(NoEvents),
        wabridge_tests::admin_keys("k"),
    );
    let e = down.submit(UTILITY.as_bytes(), None).await.unwrap_err();
    assert!(matches!(e, SendsError::Store(_)), "{e:?}");
    let db = rusqlite::Connection::open(s._dir.path().join("wabridge.sqlite")).unwrap();
    let stored: i64 = db
        .query_row("SELECT count(*) FROM sends", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored, 0,
        "nothing stored when the queue refused the message"
    );

    let now = wabridge_core::clock::now_ms();
    let orphan = |age: Duration| Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: queue_body("snd_never_stored"),
        receive_count: 1,
        enqueued_at: Some(now - age.as_millis() as i64),
    };
    assert!(matches!(
        s.sender.handle(&orphan(Duration::from_secs(1))).await,
        Outcome::Retry { .. }
    ));
    assert_eq!(
        s.sender.handle(&orphan(ORPHAN_GRACE)).await,
        Outcome::Done,
        "dropped once the store write can no longer come"
    );
    assert!(s.meta.received.lock().unwrap().is_empty());
}
