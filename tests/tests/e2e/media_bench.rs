//! Benchmarks of the media fetch (figures in docs/benchmarks.md): a 100 MB document streamed
//! into the local store with the process's peak RSS measured, and many small files from a CDN
//! answering in 50 ms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde_json::json;
use sha2::Digest;
use wabridge_core::media::fetch::MediaFetcher;

use crate::media_fetch::wanted;
use wabridge_core::media::MediaKind;
use wabridge_graph::{GraphMedia, MediaConfig};
use wabridge_sqlite::LocalMediaStore;

const CHUNK: usize = 64 * 1024;

/// Byte `i` of a generated file of `seed`: never held whole in memory.
fn chunk(seed: u64, index: usize, len: usize) -> Vec<u8> {
    let salt = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|i| {
            let x = ((index * CHUNK + i) as u64) ^ salt;
            (x.wrapping_mul(2_654_435_761) >> 24) as u8
        })
        .collect()
}

fn digest(seed: u64, size: usize) -> String {
    let mut h = sha2::Sha256::new();
    for i in 0..size.div_ceil(CHUNK) {
        h.update(chunk(seed, i, CHUNK.min(size - i * CHUNK)));
    }
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[derive(Clone)]
struct Cdn {
    size: usize,
    sha: Arc<String>,
    delay: Duration,
    downloads: Arc<AtomicUsize>,
}

async fn info(
    State(c): State<Cdn>,
    Path((_v, id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let sha = if id.starts_with("big") {
        c.sha.to_string()
    } else {
        digest(id.parse().unwrap_or(0), c.size)
    };
    axum::Json(
        json!({"messaging_product": "whatsapp", "id": id, "mime_type": "application/pdf",
        "sha256": sha, "file_size": c.size, "url": format!("http://{host}/cdn/{id}")}),
    )
    .into_response()
}

async fn file(State(c): State<Cdn>, Path(id): Path<String>) -> Response {
    tokio::time::sleep(c.delay).await;
    c.downloads.fetch_add(1, Ordering::Relaxed);
    let seed: u64 = if id.starts_with("big") {
        0
    } else {
        id.parse().unwrap_or(0)
    };
    let size = c.size;
    let stream = futures::stream::iter(0..size.div_ceil(CHUNK)).map(move |i| {
        Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk(
            seed,
            i,
            CHUNK.min(size - i * CHUNK),
        )))
    });
    (
        [("content-type", "application/pdf")],
        Body::from_stream(stream),
    )
        .into_response()
}

pub(crate) async fn start(size: usize, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let downloads = Arc::new(AtomicUsize::new(0));
    let cdn = Cdn {
        size,
        sha: Arc::new(digest(0, size)),
        delay,
        downloads: downloads.clone(),
    };
    let app = axum::Router::new()
        .route("/cdn/{id}", axum::routing::get(file))
        .route("/{v}/{id}", axum::routing::get(info))
        .with_state(cdn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, downloads)
}

pub(crate) fn fetcher(url: &str, dir: &std::path::Path) -> MediaFetcher {
    let graph = GraphMedia::new(MediaConfig {
        base_url: url.into(),
        version: "v23.0".into(),
        access_token: "EAAGbench".into(),
        phone_number_id: None,
        timeout: Duration::from_secs(120),
    });
    MediaFetcher::new(
        Arc::new(graph),
        Arc::new(LocalMediaStore::open(dir).unwrap()),
    )
}

/// The process's peak resident set (VmHWM), KiB.
pub(crate) fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p wabridge-tests --test e2e -- --ignored --nocapture --test-threads=1 media_bench"]
async fn bench_a_100_mb_document_in_bounded_memory() {
    let size = 100 * 1024 * 1024;
    let (url, _) = start(size, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(&url, dir.path());
    // Reset the peak to what the process holds now (Linux: clear_refs 5).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let base = peak_kib();
    let start = Instant::now();
    let stored = f.fetch(&wanted("big1", MediaKind::Document)).await.unwrap();
    let elapsed = start.elapsed();
    let peak = peak_kib();
    assert_eq!(stored.size, size as u64);
    println!(
        "100 MB document: {:?} ({:.0} MB/s), process peak RSS {} MiB (it held {} MiB before the fetch; +{} MiB during it, the CDN's chunks included)",
        elapsed,
        100.0 / elapsed.as_secs_f64(),
        peak / 1024,
        base / 1024,
        (peak - base) / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p wabridge-tests --test e2e -- --ignored --nocapture --test-threads=1 media_bench"]
async fn bench_files_per_second_with_a_50_ms_cdn() {
    let (url, downloads) = start(100 * 1024, Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(&url, dir.path());
    let n = 500;
    let start = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let f = f.clone();
            async move {
                let id = (i + 1).to_string();
                f.fetch(&wanted(&id, MediaKind::Document)).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let elapsed = start.elapsed();
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(downloads.load(Ordering::Relaxed), n);
    println!(
        "{n} files of 100 KiB, CDN 50 ms, 32 at a time: {:?}, {:.0} files/s",
        elapsed,
        n as f64 / elapsed.as_secs_f64()
    );
}
