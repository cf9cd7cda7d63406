//! Content retention over SQLite (see [`wabridge_core::retention`]): the purger strips the
//! content fields of activity, message change and unknown records and of send requests older than the
//! retention, deletes dead letters (whose body is the whole event) older than it, and the events kept for
//! destinations' replays.
//!
//! Rows keep what is not content: an activity keeps its direction, status, times and ids (the
//! response times and delivery history stay), a send keeps its state, template and recipient.
//! The file is opened with `secure_delete`, so stripped text is overwritten, not left in free
//! pages.

use std::time::Duration;

use rusqlite::params;
use wabridge_core::error::StoreError;
use wabridge_core::retention::{
    json_paths, ACTIVITY_CONTENT, CHANGE_CONTENT, PURGED, SEND_CONTENT, UNKNOWN_CONTENT,
};

use crate::db::{sql_err, Clock, Db};

#[derive(Clone, Debug)]
pub struct SqliteContentPurge {
    db: Db,
    clock: Clock,
    retention: Duration,
}

impl SqliteContentPurge {
    pub fn new(db: Db, retention: Duration) -> SqliteContentPurge {
        SqliteContentPurge {
            db,
            clock: Clock::System,
            retention,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Content written before this (Unix ms) is past the retention.
    fn cutoff(&self) -> i64 {
        self.clock
            .now_ms()
            .saturating_sub(self.retention.as_millis() as i64)
    }

    /// Strips the content of up to `limit` records past the retention; returns how many.
    pub async fn purge_records(&self, limit: usize) -> Result<usize, StoreError> {
        let mut done = 0;
        for (kind, fields) in [
            ("activity", ACTIVITY_CONTENT),
            ("message_change", CHANGE_CONTENT),
            ("unknown", UNKNOWN_CONTENT),
        ] {
            let sql = format!(
                "UPDATE records SET body = json_set(json_remove(body, {}), '$.{PURGED}', json('true'))
                 WHERE seq IN (SELECT seq FROM records WHERE kind = ?1 AND created_at < ?2
                               AND json_extract(body, '$.{PURGED}') IS NULL LIMIT ?3)",
                json_paths(fields)
            );
            let (cutoff, left) = (self.cutoff(), (limit - done) as i64);
            done += self
                .db
                .write(move |t| {
                    t.execute(&sql, params![kind, cutoff, left])
                        .map_err(sql_err)
                })
                .await?;
            if done >= limit {
                break;
            }
        }
        Ok(done)
    }

    /// Strips the content of up to `limit` send requests past the retention.
    pub async fn purge_sends(&self, limit: usize) -> Result<usize, StoreError> {
        let sql = format!(
            "UPDATE sends SET request = json_set(json_remove(request, {}), '$.{PURGED}', json('true'))
             WHERE id IN (SELECT id FROM sends WHERE created_at < ?1
                          AND json_extract(request, '$.{PURGED}') IS NULL LIMIT ?2)",
            json_paths(SEND_CONTENT)
        );
        let (cutoff, limit) = (self.cutoff(), limit as i64);
        self.db
            .write(move |t| t.execute(&sql, params![cutoff, limit]).map_err(sql_err))
            .await
    }

    /// Deletes up to `limit` of the events destinations were delivered before the retention
    /// (kept for `wabridge replay`: [`crate::deliveries`]).
    pub async fn purge_deliveries(&self, limit: usize) -> Result<usize, StoreError> {
        let (cutoff, limit) = (self.cutoff(), limit as i64);
        self.db
            .write(move |t| {
                t.execute(
                    "DELETE FROM destination_deliveries WHERE id IN
                     (SELECT id FROM destination_deliveries WHERE delivered_at < ?1 LIMIT ?2)",
                    params![cutoff, limit],
                )
                .map_err(sql_err)
            })
            .await
    }

    /// Deletes up to `limit` dead letters whose event came in before the retention: a dead
    /// letter is the whole event, content and all.
    pub async fn purge_dead_letters(&self, limit: usize) -> Result<usize, StoreError> {
        let (cutoff, limit) = (self.cutoff(), limit as i64);
        self.db
            .write(move |t| {
                t.execute(
                    "DELETE FROM queue_dead_letters WHERE id IN
                     (SELECT id FROM queue_dead_letters WHERE enqueued_at < ?1 LIMIT ?2)",
                    params![cutoff, limit],
                )
                .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests;
