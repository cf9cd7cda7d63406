//! The webhook CRM down for a real 3 minutes while 100 webhooks arrive at `wabridge serve`:
//! afterwards every event reaches the CRM once and nothing is dead-lettered (issue 19). Before
//! the retry horizon, 5 receives dead-lettered all of them within a minute.
//!
//! How we know: the receiver counts every `webhook-id` it accepted (the effect id: one per
//! event and record kind); each event's activity must be there exactly once. How we know the CRM
//! was probed rather than hammered: it counts the calls it refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::*;

const WEBHOOKS: usize = 100;
const OUTAGE: Duration = Duration::from_secs(180);

#[derive(Default)]
struct Receiver {
    down: AtomicBool,
    refused: AtomicUsize,
    accepted: Mutex<HashMap<String, u32>>,
}

async fn serve_receiver(receiver: Arc<Receiver>) -> String {
    let app = axum::Router::new().route(
        "/crm",
        axum::routing::post(move |headers: HeaderMap| {
            let r = receiver.clone();
            async move {
                if r.down.load(Ordering::SeqCst) {
                    r.refused.fetch_add(1, Ordering::SeqCst);
                    return (StatusCode::SERVICE_UNAVAILABLE, "maintenance");
                }
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                *r.accepted.lock().unwrap().entry(id).or_default() += 1;
                (StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn one_message(i: usize) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Cliente"}, "wa_id": format!("52155{i:08}")}],
            "messages": [message(&format!("wamid.OUTAGE.{i}"), &format!("52155{i:08}"), "¿Hay stock?")]}}]}]})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_minute_crm_outage_through_serve_loses_and_doubles_nothing() {
    let receiver = Arc::new(Receiver::default());
    receiver.down.store(true, Ordering::SeqCst);
    let url = serve_receiver(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = ENV.to_vec();
    env.extend([
        ("CRM_KIND", "webhook"),
        ("CRM_WEBHOOK_URL", url.as_str()),
        ("CRM_WEBHOOK_SECRET", "whsec_b3V0YWdlLXRlc3Qtc2VjcmV0"),
        ("CRM_TIMEOUT_MS", "2000"),
    ]);
    let server = Gateway::start_in(dir.path(), &env);
    let started = Instant::now();
    // The webhooks arrive over the first minute of the outage.
    for i in 0..WEBHOOKS {
        let (status, body) = post_signed(&server.webhook(), &one_message(i)).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::sleep(OUTAGE.saturating_sub(started.elapsed())).await;
    let refused = receiver.refused.load(Ordering::SeqCst);
    receiver.down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    let stats = server.stats();
    assert_eq!(
        stats["events_queue"]["dead"], 0,
        "dead letters during the outage: {stats}"
    );

    // Once the breaker's next probe finds the CRM back (at most one period: 3/4 to 1 of 256 s
    // after 3 minutes), the backlog drains.
    server.wait_drained_for(Duration::from_secs(300));
    let drained_after = back.elapsed();
    let stats = server.stats();
    assert_eq!(stats["events_queue"]["dead"], 0, "{stats}");
    let accepted = receiver.accepted.lock().unwrap().clone();
    for i in 0..WEBHOOKS {
        let id = format!("m:wamid.OUTAGE.{i}#activity");
        assert_eq!(accepted.get(&id), Some(&1), "{id}");
    }
    // Probed, not hammered: 100 events retried on their own backoff for 3 minutes would have
    // made some 2,000 calls (about 7 receives each, 3 quick attempts per receive).
    assert!(refused <= 150, "{refused} calls refused during the outage");
    eprintln!(
        "serve outage: {refused} calls during {} s of outage; drained {} s after the CRM came back",
        OUTAGE.as_secs(),
        drained_after.as_secs()
    );
    assert!(server.terminate());
}
