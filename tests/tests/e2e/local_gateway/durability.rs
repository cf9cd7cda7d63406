//! What the SQLite file keeps: records and dedupe across a restart, nothing of a delivery whose
//! store write failed, and a burst's WAL left alone while `wabridge stats` still opens.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn records_and_dedupe_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (status, _) = post_signed(&server.webhook(), &batch("R")).await;
    assert_eq!(status, 200);
    server.wait_drained();
    assert!(server.terminate(), "SIGTERM stops the server cleanly");

    let server = start(dir.path());
    assert_eq!(keys(&records(dir.path())).len(), 4);
    // Meta retrying after our restart must still be recognised.
    let (status, _) = post_signed(&server.webhook(), &batch("R")).await;
    assert_eq!(status, 200);
    let (status, _) = post_signed(&server.webhook(), &batch("S")).await;
    assert_eq!(status, 200);
    server.wait_drained();
    let recs = records(dir.path());
    assert_eq!(keys(&recs).len(), 8);
    let mut unique = keys(&recs);
    unique.dedup();
    assert_eq!(unique.len(), 8, "no duplicates after the restart");
}

/// A store failure between accepting the request and queuing its events: a trigger (installed
/// in the live database file from outside the process) aborts the dedupe mark of one event (its
/// append to the recent-keys log), after earlier events of the same delivery were already
/// enqueued and marked in that transaction.
#[tokio::test]
async fn a_store_failure_answers_5xx_and_the_retry_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER inject_fault BEFORE INSERT ON dedupe_log
         WHEN NEW.key LIKE '%wamid.F.2%' BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    let body = batch("F");
    let (status, v) = post_signed(&server.webhook(), &body).await;
    assert!(
        status >= 500,
        "a store failure must ask Meta to retry, got {status}: {v}"
    );
    let queued: i64 = db
        .query_row("SELECT count(*) FROM queue_messages", [], |r| r.get(0))
        .unwrap();
    let marked: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM dedupe_keys) + (SELECT count(*) FROM dedupe_log)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (queued, marked),
        (0, 0),
        "nothing of the failed delivery was kept"
    );

    db.execute_batch("DROP TRIGGER inject_fault").unwrap();
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    server.wait_drained();
    let recs = records(dir.path());
    let mut k = keys(&recs);
    assert_eq!(
        k.len(),
        4,
        "every event of the retried delivery exactly once: {k:?}"
    );
    k.dedup();
    assert_eq!(k.len(), 4);
}

/// During a burst the writer leaves the WAL alone (no checkpoint holds up an ack) instead of
/// checkpointing every 1,000 pages as SQLite does by default; `wabridge stats` still opens
/// while the burst's writer holds the write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_grows_the_wal_past_the_usual_checkpoint_and_stats_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let text = "Hola, quisiera información sobre el plan empresarial. ".repeat(20);
    // 6,400 events: about 18 MB of WAL on an idle machine when nothing restarts it, well past the
    // bound asserted below even on a loaded one, whose bigger group commits write fewer partly
    // filled pages (half as many events once made only 5.6 MB). Restarting the WAL at 1,000
    // pages, as SQLite does by default, keeps it near 4.1 MB.
    let posts: Vec<Vec<u8>> = (0..320)
        .map(|p| {
            let messages: Vec<Value> = (0..20)
                .map(|m| message(&format!("wamid.WAL{p}x{m}"), "5215512345678", &text))
                .collect();
            serde_json::to_vec(&json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "messages": messages
                }}]}]
            }))
            .unwrap()
        })
        .collect();
    let url = server.webhook();
    let data = dir.path().to_path_buf();
    let stats_during = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        cli(&["stats"], &data, &[])
    });
    // 32 posts in flight at a time: a burst (8 or more in flight).
    let mut posts = posts.into_iter();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < 32 {
            let Some(body) = posts.next() else { break };
            let url = url.clone();
            running.spawn(async move { post_signed(&url, &body).await });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (status, v) = done.unwrap();
        assert_eq!(status, 200, "{v}");
    }
    let wal = std::fs::metadata(dir.path().join("wabridge.db-wal"))
        .unwrap()
        .len();
    // SQLite's default would have restarted the WAL at 1,000 pages (4 MiB) again and again.
    assert!(wal > 6 * 1024 * 1024, "WAL of {wal} bytes");
    let out = stats_during.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats(dir.path())["dedupe_keys"].as_u64(), Some(6400));
}
