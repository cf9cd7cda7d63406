//! The dedupe log: model test with failures, merges and restarts; memory give-back.

use std::collections::BTreeSet;

use super::*;
use crate::testing::{event, open, queued, setup};
use crate::{SqliteDedupe, SqliteInbox};
use wabridge_core::dedupe::Dedupe;
use wabridge_core::inbox::{AcceptReport, Inbox};

async fn accept(inbox: &SqliteInbox, keys: &[&str]) -> (usize, usize) {
    let r = inbox
        .accept(keys.iter().map(|k| event(k)).collect())
        .await
        .unwrap();
    (r.accepted, r.duplicates)
}

async fn rows(db: &Db, table: &'static str) -> i64 {
    db.read(move |c| {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(sql_err)
    })
    .await
    .unwrap()
}

/// Rows in (the log, the merged table).
async fn tables(db: &Db) -> (i64, i64) {
    (rows(db, "dedupe_log").await, rows(db, "dedupe_keys").await)
}

#[tokio::test]
async fn keys_stay_claimed_through_merges_and_restarts() {
    let (_d, db, clock, inbox) = setup().await;
    assert_eq!(accept(&inbox, &["a", "b"]).await, (2, 0));
    assert_eq!(inbox.recent_keys(), 2);
    assert_eq!(tables(&db).await, (2, 0));
    // The Dedupe port over the same file sees the log too (the CLI's stats count with it).
    let port = SqliteDedupe::with_clock(db.clone(), clock.clone());
    assert_eq!(port.seen(&["a", "z"]).await.unwrap(), [true, false]);
    assert_eq!(port.count().await.unwrap(), 2);

    assert_eq!(inbox.merge_recent().await.unwrap(), 2);
    assert_eq!(inbox.recent_keys(), 0, "merged keys leave the index");
    assert_eq!(port.count().await.unwrap(), 2);
    assert_eq!(tables(&db).await, (0, 2));
    // "a" is found in the merged table, "c" goes to the log.
    assert_eq!(accept(&inbox, &["a", "c"]).await, (1, 1));

    drop(inbox);
    let inbox = open(&db, &clock).await;
    assert_eq!(
        inbox.recent_keys(),
        1,
        "the index is rebuilt from the log at open"
    );
    assert_eq!(accept(&inbox, &["a", "b", "c", "d"]).await, (1, 3));
    assert_eq!(queued(&db).await, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn one_inbox_per_database_file() {
    let (_d, db, clock, inbox) = setup().await;
    let err = SqliteInbox::open(db.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("another wabridge process"),
        "{err}"
    );
    assert!(err.to_string().contains("i.db.inbox-lock"), "{err}");
    // Another handle on the same file (what a second process has) is refused as well.
    let other = Db::open(db.path()).unwrap();
    assert!(SqliteInbox::open(other.clone()).await.is_err());
    // A clone shares the owner; the lock goes with the last of them.
    let clone = inbox.clone();
    drop(inbox);
    assert!(SqliteInbox::open(other.clone()).await.is_err());
    assert_eq!(accept(&clone, &["a"]).await, (1, 0));
    drop(clone);
    let second = open(&other, &clock).await;
    assert_eq!(accept(&second, &["a", "b"]).await, (1, 1));
}

#[tokio::test]
async fn an_expired_key_comes_back_and_the_merge_keeps_its_later_expiry() {
    let (_d, db, clock, inbox) = setup().await;
    let inbox = inbox.with_ttl(Duration::from_secs(60));
    assert_eq!(accept(&inbox, &["k"]).await, (1, 0));
    clock.advance(Duration::from_secs(59));
    assert_eq!(accept(&inbox, &["k"]).await, (0, 1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(accept(&inbox, &["k"]).await, (1, 0), "expired in the log");
    assert_eq!(rows(&db, "dedupe_log").await, 2);
    assert_eq!(inbox.merge_recent().await.unwrap(), 2);
    let expiry: i64 = db
        .read(|c| {
            c.query_row(
                "SELECT expires_at FROM dedupe_keys WHERE key = 'k'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(expiry, clock.now_ms() + 60_000, "the later expiry wins");
    clock.advance(Duration::from_secs(59));
    assert_eq!(accept(&inbox, &["k"]).await, (0, 1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        accept(&inbox, &["k"]).await,
        (1, 0),
        "expired in the merged table"
    );
}

/// xorshift64: a fixed seed makes a failure reproducible.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Random deliveries (alone and several in one group commit), deliveries failing after some
/// of their keys were appended (their index entries go stale), merges of small chunks and
/// restarts, checked against a model: each report counts exactly the keys new to the model,
/// and in the end every key ever accepted is queued exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_failures_merges_and_restarts_queue_each_key_once() {
    let (_d, db, clock, mut inbox) = setup().await;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut model: BTreeSet<String> = BTreeSet::new();
    let pick = |seed: &mut u64| -> Vec<String> {
        let n = 1 + next(seed) % 5;
        (0..n).map(|_| format!("k{}", next(seed) % 80)).collect()
    };
    let new_in = |model: &BTreeSet<String>, keys: &[String]| -> BTreeSet<String> {
        keys.iter()
            .filter(|k| !model.contains(*k))
            .cloned()
            .collect()
    };
    let mut failures = 0;
    for round in 0..300 {
        match next(&mut seed) % 10 {
            0 => {
                inbox.recent.merge(&db, 7).await.unwrap();
            }
            1 => {
                drop(inbox);
                inbox = open(&db, &clock).await;
            }
            2 => {
                // The enqueue of an "x" key fails after the delivery's other new keys were
                // appended: it keeps nothing. A concurrent delivery shares the group commit
                // and must not be affected, even where the two share keys.
                db.write(|t| {
                    t.execute_batch(
                        "CREATE TRIGGER inject_fault BEFORE INSERT ON queue_messages
                         WHEN NEW.msg_key LIKE 'x%' BEGIN SELECT RAISE(ABORT, 'injected'); END;",
                    )
                    .map_err(sql_err)
                })
                .await
                .unwrap();
                let mut failing = pick(&mut seed);
                failing.push(format!("x{round}"));
                let other = pick(&mut seed);
                let (a, b) = (inbox.clone(), inbox.clone());
                let (rf, ro) = tokio::join!(
                    a.accept(failing.iter().map(|k| event(k)).collect()),
                    b.accept(other.iter().map(|k| event(k)).collect()),
                );
                assert!(rf.unwrap_err().to_string().contains("injected"));
                let fresh = new_in(&model, &other);
                assert_eq!(ro.unwrap().accepted, fresh.len(), "{other:?}");
                model.extend(fresh);
                failures += 1;
                db.write(|t| {
                    t.execute_batch("DROP TRIGGER inject_fault")
                        .map_err(sql_err)
                })
                .await
                .unwrap();
            }
            3 => {
                // Several deliveries at once: one group commit, keys shared between them.
                let deliveries: Vec<Vec<String>> = (0..4).map(|_| pick(&mut seed)).collect();
                let all: Vec<String> = deliveries.iter().flatten().cloned().collect();
                let fresh = new_in(&model, &all);
                let tasks: Vec<_> = deliveries
                    .into_iter()
                    .map(|keys| {
                        let inbox = inbox.clone();
                        tokio::spawn(async move {
                            inbox.accept(keys.iter().map(|k| event(k)).collect()).await
                        })
                    })
                    .collect();
                let mut accepted = 0;
                for t in tasks {
                    accepted += t.await.unwrap().unwrap().accepted;
                }
                assert_eq!(accepted, fresh.len());
                model.extend(fresh);
            }
            _ => {
                let keys = pick(&mut seed);
                let fresh = new_in(&model, &keys);
                let r = inbox
                    .accept(keys.iter().map(|k| event(k)).collect())
                    .await
                    .unwrap();
                assert_eq!(
                    r,
                    AcceptReport {
                        accepted: fresh.len(),
                        duplicates: keys.len() - fresh.len()
                    }
                );
                model.extend(fresh);
            }
        }
    }
    let mut keys = queued(&db).await;
    keys.sort();
    let expected: Vec<String> = model.into_iter().collect();
    assert_eq!(keys, expected, "each accepted key queued exactly once");
    assert!(rows(&db, "dedupe_keys").await > 0, "some merges ran");
    assert!(failures > 10, "{failures} failed deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merger_waits_for_a_burst_unless_the_log_outgrows_its_bound() {
    let (_d, db, _clock, inbox) = setup().await;
    let inbox = inbox.with_merge_policy(MergePolicy {
        every: Duration::from_millis(20),
        chunk: 3,
        anyway_at: 10,
    });
    let pressure = Pressure::new(2);
    let burst: Vec<_> = (0..2).map(|_| pressure.enter()).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let merger = inbox.spawn_merger(Some(pressure.clone()), stop_rx);

    let first: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(accept(&inbox, &first).await, (5, 0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox.recent_keys(), 5, "no merge during the burst");

    let more: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    assert_eq!(accept(&inbox, &more).await, (6, 0));
    // 11 >= 10: one chunk of 3 goes, then the burst holds the rest.
    wait_until(|| inbox.recent_keys() == 8).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inbox.recent_keys(), 8);
    assert_eq!(rows(&db, "dedupe_keys").await, 3);

    drop(burst);
    wait_until(|| inbox.recent_keys() == 0).await;
    assert_eq!(tables(&db).await, (0, 11));
    assert_eq!(accept(&inbox, &first).await, (0, 5));
    stop_tx.send(true).unwrap();
    merger.await.unwrap();
}

async fn wait_until(cond: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(10), "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
