//! Effects ledger over SQLite: claims, confirmations and the highest status per message, each a
//! conditional change inside one write transaction (see [`crate::ledger`] for the protocol).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Db};
use crate::error::StoreError;
use crate::ledger::{Claim, Ledger};

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
";

#[derive(Clone, Debug)]
pub struct SqliteLedger {
    db: Db,
}

impl SqliteLedger {
    pub fn new(db: Db) -> Self {
        SqliteLedger { db }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn claim(&self, effect_id: &str, lease: Duration) -> Result<Claim, StoreError> {
        let id = effect_id.to_string();
        self.db
            .write(move |t| {
                let now = now_ms();
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
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "UPDATE effects SET lease_until = 0, updated_at = ?2
                     WHERE effect_id = ?1 AND state = 'pending'",
                )
                .and_then(|mut s| s.execute(params![id, now_ms()]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn advance_status(&self, message_id: &str, rank: u8) -> Result<bool, StoreError> {
        let id = message_id.to_string();
        self.db
            .write(move |t| {
                let changed = t
                    .prepare_cached(
                        "INSERT INTO message_status(message_id, rank, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(message_id) DO UPDATE SET rank = ?2, updated_at = ?3
                         WHERE message_status.rank <= ?2",
                    )
                    .and_then(|mut s| s.execute(params![id, rank, now_ms()]))
                    .map_err(sql_err)?;
                Ok(changed > 0)
            })
            .await
    }
}

impl SqliteLedger {
    async fn set_state(&self, effect_id: &str, state: &'static str) -> Result<(), StoreError> {
        let id = effect_id.to_string();
        self.db
            .write(move |t| {
                // `done` is final: a late release never reopens a confirmed effect.
                t.prepare_cached(
                    "INSERT INTO effects(effect_id, state, lease_until, attempts, updated_at)
                     VALUES (?1, ?2, 0, 1, ?3)
                     ON CONFLICT(effect_id) DO UPDATE SET state = ?2, updated_at = ?3
                     WHERE effects.state != 'done'",
                )
                .and_then(|mut s| s.execute(params![id, state, now_ms()]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}
