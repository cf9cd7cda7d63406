//! Named queues: visibility, receive counts, dead letters, delays.

use super::*;

const VIS: Duration = Duration::from_secs(30);

fn setup(max_receives: u32) -> (tempfile::TempDir, Clock, SqliteQueue) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("q.db")).unwrap();
    let clock = Clock::manual(1_700_000_000_000);
    let q = SqliteQueue::new(db, EVENTS_QUEUE)
        .with_max_receives(max_receives)
        .with_clock(clock.clone());
    (dir, clock, q)
}

fn msg(id: &str) -> OutgoingMessage {
    OutgoingMessage {
        id: id.into(),
        body: format!("body-{id}"),
        delay: None,
    }
}

#[tokio::test]
async fn hidden_while_in_flight_redelivered_after_visibility_timeout() {
    let (_d, clock, q) = setup(5);
    q.send_batch(&[msg("a"), msg("b")]).await.unwrap();
    let first = q.receive(10, VIS).await.unwrap();
    assert_eq!(
        first.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["body-a", "body-b"]
    );
    assert!(first.iter().all(|d| d.receive_count == 1));
    assert!(
        q.receive(10, VIS).await.unwrap().is_empty(),
        "in flight messages are hidden"
    );
    q.delete(&first[0].receipt).await.unwrap();
    clock.advance(VIS - Duration::from_millis(1));
    assert!(q.receive(10, VIS).await.unwrap().is_empty());
    clock.advance(Duration::from_millis(1));
    let again = q.receive(10, VIS).await.unwrap();
    assert_eq!(again.len(), 1, "only the undeleted message comes back");
    assert_eq!(again[0].body, "body-b");
    assert_eq!(again[0].message_id, first[1].message_id);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(again[0].receipt, first[1].receipt);
    // A stale receipt cannot delete the message received again.
    q.delete(&first[1].receipt).await.unwrap();
    assert_eq!(
        q.counts().await.unwrap(),
        QueueCounts {
            visible: 0,
            hidden: 1,
            dead: 0
        }
    );
    q.delete(&again[0].receipt).await.unwrap();
    assert_eq!(q.counts().await.unwrap(), QueueCounts::default());
}

#[tokio::test]
async fn receive_respects_max_and_delay() {
    let (_d, clock, q) = setup(5);
    let mut delayed = msg("later");
    delayed.delay = Some(Duration::from_secs(10));
    q.send_batch(&[msg("1"), msg("2"), msg("3"), delayed])
        .await
        .unwrap();
    assert_eq!(q.receive(2, VIS).await.unwrap().len(), 2);
    assert_eq!(q.receive(10, VIS).await.unwrap().len(), 1);
    clock.advance(Duration::from_secs(10));
    let later = q.receive(10, VIS).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].body, "body-later");
}

#[tokio::test]
async fn dead_letters_after_max_receives_then_redrive() {
    let (_d, clock, q) = setup(3);
    q.send_batch(&[msg("x")]).await.unwrap();
    for n in 1..=3 {
        let d = q.receive(10, VIS).await.unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].receive_count, n);
        clock.advance(VIS);
    }
    // The 4th attempt moves it instead of delivering it.
    assert!(q.receive(10, VIS).await.unwrap().is_empty());
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "body-x");
    assert_eq!(dead[0].receive_count, 3);
    assert_eq!(dead[0].reason, None);
    assert_eq!(
        q.counts().await.unwrap(),
        QueueCounts {
            visible: 0,
            hidden: 0,
            dead: 1
        }
    );

    assert_eq!(
        q.redrive(Some("999999")).await.unwrap(),
        0,
        "unknown id moves nothing"
    );
    assert_eq!(q.redrive(Some(&dead[0].id)).await.unwrap(), 1);
    let back = q.receive(10, VIS).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0].message_id, dead[0].id,
        "keeps its id through the dead letters"
    );
    assert_eq!(back[0].receive_count, 1, "a redriven message starts over");
    assert!(q.dead_letters(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn consumer_dead_letters_with_reason_and_redrive_all() {
    let (_d, _clock, q) = setup(5);
    q.send_batch(&[msg("a"), msg("b"), msg("c")]).await.unwrap();
    let got = q.receive(10, VIS).await.unwrap();
    q.dead_letter(&got[0], "phone: not E.164").await.unwrap();
    q.dead_letter(&got[1], "email: invalid").await.unwrap();
    q.retry_later(&got[2].receipt, Duration::ZERO)
        .await
        .unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| d.reason.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["phone: not E.164", "email: invalid"]
    );
    // retry_later(0) made c visible again at once.
    let c = q.receive(10, VIS).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].body, "body-c");
    assert_eq!(c[0].receive_count, 2);
    assert_eq!(q.redrive(None).await.unwrap(), 2);
    assert_eq!(q.receive(10, VIS).await.unwrap().len(), 2);
}

