//! Fault injection: 30% of calls fail and every event is delivered twice; each reaches the CRM once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::*;

async fn fault_injection(kind: &str) {
    let rig = rig(
        kind,
        Fake {
            fault_rate: 0.30,
            ..Default::default()
        },
    )
    .await;
    let events: Vec<Value> = (0..1000).map(|i| text_event(i, 200)).collect();
    let (dead, elapsed) = drain(&rig, &events, 2, 1, 64).await;
    assert_eq!(dead, 0, "nothing may be dead-lettered");
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let calls = rig.fake.calls.load(Ordering::Relaxed);
    println!("{kind}: 2000 deliveries of 1000 events through 30% faults in {elapsed:?}, {calls} CRM calls");
    match kind {
        "webhook" => {
            let hooks = rig.fake.hooks.lock().unwrap().clone();
            let slow_after = rig.fake.slow_after.lock().unwrap().clone();
            for i in 0..1000 {
                let id = format!("wamid.T{i}#activity");
                let n = hooks.get(&id).copied().unwrap_or(0);
                assert!(n >= 1, "{id} never reached the CRM");
                // A receiver deduplicating on webhook-id sees it once; a second raw post only
                // happens when the first was applied but answered after our timeout.
                assert!(
                    n == 1 || slow_after.contains(&id),
                    "{id} posted {n} times without cause"
                );
            }
            let activities = hooks.keys().filter(|k| k.ends_with("#activity")).count();
            assert_eq!(activities, 1000);
        }
        _ => {
            let comms = rig.fake.comms.lock().unwrap().clone();
            let mut per: HashMap<String, usize> = HashMap::new();
            for c in &comms {
                *per.entry(
                    c["properties"]["wabridge_effect_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
                .or_default() += 1;
            }
            assert_eq!(per.len(), 1000, "every event logged");
            assert!(per.values().all(|n| *n == 1), "no communication twice");
            assert_eq!(comms.len(), 1000);
            assert_eq!(rig.fake.contacts.lock().unwrap().len(), 200);
            // Batches happened: far fewer calls than inputs on both batch endpoints.
            let (create_calls, create_inputs) = batch_counts(&rig.fake, COMMS);
            let (upsert_calls, upsert_inputs) = batch_counts(&rig.fake, UPSERT);
            println!("hubspot: {create_calls} communication batches for {create_inputs} inputs, {upsert_calls} upsert batches for {upsert_inputs} inputs");
            assert!(create_calls * 4 <= create_inputs, "{create_calls} calls");
            assert!(upsert_calls * 4 <= upsert_inputs, "{upsert_calls} calls");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_webhook_every_event_exactly_once() {
    fault_injection("webhook").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_hubspot_every_event_exactly_once() {
    fault_injection("hubspot").await;
}
