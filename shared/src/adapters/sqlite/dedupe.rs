//! Dedupe over SQLite: accepted keys with an expiry, purged periodically.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{sql_err, Clock, Db};
use super::ledger::SqliteLedger;
use crate::dedupe::Dedupe;
use crate::error::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dedupe_keys (
    key        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL  -- Unix ms
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_keys_expiry ON dedupe_keys(expires_at);
";

/// Whether `key` is in `dedupe_keys` and not expired at `now_ms` (the inbox's recent keys in
/// `dedupe_log` are checked through its index, see [`super::recent`]).
pub(crate) fn is_merged_seen(
    conn: &Connection,
    key: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM dedupe_keys WHERE key = ?1 AND expires_at > ?2")
        .and_then(|mut s| s.query_row(params![key, now_ms], |_| Ok(())).optional())
        .map(|found| found.is_some())
        .map_err(sql_err)
}

/// Whether `key` is remembered and not expired at `now_ms`, merged or still in the inbox's log
/// (which has no index by key: a scan, bounded by the merger; not on the ingest path).
fn is_seen(conn: &Connection, key: &str, now_ms: i64) -> Result<bool, StoreError> {
    if is_merged_seen(conn, key, now_ms)? {
        return Ok(true);
    }
    conn.prepare_cached("SELECT 1 FROM dedupe_log WHERE key = ?1 AND expires_at > ?2 LIMIT 1")
        .and_then(|mut s| s.query_row(params![key, now_ms], |_| Ok(())).optional())
        .map(|found| found.is_some())
        .map_err(sql_err)
}

/// Remembers `key` until `expires_at` (never shortening an existing expiry).
pub(crate) fn mark_one(conn: &Connection, key: &str, expires_at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO dedupe_keys(key, expires_at) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
    )
    .and_then(|mut s| s.execute(params![key, expires_at]))
    .map(|_| ())
    .map_err(sql_err)
}

pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

#[derive(Clone, Debug)]
pub struct SqliteDedupe {
    db: Db,
    clock: Clock,
    /// Purged by the same task, past its retention (see [`SqliteDedupe::with_ledger`]).
    ledger: Option<SqliteLedger>,
}

impl SqliteDedupe {
    pub fn new(db: Db) -> Self {
        SqliteDedupe {
            db,
            clock: Clock::System,
            ledger: None,
        }
    }

    pub fn with_clock(db: Db, clock: Clock) -> Self {
        SqliteDedupe {
            db,
            clock,
            ledger: None,
        }
    }

    /// Makes [`SqliteDedupe::spawn_purger`] also delete the effects ledger's confirmed entries
    /// not written for `retention` ([`SqliteLedger::purge_expired`]) from the same database:
    /// one purger task for every per-event table that would otherwise grow without bound.
    pub fn with_ledger_purge(mut self, retention: Duration) -> Self {
        self.ledger = Some(
            SqliteLedger::new(self.db.clone())
                .with_clock(self.clock.clone())
                .with_retention(retention),
        );
        self
    }

    /// How many keys are remembered and not expired (merged or still in the inbox's log).
    pub async fn count(&self) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM (
                       SELECT key FROM dedupe_keys WHERE expires_at > ?1
                       UNION SELECT key FROM dedupe_log WHERE expires_at > ?1)",
                    params![now],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(sql_err)
            })
            .await
    }

    /// Deletes up to `limit` expired keys; returns how many went.
    pub async fn purge_expired(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        let limit = limit as i64;
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "DELETE FROM dedupe_keys WHERE key IN
                     (SELECT key FROM dedupe_keys WHERE expires_at <= ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![now, limit]))
                .map_err(sql_err)
            })
            .await
    }

    /// Purges expired keys every `every` until `stop` turns true, in small batches so the writer
    /// is never held long.
    pub fn spawn_purger(
        self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                loop {
                    match self.purge_expired(1000).await {
                        Ok(1000) => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "dedupe purge failed");
                            break;
                        }
                    }
                }
                if let Some(ledger) = &self.ledger {
                    let mut purged = 0;
                    loop {
                        match ledger.purge_expired(1000).await {
                            Ok(n) => {
                                purged += n;
                                if n < 1000 {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "ledger purge failed");
                                break;
                            }
                        }
                    }
                    if purged > 0 {
                        tracing::info!(purged, "purged confirmed ledger entries past retention");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    return;
                }
            }
        })
    }
}

