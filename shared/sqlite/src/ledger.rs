//! Effects ledger over SQLite: claims, confirmations and the highest status per message, each a
//! conditional change inside one write transaction (see [`wabridge_core::ledger`] for the protocol).
//!
//! Retention: confirmed (`done`) effects and message statuses not written for the retention
//! ([`wabridge_core::config::ledger_retention`], default 30 days) are deleted by
//! [`SqliteLedger::purge_expired`], which `wabridge serve`'s purger runs hourly. Pending and
//! released entries are kept: they are few (an event that never succeeded) and an in-doubt
//! marker must not be forgotten while its message could still come back.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Clock, Db};
use wabridge_core::error::StoreError;
use wabridge_core::ledger::{Claim, Ledger};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS effects (
    effect_id   TEXT PRIMARY KEY,
    state       TEXT NOT NULL,      -- pending | done | released
    lease_until INTEGER NOT NULL,   -- Unix ms (pending only)
    attempts    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS message_status (
    message_id TEXT PRIMARY KEY,
    rank       INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_done_by_age ON effects(updated_at) WHERE state = 'done';
CREATE INDEX IF NOT EXISTS message_status_by_age ON message_status(updated_at);
";

#[derive(Clone, Debug)]
pub struct SqliteLedger {
    db: Db,
    clock: Clock,
    retention: Duration,
}

impl SqliteLedger {
    /// A ledger with the default retention ([`wabridge_core::config::DEFAULT_LEDGER_RETENTION_DAYS`]).
    pub fn new(db: Db) -> Self {
        SqliteLedger {
            db,
            clock: Clock::System,
            retention: Duration::from_secs(
                wabridge_core::config::DEFAULT_LEDGER_RETENTION_DAYS * 86_400,
            ),
        }
    }

    /// How long confirmed entries are kept after their last write.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Time source (tests move a manual clock past the retention).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Deletes up to `limit` confirmed effects, message statuses and conversation message marks
    /// each, last written more than the retention ago; returns how many rows went.
    pub async fn purge_expired(&self, limit: usize) -> Result<usize, StoreError> {
        let cutoff = self
            .clock
            .now_ms()
            .saturating_sub(i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX));
        let limit = limit as i64;
        self.db
            .write(move |t| {
                let effects = t
                    .prepare_cached(
                        "DELETE FROM effects WHERE effect_id IN (SELECT effect_id FROM effects
                         WHERE state = 'done' AND updated_at < ?1 LIMIT ?2)",
                    )
                    .and_then(|mut s| s.execute(params![cutoff, limit]))
                    .map_err(sql_err)?;
                let statuses = t
                    .prepare_cached(
                        "DELETE FROM message_status WHERE message_id IN (SELECT message_id
                         FROM message_status WHERE updated_at < ?1 LIMIT ?2)",
                    )
                    .and_then(|mut s| s.execute(params![cutoff, limit]))
                    .map_err(sql_err)?;
                // A conversation's message marks live as long as a status may still come.
                let marks = t
                    .prepare_cached(
                        "DELETE FROM conversation_messages WHERE message_id IN (SELECT message_id
                         FROM conversation_messages WHERE written_at < ?1 LIMIT ?2)",
                    )
                    .and_then(|mut s| s.execute(params![cutoff, limit]))
                    .map_err(sql_err)?;
                Ok(effects + statuses + marks)
            })
            .await
    }
}

