//! The webhook CRM: signed canonical records, error classes.

use std::collections::HashMap;
use std::time::Duration;

use wabridge_core::consumer::{Handler, Outcome};

use super::*;

#[tokio::test]
async fn webhook_posts_signed_canonical_records_with_stable_ids() {
    let rig = rig("webhook", Fake::default()).await;
    let ev = text_event(1, 10);
    assert_eq!(rig.sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(
        rig.sync.handle(&delivery(&ev, 1)).await,
        Outcome::Done,
        "redelivery"
    );
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let hooks = rig.fake.hooks.lock().unwrap().clone();
    assert_eq!(
        hooks,
        HashMap::from([
            ("wamid.T1#contact".into(), 1),
            ("wamid.T1#activity".into(), 1)
        ])
    );
    let bodies = rig.fake.hook_bodies.lock().unwrap().clone();
    let contact = bodies.iter().find(|b| b["kind"] == "contact").unwrap();
    assert_eq!(contact["phone_e164"], "+525500000001");
    assert_eq!(contact["wa_id"], "5215500000001");
    assert_eq!(contact["fields"]["external_id"], "+525500000001");
    let activity = bodies.iter().find(|b| b["kind"] == "activity").unwrap();
    assert_eq!(activity["contact_id"], contact["id"]);
    assert_eq!(activity["event_id"], "wamid.T1");
    assert_eq!(activity["type"], "text");
    assert_eq!(activity["fields"]["channel"], "whatsapp");
}

#[tokio::test]
async fn webhook_error_classes_map_to_outcomes() {
    // Each failing class is followed by a success (the retry of what failed), so that the
    // failures never run OPEN_AFTER in a row: the circuit breaker has its own tests.
    let rig = rig("webhook", Fake::default()).await;
    let script = |faults: &[Fault]| {
        rig.fake
            .scripted
            .lock()
            .unwrap()
            .extend(faults.iter().cloned())
    };
    let sync = &rig.sync;
    let retried = |i| async move {
        assert_eq!(
            sync.handle(&delivery(&text_event(i, 10), 2)).await,
            Outcome::Done,
            "event {i} retried"
        );
    };
    // 429 without a delay, three times: back to the queue with the first backoff (< 1 s).
    script(&[Fault::RateLimit; 3]);
    match rig.sync.handle(&delivery(&text_event(2, 10), 1)).await {
        Outcome::Retry { after, reason } => {
            assert!(after <= Duration::from_secs(1), "{after:?}");
            assert!(reason.contains("rate limited"), "{reason}");
        }
        other => panic!("429 → retry, got {other:?}"),
    }
    retried(2).await;
    // 5xx three times in a row: back to the queue with backoff (receive 3 → 200 ms to 4 s).
    script(&[Fault::ServerError; 3]);
    match rig.sync.handle(&delivery(&text_event(3, 10), 3)).await {
        Outcome::Retry { after, .. } => assert!(
            after >= Duration::from_millis(200) && after <= Duration::from_secs(4),
            "{after:?}"
        ),
        other => panic!("5xx → retry, got {other:?}"),
    }
    retried(3).await;
    // Timeouts: retried too.
    script(&[Fault::SlowBefore; 3]);
    assert!(matches!(
        rig.sync.handle(&delivery(&text_event(4, 10), 1)).await,
        Outcome::Retry { .. }
    ));
    retried(4).await;
    // 401 and 403: our credentials broke, not the event: it waits (no quick retries).
    for fault in [Fault::Unauthorized, Fault::Forbidden] {
        script(&[fault]);
        match rig.sync.handle(&delivery(&text_event(7, 10), 1)).await {
            Outcome::Retry { reason, .. } => assert!(reason.contains("credentials"), "{reason}"),
            other => panic!("401/403 → retry, got {other:?}"),
        }
    }
    retried(7).await;
    // A 4xx rejection: dead letter with the reason, no retries.
    script(&[Fault::BadRequest]);
    match rig.sync.handle(&delivery(&text_event(5, 10), 1)).await {
        Outcome::DeadLetter(reason) => assert!(
            reason.contains("HTTP 400") && reason.contains("webhook"),
            "{reason}"
        ),
        other => panic!("400 → dead letter, got {other:?}"),
    }
    // One blip is absorbed in process.
    script(&[Fault::ServerError]);
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(6, 10), 1)).await,
        Outcome::Done
    );
    assert!(!rig.sync.breaker().stats().open);
    let hooks = rig.fake.hooks.lock().unwrap().clone();
    for i in [2, 3, 4, 6, 7] {
        assert_eq!(
            hooks.get(&format!("wamid.T{i}#activity")),
            Some(&1),
            "event {i}: {hooks:?}"
        );
    }
    assert_eq!(hooks.get("wamid.T5#activity"), None);
}