#[async_trait]
impl Dedupe for SqliteDedupe {
    async fn seen(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let now = self.clock.now_ms();
        self.db
            .read(move |c| keys.iter().map(|k| is_seen(c, k, now)).collect())
            .await
    }

    async fn mark(&self, keys: &[&str], ttl: Duration) -> Result<(), StoreError> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let expires_at = self.clock.now_ms().saturating_add(ttl_ms(ttl));
        self.db
            .write(move |t| keys.iter().try_for_each(|k| mark_one(t, k, expires_at)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_seen_until_they_expire_then_purged() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("d.db")).unwrap();
        let clock = Clock::manual(1_000_000);
        let d = SqliteDedupe::with_clock(db.clone(), clock.clone());
        assert_eq!(d.seen(&["a", "b"]).await.unwrap(), vec![false, false]);
        d.mark(&["a"], Duration::from_secs(60)).await.unwrap();
        assert_eq!(d.seen(&["a", "b"]).await.unwrap(), vec![true, false]);
        // Marking again with a shorter TTL never shortens the expiry.
        d.mark(&["a"], Duration::from_secs(1)).await.unwrap();
        clock.advance(Duration::from_secs(59));
        assert_eq!(d.seen(&["a"]).await.unwrap(), vec![true]);
        assert_eq!(d.purge_expired(100).await.unwrap(), 0);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            d.seen(&["a"]).await.unwrap(),
            vec![false],
            "expired at exactly the TTL"
        );
        assert_eq!(d.purge_expired(100).await.unwrap(), 1);
        let left: i64 = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM dedupe_keys", [], |r| r.get(0))
                    .map_err(sql_err)
            })
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn default_ttl_covers_metas_retry_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("d.db")).unwrap();
        let clock = Clock::manual(0);
        let d = SqliteDedupe::with_clock(db, clock.clone());
        d.mark(&["k"], crate::dedupe::DEFAULT_DEDUPE_TTL)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(7 * 24 * 3600));
        assert_eq!(d.seen(&["k"]).await.unwrap(), vec![true]);
    }

    #[tokio::test]
    async fn the_purger_task_also_purges_old_confirmed_ledger_entries() {
        use crate::ledger::Ledger;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("d.db")).unwrap();
        let clock = Clock::manual(1_700_000_000_000);
        let ledger = SqliteLedger::new(db.clone()).with_clock(clock.clone());
        let day = Duration::from_secs(86_400);
        for id in ["old", "old-unconfirmed"] {
            ledger.claim(id, day).await.unwrap();
        }
        ledger.confirm("old").await.unwrap();
        clock.advance(31 * day);
        ledger.claim("recent", day).await.unwrap();
        ledger.confirm("recent").await.unwrap();

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // One round runs at once; then the task waits for the next one or the stop.
        let task = SqliteDedupe::with_clock(db.clone(), clock.clone())
            .with_ledger_purge(30 * day)
            .spawn_purger(Duration::from_secs(3600), stop_rx);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let left: Vec<String> = db
            .read(|c| {
                let mut s = c
                    .prepare("SELECT effect_id FROM effects ORDER BY effect_id")
                    .map_err(sql_err)?;
                let ids = s
                    .query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .map_err(sql_err);
                ids
            })
            .await
            .unwrap();
        assert_eq!(left, vec!["old-unconfirmed", "recent"]);
    }
}
