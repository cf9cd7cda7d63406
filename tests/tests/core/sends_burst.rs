//! A burst of 2,000 sends from one business number through the real Graph client and the rate
//! limiter, against a local counting HTTP server that stands in for Meta and timestamps every
//! request it receives. The server's own clock is what is measured:
//!
//! - the number's rate (requests / span between the first and the last arrival) stays within 5%
//!   of the configured rate (80/s by default);
//! - no recipient gets two messages less than the pair interval (6 s) apart.
//!
//! 80 "hot" recipients get 4 messages each, queued first, so each of their later messages meets
//! the pair limit and goes back to the queue with its wait, like the sender does with SQS; 1,680
//! other recipients get one message each. 32 concurrent workers share one limiter.
//!
//! Figures: `bash scripts/sends-burst.sh` (or this test with `--nocapture`); override the burst
//! with `WABRIDGE_BURST_SENDS` and `WABRIDGE_BURST_RATE`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use wabridge_core::sends::graph::MessageApi;
use wabridge_core::sends::graph::{
    Address, Content, GraphConfig, Language, OutboundMessage, Template,
};
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_graph::GraphClient;

type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

async fn messages(State(arrivals): State<Arrivals>, Json(body): Json<Value>) -> Json<Value> {
    let to = body["to"].as_str().unwrap_or("?").to_string();
    arrivals.lock().unwrap().push((to.clone(), Instant::now()));
    Json(
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.{}", body["biz_opaque_callback_data"].as_str().unwrap_or(""))}]}),
    )
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_holds_the_number_rate_and_the_pair_limit() {
    let total: usize = env_or("WABRIDGE_BURST_SENDS", 2000);
    let rate: f64 = env_or("WABRIDGE_BURST_RATE", 80.0);
    let pair = Duration::from_secs(6);
    let workers = 32;

    let arrivals: Arrivals = Arc::default();
    let app = Router::new()
        .route("/{version}/{phone}/messages", post(messages))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = GraphClient::new(GraphConfig {
        base_url: format!("http://{addr}"),
        version: "v23.0".into(),
        phone_number_id: "106540352242922".into(),
        access_token: "EAAGtest".into(),
        timeout: Duration::from_secs(10),
    });
    let limiter = Arc::new(RateLimiter::new(rate, pair));

    // 80 "hot" recipients get 4 messages each, queued first; 1,680 others get one each.
    let hot = 80usize.min(total / 4);
    let mut jobs = std::collections::VecDeque::new();
    for round in 0..4 {
        for r in 0..hot {
            jobs.push_back((round * hot + r, format!("52155{r:08}")));
        }
    }
    for i in hot * 4..total {
        jobs.push_back((i, format!("52166{i:08}")));
    }
    let queue = Arc::new(Mutex::new(jobs));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let requeued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (queue, client, limiter, done, requeued) = (
            queue.clone(),
            client.clone(),
            limiter.clone(),
            done.clone(),
            requeued.clone(),
        );
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            while done.load(SeqCst) < total {
                let job = queue.lock().unwrap().pop_front();
                let Some((i, to)) = job else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                };
                match limiter.wait(&to).await {
                    Ok(()) => {
                        let message = OutboundMessage {
                            address: Address::Phone(to),
                            content: Content::Template(Template {
                                name: "order_update".into(),
                                language: Language::new("es_MX"),
                                components: vec![],
                            }),
                            callback_data: format!("snd_{i}"),
                        };
                        client
                            .send(&message)
                            .await
                            .expect("counting server accepts");
                        done.fetch_add(1, SeqCst);
                    }
                    Err(wait) => {
                        // Back on the queue, visible again after the wait (the sender's
                        // RetryAfter on SQS); it is the next message received then.
                        requeued.fetch_add(1, SeqCst);
                        let queue = queue.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(wait).await;
                            queue.lock().unwrap().push_front((i, to));
                        });
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let wall = started.elapsed();

    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), total, "every send arrived exactly once");
    let first = arrivals.iter().map(|a| a.1).min().unwrap();
    let last = arrivals.iter().map(|a| a.1).max().unwrap();
    let span = (last - first).as_secs_f64();
    let measured = (total - 1) as f64 / span;
    // Worst windows: the most arrivals in any 1 s and in any 5 s.
    let mut times: Vec<Instant> = arrivals.iter().map(|a| a.1).collect();
    times.sort();
    let peak_in = |window: Duration| {
        let (mut peak, mut j) = (0, 0);
        for i in 0..times.len() {
            while times[i] - times[j] >= window {
                j += 1;
            }
            peak = peak.max(i - j + 1);
        }
        peak
    };
    let peak = peak_in(Duration::from_secs(1));
    let peak5 = peak_in(Duration::from_secs(5));
    let mut by_recipient: HashMap<&str, Vec<Instant>> = HashMap::new();
    for (to, at) in &arrivals {
        by_recipient.entry(to).or_default().push(*at);
    }
    let mut min_gap = Duration::MAX;
    for times in by_recipient.values_mut() {
        times.sort();
        for w in times.windows(2) {
            min_gap = min_gap.min(w[1] - w[0]);
        }
    }
    let requeued = requeued.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "burst: {total} sends, {} recipients, {workers} workers, configured {rate:.1}/s, pair {pair:?}\n\
         burst: measured {measured:.2}/s over {span:.2} s (error {:+.2}%), peak {peak} in any 1 s window, {peak5} in any 5 s, \
         wall {:.2} s\nburst: min gap to one recipient {:.3} s, {requeued} pair-limited requeues",
        by_recipient.len(),
        (measured / rate - 1.0) * 100.0,
        wall.as_secs_f64(),
        min_gap.as_secs_f64(),
    );
    assert!(
        (measured / rate - 1.0).abs() <= 0.05,
        "rate {measured:.2}/s is not within 5% of {rate}/s"
    );
    // The limiter grants one slot every 1/rate s. What the fake sees adds the scheduler's
    // lateness: on a starved machine (other builds running) a few late timers fire together,
    // which can put up to 10 % more in one second, never more over five.
    assert!(
        peak as f64 <= rate * 1.10 + 1.0,
        "{peak} requests in one second"
    );
    assert!(
        peak5 as f64 <= rate * 5.0 * 1.02 + 1.0,
        "{peak5} requests in five seconds"
    );
    // Arrival jitter (scheduling, HTTP) is a few ms; the limiter spaces slots by exactly 6 s.
    assert!(
        min_gap + Duration::from_millis(50) >= pair,
        "pair limit broken: two messages {min_gap:?} apart"
    );
    assert!(
        requeued >= hot * 3,
        "the pair limit was exercised ({requeued} requeues)"
    );
    // The hot recipients' messages went out soon after their 6 s were over: the limit was what
    // held them (32 workers book up to 32 slots ahead, 0.4 s at 80/s).
    assert!(
        min_gap < pair + Duration::from_secs(1),
        "min gap {min_gap:?}"
    );
}
