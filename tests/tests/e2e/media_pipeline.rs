//! The media consumer as `wabridge serve` runs it (a worker on the SQLite `media` queue, the
//! fetcher, the local store, the media index, results on the events queue), against the
//! benchmark's CDN: a redelivered job downloads once and reports the same result event; and the
//! benchmarks through the whole consumer (figures in docs/benchmarks.md).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wabridge_core::audit::Audit;
use wabridge_core::consumer::{run_worker, Handler, Outcome, Settle, WorkerOptions};
use wabridge_core::erasure::ErasureService;
use wabridge_core::event::Event;
use wabridge_core::identity::{IdentityKey, IdentityStore};
use wabridge_core::media::job::{MediaJob, MEDIA_JOB_VERSION};
use wabridge_core::media::pipeline::MediaSync;
use wabridge_core::media::MediaKind;
use wabridge_core::queue::{Delivery, Queue};
use wabridge_core::retry::RetryPolicy;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::{
    Db, SqliteErasure, SqliteMediaIndex, SqliteQueue, EVENTS_QUEUE, MEDIA_QUEUE,
};

use crate::media_bench::{fetcher, peak_kib, start};

fn job(media_id: &str) -> MediaJob {
    MediaJob {
        v: MEDIA_JOB_VERSION,
        activity_event_id: format!("wamid.{media_id}"),
        message_id: Some(format!("wamid.{media_id}")),
        contact: "phone:525512345678".into(),
        phone: Some("+525512345678".into()),
        phone_number_id: Some("106540352242922".into()),
        media_id: media_id.into(),
        kind: MediaKind::Document,
        mime_type: Some("application/pdf".into()),
        sha256: None,
        filename: Some("factura.pdf".into()),
        animated: false,
        url: None,
        received_at: wabridge_core::clock::now_ms(),
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    db: Db,
    sync: Arc<MediaSync>,
}

fn rig(url: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("m.db")).unwrap();
    let sync = MediaSync::new(
        fetcher(url, dir.path()),
        Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE)),
        None,
    )
    .with_index(Arc::new(SqliteMediaIndex::new(db.clone())))
    .with_identities(Arc::new(SqliteIdentityStore::new(db.clone())));
    Rig {
        _dir: dir,
        db,
        sync: Arc::new(sync),
    }
}

async fn results(db: &Db) -> Vec<Event> {
    let events = SqliteQueue::new(db.clone(), EVENTS_QUEUE);
    let got = events
        .receive(10_000, Duration::from_secs(60))
        .await
        .unwrap();
    got.iter()
        .map(|d| Event::from_json(&d.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_redelivered_job_downloads_once_and_reports_the_same_result() {
    let (url, downloads) = start(50 * 1024, Duration::ZERO).await;
    let rig = rig(&url);
    let delivery = |n| Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: job("7").to_message().body,
        receive_count: n,
        enqueued_at: None,
    };
    assert_eq!(rig.sync.handle(&delivery(1)).await, Outcome::Done);
    assert_eq!(rig.sync.handle(&delivery(2)).await, Outcome::Done);
    assert_eq!(
        downloads.load(Ordering::Relaxed),
        1,
        "the stored file is not fetched again"
    );
    let events = results(&rig.db).await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].key, events[1].key,
        "the same result: the ledger lands it once"
    );
    assert_eq!(events[0].key, "media:wamid.7:7:stored");
    let item: serde_json::Value = serde_json::from_str(events[0].item.get()).unwrap();
    assert_eq!(item["stored"]["size"], 50 * 1024);
    assert_eq!(item["contact"], "phone:525512345678");
}

#[tokio::test]
async fn a_job_queued_before_its_senders_erasure_stores_nothing() {
    let (url, downloads) = start(50 * 1024, Duration::ZERO).await;
    let rig = rig(&url);
    let job = job("9"); // received now, before the erasure below
    let key = IdentityKey::Phone("525512345678".into());
    SqliteIdentityStore::new(rig.db.clone())
        .resolve(&[key], "c-erased")
        .await
        .unwrap();
    ErasureService::new(
        Arc::new(SqliteErasure::open(rig.db.clone()).await.unwrap()),
        Audit::none(),
    )
    .erase("+52 55 1234 5678", "test")
    .await
    .unwrap();
    let erasure_events = results(&rig.db).await.len(); // the CRM's erasure event
    let delivery = Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        body: job.to_message().body,
        receive_count: 1,
        enqueued_at: None,
    };
    assert_eq!(rig.sync.handle(&delivery).await, Outcome::Done);
    assert_eq!(downloads.load(Ordering::Relaxed), 0, "nothing fetched");
    assert_eq!(
        results(&rig.db).await.len() + erasure_events,
        erasure_events
    );
}

/// Enqueues `n` jobs and runs the consumer as serve does until `n` results are reported.
async fn run_pipeline(rig: &Rig, ids: &[String]) -> Duration {
    let media = Arc::new(SqliteQueue::new(rig.db.clone(), MEDIA_QUEUE));
    let jobs: Vec<_> = ids.iter().map(|id| job(id).to_message()).collect();
    for chunk in jobs.chunks(500) {
        media.send_batch(chunk).await.unwrap();
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(run_worker(
        media.clone(),
        rig.sync.clone() as Arc<dyn Handler>,
        WorkerOptions {
            batch: 20,
            concurrency: 16,
            visibility: Duration::from_secs(360),
            idle: Duration::from_millis(5),
            settle: Settle::new(RetryPolicy::EVENTS, true),
            ..WorkerOptions::default()
        },
        stop_rx,
    ));
    let events = SqliteQueue::new(rig.db.clone(), EVENTS_QUEUE);
    loop {
        let c = events.counts().await.unwrap();
        if c.visible as usize >= ids.len() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{c:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p wabridge-tests --test e2e -- --ignored --nocapture --test-threads=1 media_pipeline"]
async fn bench_the_consumer_with_a_50_ms_cdn() {
    let (url, downloads) = start(100 * 1024, Duration::from_millis(50)).await;
    let rig = rig(&url);
    let n = 500;
    let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let elapsed = run_pipeline(&rig, &ids).await;
    assert_eq!(downloads.load(Ordering::Relaxed), n);
    println!(
        "media consumer: {n} files of 100 KiB, CDN 50 ms, serve's settings (16 at a time): {elapsed:?}, {:.0} files/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p wabridge-tests --test e2e -- --ignored --nocapture --test-threads=1 media_pipeline"]
async fn bench_a_100_mb_document_through_the_consumer() {
    let (url, _) = start(100 * 1024 * 1024, Duration::ZERO).await;
    let rig = rig(&url);
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let base = peak_kib();
    let elapsed = run_pipeline(&rig, &["big1".to_string()]).await;
    let peak = peak_kib();
    println!(
        "media consumer: a 100 MB document in {elapsed:?}, process peak RSS {} MiB ({} MiB before)",
        peak / 1024,
        base / 1024
    );
    assert!(peak < 64 * 1024, "peak RSS {} MiB", peak / 1024);
}
