//! Throughput of every adapter against its fake answering in 50 ms, side by side in one run
//! (ignored; run with `--ignored --nocapture`). Each fake enforces its CRM's documented burst
//! limit, so a CRM's figure is the lower of its limit and what the pipeline reaches.

use std::time::Duration;

use serde_json::Value;

use super::*;

async fn run<S: Subject>() {
    let h = Harness::<S>::with(Duration::from_secs(3), Duration::from_millis(50)).await;
    let events: Vec<Value> = (0..2000)
        .map(|i| {
            text(
                &format!("wamid.B{i}"),
                &format!("52155{:08}", i % 40),
                &format!("mensaje {i}"),
            )
        })
        .collect();
    // `wabridge serve`'s defaults: one worker loop, 128 deliveries in flight.
    let (dead, elapsed) = drain(&h.db, &h.sync, &events, 1, 1, 128).await;
    assert_eq!(dead, 0);
    h.assert_documented();
    let calls = h.subject.arrivals().len();
    println!(
        "BENCH {}: 2000 events of 40 people, CRM at 50 ms: {:.1}s = {:.0} events/s, {calls} calls, {} answered 429",
        S::KIND,
        elapsed.as_secs_f64(),
        events.len() as f64 / elapsed.as_secs_f64(),
        h.subject.over_limit()
    );
}

/// `cargo test -p wabridge-tests --test core -- --ignored --nocapture crm_conformance::bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_every_adapter_against_a_50ms_crm() {
    run::<super::webhook::Webhook>().await;
    run::<super::hubspot::HubSpot>().await;
    run::<super::pipedrive::Pipedrive>().await;
    run::<super::zoho::Zoho>().await;
    run::<super::kommo::Kommo>().await;
    run::<super::salesforce::Salesforce>().await;
}

/// Zoho beside HubSpot alone, for a before/after of one adapter on a busy machine:
/// `cargo test -p wabridge-tests --test core -- --ignored --nocapture crm_conformance::bench::zoho`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn zoho_beside_hubspot_against_a_50ms_crm() {
    run::<super::hubspot::HubSpot>().await;
    run::<super::zoho::Zoho>().await;
    run::<super::hubspot::HubSpot>().await;
    run::<super::zoho::Zoho>().await;
}