impl SqliteLedger {
    /// Ends every claim's lease now, keeping it in doubt; returns how many. For the start of
    /// `wabridge serve`: the data dir is locked to one process, so a pending claim belongs to a
    /// process that is gone (killed mid-call), and waiting out its lease only delays the
    /// backlog. The next attempt knows the effect may have been applied (see `Claim`).
    pub async fn release_held(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "UPDATE effects SET lease_until = 0, updated_at = ?1
                     WHERE state = 'pending' AND lease_until > ?1",
                )
                .and_then(|mut s| s.execute(params![now]))
                .map_err(sql_err)
            })
            .await
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn claim(&self, effect_id: &str, lease: Duration) -> Result<Claim, StoreError> {
        let id = effect_id.to_string();
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                let until = now + lease.as_millis() as i64;
                let row: Option<(String, i64)> = t
                    .prepare_cached("SELECT state, lease_until FROM effects WHERE effect_id = ?1")
                    .and_then(|mut s| {
                        s.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(sql_err)?;
                let in_doubt = match row {
                    Some((state, _)) if state == "done" => return Ok(Claim::Done),
                    Some((state, lease_until)) if state == "pending" && lease_until > now => {
                        return Ok(Claim::Busy(Duration::from_millis(
                            (lease_until - now) as u64,
                        )))
                    }
                    Some((state, _)) => state == "pending",
                    None => false,
                };
                t.prepare_cached(
                    "INSERT INTO effects(effect_id, state, lease_until, attempts, updated_at)
                     VALUES (?1, 'pending', ?2, 1, ?3)
                     ON CONFLICT(effect_id) DO UPDATE SET state = 'pending', lease_until = ?2,
                       attempts = attempts + 1, updated_at = ?3",
                )
                .and_then(|mut s| s.execute(params![id, until, now]))
                .map_err(sql_err)?;
                Ok(Claim::Proceed { in_doubt })
            })
            .await
    }

    async fn confirm(&self, effect_id: &str) -> Result<(), StoreError> {
        self.set_state(effect_id, "done").await
    }

    async fn release(&self, effect_id: &str) -> Result<(), StoreError> {
        self.set_state(effect_id, "released").await
    }

    async fn abandon(&self, effect_id: &str) -> Result<(), StoreError> {
        let id = effect_id.to_string();
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "UPDATE effects SET lease_until = 0, updated_at = ?2
                     WHERE effect_id = ?1 AND state = 'pending'",
                )
                .and_then(|mut s| s.execute(params![id, now]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn advance_status(&self, message_id: &str, rank: u8) -> Result<bool, StoreError> {
        let id = message_id.to_string();
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                let changed = t
                    .prepare_cached(
                        "INSERT INTO message_status(message_id, rank, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(message_id) DO UPDATE SET rank = ?2, updated_at = ?3
                         WHERE message_status.rank <= ?2",
                    )
                    .and_then(|mut s| s.execute(params![id, rank, now]))
                    .map_err(sql_err)?;
                Ok(changed > 0)
            })
            .await
    }
}

