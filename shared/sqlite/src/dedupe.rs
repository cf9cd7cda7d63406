//! Dedupe over SQLite: accepted keys with an expiry, purged periodically.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{sql_err, Clock, Db};
use super::ledger::SqliteLedger;
use super::sends::SqliteSends;
use wabridge_core::dedupe::Dedupe;
use wabridge_core::error::StoreError;

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
    /// Pair windows purged by the same task a day after they end.
    sends: Option<SqliteSends>,
    consent: Option<crate::consent::SqliteConsent>,
    audit: Option<crate::audit::SqliteAudit>,
    content: Option<crate::retention::SqliteContentPurge>,
    /// Media files past the content retention (and orphans): [`crate::media_index::purge`].
    media: Option<(crate::LocalMediaStore, Duration)>,
    /// Expired media upload ids and uploads' details past the content retention.
    media_uploads: Option<crate::media_uploads::SqliteMediaUploads>,
}

impl SqliteDedupe {
    pub fn new(db: Db) -> Self {
        SqliteDedupe {
            db,
            clock: Clock::System,
            ledger: None,
            sends: None,
            consent: None,
            audit: None,
            content: None,
            media: None,
            media_uploads: None,
        }
    }

    pub fn with_clock(db: Db, clock: Clock) -> Self {
        SqliteDedupe {
            db,
            clock,
            ledger: None,
            sends: None,
            consent: None,
            audit: None,
            content: None,
            media: None,
            media_uploads: None,
        }
    }

