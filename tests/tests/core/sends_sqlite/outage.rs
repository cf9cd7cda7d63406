//! Meta's API down: the sender's circuit opens after its run of unavailable answers, then one
//! probe per period goes out instead of every queued send, and once Meta answers again every
//! send goes out exactly once (the worker wakes what was waiting out a delay).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wabridge_core::breaker::OPEN_AFTER;
use wabridge_core::consumer::{run_worker, Settle, WorkerOptions};
use wabridge_core::sends::store::SendState;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_api_down_is_probed_not_hammered_and_every_send_goes_once() {
    let s = setup().await;
    let sends = 60;
    let mut ids = Vec::new();
    for i in 0..sends {
        let body = json!({"to": format!("+52155{i:08}"), "template": "order_confirmation",
            "language": "es_MX", "category": "UTILITY", "parameters": ["Ana", "1042"]});
        let r = s
            .sends
            .submit(body.to_string().as_bytes(), None)
            .await
            .unwrap();
        ids.push(r.id);
    }
    // Meta is down for its first answers: enough to open the circuit, then two failed probes.
    let down = OPEN_AFTER as usize + 2;
    s.meta
        .script
        .lock()
        .unwrap()
        .extend(std::iter::repeat_n((503, json!({})), down));
    let sender = Sender::new(
        s.sends.clone(),
        s.sender.graph.clone(),
        s.sender.limiter.clone(),
    );
    let breaker = sender.breaker.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(run_worker(
        s.queue.clone(),
        Arc::new(sender),
        // One delivery at a time: with several in flight when the circuit opens, those already
        // sent take the scripted 503s meant for the probes (and one that succeeds closes the
        // circuit without a probe), so the probe count would depend on timing.
        WorkerOptions {
            batch: 16,
            concurrency: 1,
            idle: Duration::from_millis(10),
            settle: Settle::new(RetryPolicy::SENDS, true),
            breaker: Some(breaker.clone()),
            ..WorkerOptions::default()
        },
        stop_rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut sent = 0;
        for id in &ids {
            if s.sends.get(id).await.unwrap().state == SendState::Sent {
                sent += 1;
            }
        }
        if sent == sends {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {sends} sent: {:?}",
            breaker.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    stop_tx.send(true).unwrap();
    worker.await.unwrap();

    // Every send reached Meta once with a 200; the only other requests are the scripted 503s:
    // none was made while the circuit was open other than its probes.
    let received = s.meta.received.lock().unwrap().clone();
    assert_eq!(received.len(), sends + down, "{} requests", received.len());
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *per_recipient
            .entry(r["to"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_recipient.len(), sends);
    let stats = breaker.stats();
    assert_eq!(stats.openings, 1, "{stats:?}");
    assert_eq!(stats.closings, 1, "{stats:?}");
    assert_eq!(
        stats.probes, 3,
        "two failed probes, one that found Meta back: {stats:?}"
    );
    // Two failed probe periods (at least 3/4 of 1 s and of 2 s) passed before the third.
    assert!(took >= Duration::from_millis(2250), "{took:?}");
}
