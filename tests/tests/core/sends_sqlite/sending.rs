//! The sender against Meta: every error class (retried, terminal, 131050, past the retry
//! horizon), and the pair window held across sender instances.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sends::store::SendState;

use super::*;

#[tokio::test]
async fn each_error_class_of_meta() {
    // Retryable: the message goes back with a delay, the send stays queued, then succeeds.
    for code in [130429, 131000, 131056] {
        let s = setup().await;
        s.meta.script.lock().unwrap().push(meta_error(code));
        let r = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
        let outcomes = drain(&s).await;
        assert!(
            matches!(outcomes[0], Outcome::Retry { .. }),
            "{code}: {outcomes:?}"
        );
        if code == 131056 {
            assert!(
                matches!(outcomes[0], Outcome::Retry { after, .. } if after >= Duration::from_secs(6))
            );
        }
        assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Queued);
        // Redelivered (the test makes it visible now rather than waiting for the delay).
        let d = wabridge_core::queue::Delivery {
            message_id: "m".into(),
            receipt: "r".into(),
            body: wabridge_core::sends::service::queue_body(&r.id),
            receive_count: 2,
            enqueued_at: None,
        };
        assert_eq!(s.sender.handle(&d).await, Outcome::Done);
        assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Sent);
    }
    // 5xx without a Meta body: retried.
    let s = setup().await;
    s.meta.script.lock().unwrap().push((503, json!({})));
    s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    assert!(matches!(drain(&s).await[0], Outcome::Retry { .. }));
    // Terminal: failed with the reason, never retried.
    for code in [131026, 131047, 131030, 132000, 132001, 132012] {
        let s = setup().await;
        s.meta.script.lock().unwrap().push(meta_error(code));
        let r = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
        assert_eq!(drain(&s).await, vec![Outcome::Done], "{code}");
        let got = s.sends.get(&r.id).await.unwrap();
        assert_eq!(got.state, SendState::Failed, "{code}");
        let error = got.error.unwrap();
        assert_eq!(error.code, format!("meta_{code}"));
        assert_eq!(error.message, format!("error {code}: details"));
        assert_eq!(s.meta.received.lock().unwrap().len(), 1);
    }
    // 131050: failed, and a marketing opt-out is recorded.
    let s = setup().await;
    s.sends.record_consent(br#"{"to": "+525512345678", "action": "opt_in", "source": "web_form", "at": "2026-01-01T00:00:00Z"}"#, None).await.unwrap();
    s.meta.script.lock().unwrap().push(meta_error(131050));
    let r = s.sends.submit(MARKETING.as_bytes(), None).await.unwrap();
    drain(&s).await;
    assert_eq!(s.sends.get(&r.id).await.unwrap().state, SendState::Failed);
    let history = s.sends.consents(Some("+525512345678"), None).await.unwrap();
    assert_eq!(history["marketing"], "opted_out");
    assert_eq!(history["history"][1]["source"], "meta_error");
    let e = s
        .sends
        .submit(MARKETING.as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "marketing_opted_out"));
    // A send still queued past the sends' retry horizon ends failed without reaching Meta.
    let s = setup().await;
    let r = s.sends.submit(UTILITY.as_bytes(), None).await.unwrap();
    let late = Sender::new(
        s.sends.clone(),
        s.sender.graph.clone(),
        s.sender.limiter.clone(),
    )
    .with_policy(RetryPolicy {
        horizon: Duration::from_millis(1),
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let d = s.queue.receive(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(late.handle(&d[0]).await, Outcome::Done);
    let got = s.sends.get(&r.id).await.unwrap();
    assert_eq!(got.state, SendState::Failed);
    let error = got.error.unwrap();
    assert_eq!(error.code, "retry_horizon");
    assert!(
        error
            .message
            .starts_with("not sent within the 1ms retry horizon"),
        "{}",
        error.message
    );
    assert!(s.meta.received.lock().unwrap().is_empty());
}

/// Two sender instances, each with its own in-memory limiter (as two Lambda instances have),
/// share the store: a second message to one recipient within the pair interval is held back by
/// the store's pair window instead of reaching Meta. Without the window the second instance's
/// limiter, which never saw the first message, would send it at once.
#[tokio::test]
async fn the_pair_window_holds_across_sender_instances() {
    let s = setup().await;
    let instance = || {
        Sender::new(
            s.sends.clone(),
            s.sender.graph.clone(),
            Arc::new(RateLimiter::new(1000.0, Duration::from_secs(6))),
        )
    };
    let (one, two) = (instance(), instance());
    s.sends.submit(UTILITY.as_bytes(), Some("a")).await.unwrap();
    s.sends.submit(UTILITY.as_bytes(), Some("b")).await.unwrap();
    let batch = s.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 2);
    let first = one.handle(&batch[0]).await;
    assert!(matches!(first, Outcome::Done), "{first:?}");
    match two.handle(&batch[1]).await {
        Outcome::Retry { after, .. } => assert!(
            after > Duration::from_secs(5) && after <= Duration::from_secs(6),
            "{after:?}"
        ),
        other => panic!("the second message to the recipient was not held back: {other:?}"),
    }
    assert_eq!(
        s.meta.received.lock().unwrap().len(),
        1,
        "Meta got one message"
    );
}
