//! What each destination received, for `wabridge replay` ([`wabridge_core::numbers::replay`]):
//! one row per destination and event key, with the event, written when the delivery is done.
//! The purger deletes rows past the content retention (the event is message content:
//! [`crate::retention::SqliteContentPurge::purge_deliveries`]), and an
//! erasure deletes the rows whose event names the person ([`crate::erasure`]).

use async_trait::async_trait;
use rusqlite::params;
use wabridge_core::error::StoreError;
use wabridge_core::event::Event;
use wabridge_core::numbers::destinations::QUEUE_PREFIX;
use wabridge_core::numbers::replay::{replay_key, DeliveryLog};

use crate::db::{sql_err, Clock, Db};
use crate::queue::enqueue_in;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS destination_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    destination  TEXT    NOT NULL,
    key          TEXT    NOT NULL,  -- the event's key when first delivered
    body         TEXT    NOT NULL,  -- the event (JSON)
    delivered_at INTEGER NOT NULL,  -- Unix ms
    UNIQUE (destination, key)
);
CREATE INDEX IF NOT EXISTS destination_deliveries_at
    ON destination_deliveries(destination, delivered_at);
";

#[derive(Clone, Debug)]
pub struct SqliteDeliveries {
    db: Db,
    clock: Clock,
}

impl SqliteDeliveries {
    pub fn new(db: Db) -> SqliteDeliveries {
        SqliteDeliveries {
            db,
            clock: Clock::System,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Enqueues again on `destination`'s queue, under fresh keys, every event it was delivered
    /// in `[since_ms, until_ms)`, oldest first, in one write; returns how many.
    pub async fn replay(
        &self,
        destination: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<usize, StoreError> {
        let destination = destination.to_string();
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                let rows: Vec<String> = {
                    let mut s = t
                        .prepare(
                            "SELECT body FROM destination_deliveries
                             WHERE destination = ?1 AND delivered_at >= ?2 AND delivered_at < ?3
                             ORDER BY delivered_at, id",
                        )
                        .map_err(sql_err)?;
                    let rows = s
                        .query_map(params![destination, since_ms, until_ms], |r| r.get(0))
                        .map_err(sql_err)?;
                    rows.collect::<Result<_, _>>().map_err(sql_err)?
                };
                let queue = format!("{QUEUE_PREFIX}{destination}");
                for body in &rows {
                    let mut event =
                        Event::from_json(body).map_err(|e| StoreError::corrupt(e.to_string()))?;
                    event.key = replay_key(&event.key, now);
                    enqueue_in(t, &queue, &event.key, &event.to_json(), None, now)?;
                }
                Ok(rows.len())
            })
            .await
    }
}

#[async_trait]
impl DeliveryLog for SqliteDeliveries {
    async fn delivered(&self, destination: &str, key: &str, event: &str) -> Result<(), StoreError> {
        let (destination, key, event) =
            (destination.to_string(), key.to_string(), event.to_string());
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "INSERT OR IGNORE INTO destination_deliveries (destination, key, body, delivered_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![destination, key, event, now]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
#[path = "deliveries_tests.rs"]
mod tests;
