//! `kill -9` of `wabridge serve` at random moments under load, 20 times, then a restart: every
//! webhook that was answered 200 reaches the CRM exactly once (issue 19). The kills land
//! wherever the process happens to be: in a group commit, in a CRM call, in a checkpoint; the
//! test cannot aim at one, so it kills often, after random delays, while webhooks arrive and
//! the CRM answers 503 to one call in ten.
//!
//! How we know: the receiver counts every `webhook-id` (the effect id); each acknowledged
//! event's activity must be there, under one id (a post applied just before a kill may come
//! again with the same id: a Standard Webhooks receiver dedupes it). Webhooks not answered
//! before a kill are posted again in the next round, as Meta retries them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::*;

const ROUNDS: usize = 20;
const PER_ROUND: usize = 40;

#[derive(Default)]
struct Receiver {
    calls: AtomicU64,
    posts: Mutex<HashMap<String, u32>>,
    last_post: Mutex<Option<Instant>>,
}

async fn serve_receiver(receiver: Arc<Receiver>) -> String {
    let app = axum::Router::new().route(
        "/crm",
        axum::routing::post(move |headers: HeaderMap| {
            let r = receiver.clone();
            async move {
                // One call in ten fails, deterministically spread.
                if r.calls.fetch_add(1, Ordering::SeqCst) % 10 == 9 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                *r.posts.lock().unwrap().entry(id).or_default() += 1;
                *r.last_post.lock().unwrap() = Some(Instant::now());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn webhook(i: usize) -> Vec<u8> {
    let from = format!("52155{:08}", i % 97);
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}],
            "messages": [message(&format!("wamid.CRASH.{i}"), &from, "¿Me confirman el pedido?")]}}]}]})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_twenty_times_under_load_loses_and_doubles_nothing() {
    let receiver = Arc::new(Receiver::default());
    let url = serve_receiver(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = ENV.to_vec();
    env.extend([
        ("CRM_KIND", "webhook"),
        ("CRM_WEBHOOK_URL", url.as_str()),
        ("CRM_WEBHOOK_SECRET", "whsec_Y3Jhc2gtdGVzdC1zZWNyZXQ="),
        ("CRM_TIMEOUT_MS", "2000"),
    ]);
    let mut acknowledged: HashSet<usize> = HashSet::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut next = 0;
    for round in 0..ROUNDS {
        let server = Gateway::start_in(dir.path(), &env);
        // Meta's retries of what the killed process never answered, then new webhooks.
        let mut batch = std::mem::take(&mut pending);
        batch.extend(next..next + PER_ROUND);
        next += PER_ROUND;
        let hook = server.webhook();
        let posts: Vec<_> = batch
            .iter()
            .map(|&i| {
                let hook = hook.clone();
                tokio::spawn(async move {
                    // Spread over ~400 ms, so that kills find requests at every stage.
                    tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 400)).await;
                    // A request cut by the kill has no answer: Meta would retry it.
                    let answer = gateway::try_post_signed(&hook, SECRET, &webhook(i)).await;
                    (i, answer.map_or(0, |(status, _)| status))
                })
            })
            .collect();
        // Kill somewhere between the first requests and well after the last.
        let delay = 50 + (round as u64 * 7919) % 700;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(server); // SIGKILL
        for p in posts {
            let (i, status) = p.await.unwrap();
            if status == 200 {
                acknowledged.insert(i);
            } else {
                pending.push(i);
            }
        }
    }
    // The last restart: what is left is posted again, and everything drains.
    let server = Gateway::start_in(dir.path(), &env);
    let restarted = Instant::now();
    for i in std::mem::take(&mut pending) {
        let (status, body) = post_signed(&server.webhook(), &webhook(i)).await;
        assert_eq!(status, 200, "{body}");
        acknowledged.insert(i);
    }
    server.wait_drained_for(Duration::from_secs(120));
    let drained = restarted.elapsed();
    let stats = server.stats();
    assert_eq!(stats["events_queue"]["dead"], 0, "{stats}");
    let posts = receiver.posts.lock().unwrap().clone();
    let mut missing = Vec::new();
    for &i in &acknowledged {
        if !posts.contains_key(&format!("m:wamid.CRASH.{i}#activity")) {
            missing.push(i);
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    let activities = posts.keys().filter(|k| k.ends_with("#activity")).count();
    assert_eq!(
        activities,
        acknowledged.len(),
        "one activity per event, no stray ones"
    );
    let repeated = posts.values().filter(|n| **n > 1).count();
    let last = receiver.last_post.lock().unwrap().unwrap();
    eprintln!(
        "crash: {ROUNDS} kill -9 rounds, {} webhooks acknowledged, {} ids posted, {repeated} posted again after a kill \
         (same webhook-id); drained {:.1} s after the last restart, last CRM post {:.1} s after it",
        acknowledged.len(),
        posts.len(),
        drained.as_secs_f64(),
        last.saturating_duration_since(restarted).as_secs_f64()
    );
    assert!(
        drained < Duration::from_secs(30),
        "the backlog took {drained:?} after the restart"
    );
    assert!(server.terminate());
}
