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
    // 429 with Retry-After: the CRM's delay (too long to wait in process) goes to the queue.
    let rig = rig("webhook", Fake::default()).await;
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::RateLimit; 3]);
    match rig.sync.handle(&delivery(&text_event(2, 10), 1)).await {
        Outcome::RetryAfter(d) => assert!(d <= Duration::from_secs(1), "{d:?}"),
        other => panic!("429 → retry, got {other:?}"),
    }
    // 5xx three times in a row: back to the queue with backoff (receive 3 → at most 4 s).
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::ServerError; 3]);
    match rig.sync.handle(&delivery(&text_event(3, 10), 3)).await {
        Outcome::RetryAfter(d) => assert!(
            d >= Duration::from_millis(200) && d <= Duration::from_secs(4),
            "{d:?}"
        ),
        other => panic!("5xx → retry, got {other:?}"),
    }
    // Timeouts: retried too.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .extend([Fault::SlowBefore; 3]);
    assert!(matches!(
        rig.sync.handle(&delivery(&text_event(4, 10), 1)).await,
        Outcome::RetryAfter(_)
    ));
    // A 4xx rejection: dead letter with the reason, no retries.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .push_back(Fault::BadRequest);
    match rig.sync.handle(&delivery(&text_event(5, 10), 1)).await {
        Outcome::DeadLetter(reason) => assert!(
            reason.contains("HTTP 400") && reason.contains("webhook"),
            "{reason}"
        ),
        other => panic!("400 → dead letter, got {other:?}"),
    }
    // One blip is absorbed in process.
    rig.fake
        .scripted
        .lock()
        .unwrap()
        .push_back(Fault::ServerError);
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(6, 10), 1)).await,
        Outcome::Done
    );
    // Everything that failed is delivered exactly once when it is retried.
    for i in 2..=4 {
        assert_eq!(
            rig.sync.handle(&delivery(&text_event(i, 10), 2)).await,
            Outcome::Done
        );
    }
    let hooks = rig.fake.hooks.lock().unwrap().clone();
    for i in [2, 3, 4, 6] {
        assert_eq!(
            hooks.get(&format!("wamid.T{i}#activity")),
            Some(&1),
            "event {i}: {hooks:?}"
        );
    }
    assert_eq!(hooks.get("wamid.T5#activity"), None);
}
