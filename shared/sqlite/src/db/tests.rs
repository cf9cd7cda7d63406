use super::*;
use rusqlite::params;

fn db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    (dir, db)
}

/// A database with one table, `n(v INTEGER PRIMARY KEY)`.
async fn db_with_numbers() -> (tempfile::TempDir, Db) {
    let (dir, db) = db();
    db.write(|t| {
        t.execute_batch("CREATE TABLE n(v INTEGER PRIMARY KEY)")
            .map_err(sql_err)
    })
    .await
    .unwrap();
    (dir, db)
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    db.read(move |c| c.query_row(sql, [], |r| r.get(0)).map_err(sql_err))
        .await
        .unwrap()
}

#[tokio::test]
async fn opens_in_wal_with_full_sync() {
    let (_dir, db) = db();
    let (mode, sync) = db
        .write(|t| {
            let mode: String = t
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(sql_err)?;
            let sync: i64 = t
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .map_err(sql_err)?;
            Ok((mode, sync))
        })
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous must be FULL (2)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_all_land_in_few_transactions() {
    let (_dir, db) = db_with_numbers().await;
    let before = db.stats();
    let mut tasks = Vec::new();
    for i in 0..2000i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |t| {
                t.prepare_cached("INSERT INTO n(v) VALUES (?1)")
                    .and_then(|mut s| s.execute(params![i]))
                    .map_err(sql_err)
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    assert_eq!(count(&db, "SELECT count(*) FROM n").await, 2000);
    let after = db.stats();
    assert_eq!(after.writes - before.writes, 2000);
    let commits = after.commits - before.commits;
    assert!(
        commits < 1000,
        "2000 concurrent writes took {commits} commits: no group commit"
    );
}

#[tokio::test]
async fn a_failing_write_rolls_back_only_itself() {
    let (_dir, db) = db_with_numbers().await;
    // Three writes queued together: the middle one inserts a row and then fails.
    let ok1 = db.write(|t| t.execute("INSERT INTO n VALUES (1)", []).map_err(sql_err));
    let bad = db.write(|t| {
        t.execute("INSERT INTO n VALUES (2)", []).map_err(sql_err)?;
        Err::<(), _>(StoreError::Unavailable("injected".into()))
    });
    let ok3 = db.write(|t| t.execute("INSERT INTO n VALUES (3)", []).map_err(sql_err));
    let (a, b, c) = tokio::join!(ok1, bad, ok3);
    assert!(a.is_ok() && c.is_ok());
    assert!(matches!(b, Err(StoreError::Unavailable(m)) if m == "injected"));
    assert_eq!(count(&db, "SELECT count(*) FROM n").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM n WHERE v = 2").await, 0);
}

/// Five writes forced into one transaction (the writer is held by an earlier write while they
/// queue): two fail after inserting a row (an error, a panic). The batch first runs without
/// savepoints, fails, and is run again with one savepoint per write: each write is answered
/// from that second run, the failing ones lose only their own rows, and the three others
/// still commit together in one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_in_one_batch_fall_back_to_isolated_writes() {
    let (_dir, db) = db_with_numbers().await;
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let hold = tokio::spawn({
        let db = db.clone();
        async move {
            db.write(move |_| {
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(10));
                Ok(())
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = db.stats();
    let insert_and_count = |v: i64| {
        move |t: &Transaction<'_>| -> Result<i64, StoreError> {
            t.execute("INSERT INTO n VALUES (?1)", params![v])
                .map_err(sql_err)?;
            t.query_row("SELECT count(*) FROM n", [], |r| r.get(0))
                .map_err(sql_err)
        }
    };
    // Queued one by one, in this order, while the writer is held.
    async fn queue<T, F>(db: &Db, f: F) -> tokio::task::JoinHandle<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: Fn(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let db = db.clone();
        let handle = tokio::spawn(async move { db.write(f).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        handle
    }
    let w1 = queue(&db, insert_and_count(1)).await;
    let w2 = queue(&db, |t| {
        t.execute("INSERT INTO n VALUES (2)", []).map_err(sql_err)?;
        Err::<i64, _>(StoreError::Unavailable("injected".into()))
    })
    .await;
    let w3 = queue(&db, insert_and_count(3)).await;
    let w4 = queue(&db, |t| -> Result<i64, StoreError> {
        t.execute("INSERT INTO n VALUES (4)", []).map_err(sql_err)?;
        panic!("injected panic")
    })
    .await;
    let w5 = queue(&db, insert_and_count(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.send(()).unwrap();
    hold.await.unwrap().unwrap();

    assert_eq!(w1.await.unwrap().unwrap(), 1);
    assert!(matches!(w2.await.unwrap(), Err(StoreError::Unavailable(m)) if m == "injected"));
    assert_eq!(w3.await.unwrap().unwrap(), 2);
    assert!(matches!(w4.await.unwrap(), Err(StoreError::Unavailable(m)) if m.contains("panicked")));
    assert_eq!(w5.await.unwrap().unwrap(), 3);
    let kept: Vec<i64> = db
        .read(|c| {
            let mut s = c.prepare("SELECT v FROM n ORDER BY v").map_err(sql_err)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(kept, vec![1, 3, 5]);
    let after = db.stats();
    // The held write's transaction, then ONE for the five (not one per write).
    assert_eq!(after.commits - before.commits, 2);
}

#[tokio::test]
async fn writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let db = Db::open(&path).unwrap();
        db.write(|t| {
            t.execute_batch("CREATE TABLE n(v INTEGER); INSERT INTO n VALUES (7);")
                .map_err(sql_err)
        })
        .await
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(count(&db, "SELECT sum(v) FROM n").await, 7);
}

#[tokio::test]
async fn an_up_to_date_database_opens_while_another_connection_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(Db::open(&path).unwrap());
    // Another process's writer in the middle of a transaction (as `serve` is under load).
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO dedupe_log(seq, key, expires_at) VALUES (1, 'k', 0);",
        )
        .unwrap();
    let options = DbOptions {
        busy_timeout: Duration::from_millis(100),
        ..DbOptions::default()
    };
    let db = Db::open_with(&path, options).expect("no write lock needed to open");
    assert_eq!(count(&db, "SELECT count(*) FROM dedupe_log").await, 0);
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM dedupe_log").await, 1);
}