#[tokio::test]
async fn queues_are_separate_by_name() {
    let (_d, clock, events) = setup(5);
    let sends = SqliteQueue::new(events.db().clone(), SENDS_QUEUE).with_clock(clock);
    events.send_batch(&[msg("e")]).await.unwrap();
    sends.send_batch(&[msg("s")]).await.unwrap();
    assert_eq!(sends.receive(10, VIS).await.unwrap()[0].body, "body-s");
    assert_eq!(events.receive(10, VIS).await.unwrap()[0].body, "body-e");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_never_get_the_same_message() {
    let (_d, _clock, q) = setup(5);
    let batch: Vec<_> = (0..500).map(|i| msg(&i.to_string())).collect();
    q.send_batch(&batch).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let d = q.receive(7, VIS).await.unwrap();
                if d.is_empty() {
                    return got;
                }
                got.extend(d.into_iter().map(|d| d.body));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let total = all.len();
    all.dedup();
    assert_eq!(total, 500);
    assert_eq!(all.len(), 500);
}

#[tokio::test]
async fn wake_releases_only_what_waits_out_a_retry_delay() {
    let (_d, clock, q) = setup(5);
    q.send_batch(&[msg("waiting"), msg("in-flight"), msg("delayed")])
        .await
        .unwrap();
    let got = q.receive(2, VIS).await.unwrap();
    let start = clock.now_ms();
    assert!(got.iter().all(|d| d.enqueued_at == Some(start)));
    let waiting = got.iter().find(|d| d.body == "body-waiting").unwrap();
    q.retry_later(&waiting.receipt, Duration::from_secs(600))
        .await
        .unwrap();
    // A message enqueued with a delay is not waiting for a service: it stays hidden too.
    q.send_batch(&[OutgoingMessage {
        delay: Some(Duration::from_secs(600)),
        ..msg("later")
    }])
    .await
    .unwrap();
    let rest = q.receive(10, VIS).await.unwrap();
    assert_eq!(rest.len(), 1, "only `delayed` was visible");
    assert_eq!(q.wake().await.unwrap(), 1);
    let woken = q.receive(10, VIS).await.unwrap();
    assert_eq!(
        woken.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["body-waiting"],
        "in-flight and delayed messages stay hidden"
    );
    assert_eq!(woken[0].receive_count, 2);
    // Received again: no longer waiting, so a second wake finds nothing.
    assert_eq!(q.wake().await.unwrap(), 0);
}

#[tokio::test]
async fn a_redriven_message_starts_a_new_retry_horizon() {
    let (_d, clock, q) = setup(5);
    q.send_batch(&[msg("a")]).await.unwrap();
    let first = q.receive(1, VIS).await.unwrap();
    let enqueued = first[0].enqueued_at.unwrap();
    q.dead_letter(&first[0], "horizon").await.unwrap();
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(q.redrive(None).await.unwrap(), 1);
    let again = q.receive(1, VIS).await.unwrap();
    assert_eq!(again[0].enqueued_at, Some(enqueued + 86_400_000));
    assert_eq!(again[0].receive_count, 1);
}

#[tokio::test]
async fn the_backstop_is_the_retry_modules() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::new(Db::open(dir.path().join("q.db")).unwrap(), EVENTS_QUEUE);
    assert_eq!(q.max_receives, wabridge_core::retry::BACKSTOP_RECEIVES);
}

/// A database written by the version before the retry horizon (schema 1: no `retrying`
/// column) opens, keeps its messages and gains the column.
#[tokio::test]
async fn a_schema_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE queue_messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, msg_key TEXT NOT NULL,
                body TEXT NOT NULL, visible_at INTEGER NOT NULL,
                receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT,
                enqueued_at INTEGER NOT NULL);
             INSERT INTO queue_messages(queue, msg_key, body, visible_at, enqueued_at)
                VALUES ('events', 'k', 'old body', 0, 5);
             PRAGMA user_version=1;",
        )
        .unwrap();
    }
    let q = SqliteQueue::new(Db::open(&path).unwrap(), EVENTS_QUEUE);
    let got = q.receive(1, VIS).await.unwrap();
    assert_eq!(got[0].body, "old body");
    assert_eq!(got[0].enqueued_at, Some(5));
    q.retry_later(&got[0].receipt, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(q.wake().await.unwrap(), 1);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::db::SCHEMA_VERSION);
}

#[tokio::test]
async fn release_held_brings_back_what_a_dead_process_held_but_not_delayed_messages() {
    let (_d, _clock, q) = setup(5);
    q.send_batch(&[msg("in-flight"), msg("retrying")])
        .await
        .unwrap();
    q.send_batch(&[OutgoingMessage {
        delay: Some(Duration::from_secs(600)),
        ..msg("delayed")
    }])
    .await
    .unwrap();
    let got = q.receive(10, VIS).await.unwrap();
    assert_eq!(got.len(), 2);
    let retrying = got.iter().find(|d| d.body == "body-retrying").unwrap();
    q.retry_later(&retrying.receipt, Duration::from_secs(900))
        .await
        .unwrap();
    assert!(q.receive(10, VIS).await.unwrap().is_empty());
    assert_eq!(q.release_held().await.unwrap(), 2);
    let mut back: Vec<String> = q
        .receive(10, VIS)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.body)
        .collect();
    back.sort();
    assert_eq!(back, ["body-in-flight", "body-retrying"]);
}