impl SqliteLedger {
    async fn set_state(&self, effect_id: &str, state: &'static str) -> Result<(), StoreError> {
        let id = effect_id.to_string();
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                // `done` is final: a late release never reopens a confirmed effect.
                t.prepare_cached(
                    "INSERT INTO effects(effect_id, state, lease_until, attempts, updated_at)
                     VALUES (?1, ?2, 0, 1, ?3)
                     ON CONFLICT(effect_id) DO UPDATE SET state = ?2, updated_at = ?3
                     WHERE effects.state != 'done'",
                )
                .and_then(|mut s| s.execute(params![id, state, now]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    async fn effect_state(db: &Db, id: &str) -> Option<String> {
        let id = id.to_string();
        db.read(move |c| {
            c.query_row(
                "SELECT state FROM effects WHERE effect_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn confirmed_entries_older_than_the_retention_are_purged_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("l.db")).unwrap();
        let clock = Clock::manual(1_700_000_000_000);
        let ledger = SqliteLedger::new(db.clone()).with_clock(clock.clone());
        assert_eq!(ledger.retention(), 30 * DAY, "the default retention");
        let lease = Duration::from_secs(60);

        // Day 0: one effect confirmed, one claimed and never confirmed, one released; a status.
        for id in ["old-done", "old-pending", "old-released"] {
            ledger.claim(id, lease).await.unwrap();
        }
        ledger.confirm("old-done").await.unwrap();
        ledger.release("old-released").await.unwrap();
        assert!(ledger.advance_status("wamid.old", 2).await.unwrap());
        // Day 29: a recent confirmed effect and status.
        clock.advance(29 * DAY);
        ledger.claim("recent-done", lease).await.unwrap();
        ledger.confirm("recent-done").await.unwrap();
        assert!(ledger.advance_status("wamid.recent", 3).await.unwrap());

        // Day 30 minus 1 ms: nothing is old enough yet.
        clock.advance(DAY - Duration::from_millis(1));
        assert_eq!(ledger.purge_expired(100).await.unwrap(), 0);
        // Just past 30 days: the old confirmed effect and the old status go, nothing else.
        clock.advance(Duration::from_millis(2));
        assert_eq!(ledger.purge_expired(100).await.unwrap(), 2);
        assert_eq!(ledger.purge_expired(100).await.unwrap(), 0);
        assert_eq!(effect_state(&db, "old-done").await, None);
        assert_eq!(
            effect_state(&db, "recent-done").await.as_deref(),
            Some("done")
        );
        assert_eq!(
            effect_state(&db, "old-pending").await.as_deref(),
            Some("pending")
        );
        assert_eq!(
            effect_state(&db, "old-released").await.as_deref(),
            Some("released")
        );
        assert_eq!(
            ledger.claim("recent-done", lease).await.unwrap(),
            Claim::Done
        );
        // The unconfirmed attempt is still known to be in doubt.
        assert_eq!(
            ledger.claim("old-pending", lease).await.unwrap(),
            Claim::Proceed { in_doubt: true }
        );
        // The recent status still holds its rank; the purged one starts over.
        assert!(!ledger.advance_status("wamid.recent", 2).await.unwrap());
        assert!(ledger.advance_status("wamid.old", 1).await.unwrap());
    }

    #[tokio::test]
    async fn purge_honours_a_configured_retention_and_its_batch_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("l.db")).unwrap();
        let clock = Clock::manual(1_700_000_000_000);
        let ledger = SqliteLedger::new(db.clone())
            .with_clock(clock.clone())
            .with_retention(2 * DAY);
        for i in 0..5 {
            let id = format!("e{i}");
            ledger.claim(&id, DAY).await.unwrap();
            ledger.confirm(&id).await.unwrap();
        }
        clock.advance(2 * DAY);
        assert_eq!(ledger.purge_expired(10).await.unwrap(), 0, "not older yet");
        clock.advance(Duration::from_millis(1));
        assert_eq!(ledger.purge_expired(3).await.unwrap(), 3);
        assert_eq!(ledger.purge_expired(3).await.unwrap(), 2);
        for i in 0..5 {
            assert_eq!(effect_state(&db, &format!("e{i}")).await, None);
        }
    }

    /// What a killed process claimed is free again at the next start, still in doubt; what was
    /// confirmed or released is untouched.
    #[tokio::test]
    async fn release_held_ends_leases_and_keeps_claims_in_doubt() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("l.db")).unwrap();
        let ledger = SqliteLedger::new(db.clone());
        let lease = Duration::from_secs(60);
        for id in ["held", "done", "released"] {
            ledger.claim(id, lease).await.unwrap();
        }
        ledger.confirm("done").await.unwrap();
        ledger.release("released").await.unwrap();
        assert!(matches!(
            ledger.claim("held", lease).await.unwrap(),
            Claim::Busy(_)
        ));
        assert_eq!(ledger.release_held().await.unwrap(), 1);
        assert_eq!(
            ledger.claim("held", lease).await.unwrap(),
            Claim::Proceed { in_doubt: true }
        );
        assert_eq!(ledger.claim("done", lease).await.unwrap(), Claim::Done);
        assert_eq!(
            ledger.claim("released", lease).await.unwrap(),
            Claim::Proceed { in_doubt: false }
        );
    }
}