    /// Makes [`SqliteDedupe::spawn_purger`] also delete expired media upload ids and uploaded
    /// files' details past `retention` (the content retention).
    pub fn with_media_upload_purge(mut self, retention: Duration) -> Self {
        self.media_uploads = Some(
            crate::media_uploads::SqliteMediaUploads::new(self.db.clone())
                .with_clock(self.clock.clone())
                .with_retention(retention),
        );
        self
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

    /// Makes [`SqliteDedupe::spawn_purger`] also delete the sender's pair windows a day after
    /// they ended ([`SqliteSends::purge_pair_windows`]), and the (number, customer) windows
    /// two days after their last message: one row per recipient otherwise stays.
    pub fn with_pair_window_purge(mut self) -> Self {
        self.sends = Some(SqliteSends::new(self.db.clone()));
        self
    }

    /// Also purges audit lines past their retention.
    pub fn with_audit_purge(mut self, audit: crate::audit::SqliteAudit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Also strips message content past `retention` ([`crate::retention`]).
    pub fn with_content_purge(mut self, retention: Duration) -> Self {
        self.content = Some(
            crate::retention::SqliteContentPurge::new(self.db.clone(), retention)
                .with_clock(self.clock.clone()),
        );
        self
    }

    /// Also deletes media files no message used within `retention` (the content retention).
    pub fn with_media_purge(mut self, store: crate::LocalMediaStore, retention: Duration) -> Self {
        self.media = Some((store, retention));
        self
    }

    /// Also purges expired `POST /consents` idempotency markers.
    pub fn with_consent_key_purge(mut self) -> Self {
        self.consent = Some(crate::consent::SqliteConsent::new(self.db.clone()));
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

    /// One round of every purge this purger was given, each in small batches so the writer is
    /// never held long. Failures are logged and left for the next round.
    pub async fn purge_all(&self) {
        purge_in_batches("expired dedupe keys", || self.purge_expired(PURGE_BATCH)).await;
        if let Some(ledger) = &self.ledger {
            purge_in_batches("confirmed ledger entries past retention", || {
                ledger.purge_expired(PURGE_BATCH)
            })
            .await;
        }
        if let Some(consent) = &self.consent {
            let now = self.clock.now_ms();
            purge_in_batches("expired consent idempotency keys", || {
                consent.purge_expired_keys(now, PURGE_BATCH)
            })
            .await;
        }
        if let Some(audit) = &self.audit {
            let now = self.clock.now_ms();
            purge_in_batches("audit lines past retention", || {
                audit.purge_expired(now, PURGE_BATCH)
            })
            .await;
        }
        if let Some(content) = &self.content {
            purge_in_batches("record content past retention", || {
                content.purge_records(PURGE_BATCH)
            })
            .await;
            purge_in_batches("send content past retention", || {
                content.purge_sends(PURGE_BATCH)
            })
            .await;
            purge_in_batches("dead letters past retention", || {
                content.purge_dead_letters(PURGE_BATCH)
            })
            .await;
            purge_in_batches("destination deliveries past retention", || {
                content.purge_deliveries(PURGE_BATCH)
            })
            .await;
        }
        if let Some((store, retention)) = &self.media {
            match crate::media_index::purge(&self.db, store, *retention, self.clock.now_ms()).await
            {
                Ok((rows, files)) if rows + files > 0 => {
                    tracing::info!(rows, files, "purged media past the content retention")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "media purge failed; retried next round"),
            }
        }
        if let Some(uploads) = &self.media_uploads {
            purge_in_batches("expired media upload ids and upload details", || {
                uploads.purge(PURGE_BATCH)
            })
            .await;
        }
        if let Some(sends) = &self.sends {
            let before = self.clock.now_ms().saturating_sub(PAIR_WINDOW_KEEP_MS);
            purge_in_batches("ended pair windows", || {
                sends.purge_pair_windows(before, PURGE_BATCH)
            })
            .await;
            let window = crate::window::SqliteWindow::new(self.db.clone());
            let before = self.clock.now_ms().saturating_sub(NUMBER_WINDOW_KEEP_MS);
            purge_in_batches("number windows past two windows", || {
                window.purge_number_windows(before, PURGE_BATCH)
            })
            .await;
        }
    }

    /// Runs [`SqliteDedupe::purge_all`] every `every` until `stop` turns true.
    pub fn spawn_purger(
        self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.purge_all().await;
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

/// Rows per purge transaction: small, so the writer is never held long.
const PURGE_BATCH: usize = 1000;
/// How long an ended pair window is kept (as DynamoDB's TTL on the same items).
const PAIR_WINDOW_KEEP_MS: i64 = 86_400_000;
/// How long a (number, customer) window's row is kept: two windows (see `window.rs`).
const NUMBER_WINDOW_KEEP_MS: i64 = 2 * 86_400_000;

/// Runs `purge` until a batch comes back short or fails; logs what it removed.
async fn purge_in_batches<F, Fut>(what: &str, mut purge: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, StoreError>>,
{
    let mut purged = 0;
    loop {
        match purge().await {
            Ok(n) => {
                purged += n;
                if n < PURGE_BATCH {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, what, "purge failed");
                break;
            }
        }
    }
    if purged > 0 {
        tracing::info!(purged, what, "purged");
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
        d.mark(&["k"], wabridge_core::dedupe::DEFAULT_DEDUPE_TTL)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(7 * 24 * 3600));
        assert_eq!(d.seen(&["k"]).await.unwrap(), vec![true]);
    }

    /// The first column of every row `sql` selects.
    async fn strings(db: &Db, sql: &'static str) -> Vec<String> {
        db.read(move |c| {
            let mut s = c.prepare(sql).map_err(sql_err)?;
            let rows = s
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(sql_err);
            rows
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_purger_task_also_purges_old_confirmed_ledger_entries_and_ended_pair_windows() {
        use wabridge_core::ledger::Ledger;
        use wabridge_core::sends::store::SendStore;
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
        // Conversation message marks: one written 31 days ago, one now.
        let now = clock.now_ms();
        let marks = format!(
            "INSERT INTO conversation_messages VALUES ('wamid.old', 'c', 1, {}), ('wamid.new', 'c', 1, {now})",
            now - 31 * 86_400_000
        );
        db.write(move |t| t.execute_batch(&marks).map_err(crate::db::sql_err))
            .await
            .unwrap();
        // Pair windows: one ended two days ago, one ended an hour ago, one still held.
        let sends = SqliteSends::new(db.clone());
        let six_s = Duration::from_secs(6);
        for (recipient, at) in [
            ("+5215500000001", now - 2 * 86_400_000),
            ("+5215500000002", now - 3_600_000),
            ("+5215500000003", now),
        ] {
            assert_eq!(
                sends
                    .reserve_pair(recipient, None, "s", at, six_s)
                    .await
                    .unwrap(),
                None
            );
        }

        // (Number, customer) windows: one three days old, one an hour old.
        let window = crate::window::SqliteWindow::new(db.clone());
        use wabridge_core::window::WindowStore;
        for (number, at) in [("111", now - 3 * 86_400_000), ("222", now - 3_600_000)] {
            window
                .record_inbound("phone:1", Some(number), at)
                .await
                .unwrap();
        }

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // One round runs at once; then the task waits for the next one or the stop.
        let task = SqliteDedupe::with_clock(db.clone(), clock.clone())
            .with_ledger_purge(30 * day)
            .with_pair_window_purge()
            .spawn_purger(Duration::from_secs(3600), stop_rx);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let left = strings(&db, "SELECT effect_id FROM effects ORDER BY effect_id").await;
        assert_eq!(left, vec!["old-unconfirmed", "recent"]);
        let marks = strings(&db, "SELECT message_id FROM conversation_messages").await;
        assert_eq!(marks, vec!["wamid.new"]);
        let windows = strings(
            &db,
            "SELECT recipient FROM send_pair_windows ORDER BY recipient",
        )
        .await;
        assert_eq!(windows, vec!["+5215500000002", "+5215500000003"]);
        let numbers = strings(&db, "SELECT number FROM last_inbound_number").await;
        assert_eq!(
            numbers,
            vec!["222"],
            "the number window two windows old goes"
        );
        // The window still held keeps holding.
        assert!(sends
            .reserve_pair("+5215500000003", None, "other", now + 1000, six_s)
            .await
            .unwrap()
            .is_some());
    }
}
