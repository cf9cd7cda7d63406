//! Named queues over SQLite with the semantics of SQS standard queues + a redrive policy:
//! a received message is hidden for the visibility timeout and comes back if not deleted; every
//! receive counts; a message received `max_receives` times moves to the dead-letter table on the
//! next receive attempt (SQS `maxReceiveCount`, here a backstop: consumers dead-letter by the
//! retry horizon, see `wabridge_core::retry`); only the latest receipt can delete or change it
//! (an older receipt is a no-op, as SQS does not guarantee deletion with a stale handle).
//! Messages put back by `retry_later` are marked, so that `wake` can release them at once
//! when the service they wait for is back.
//!
//! All queues live in one table keyed by name (`events`, later `sends`); a message keeps its id
//! through the dead-letter table and back, so logs and the CLI can follow it.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::db::{sql_err, Clock, Db};
use super::dedupe::ttl_ms;
use wabridge_core::error::StoreError;
use wabridge_core::queue::{DeadLetter, Delivery, OutgoingMessage, Queue};

/// The queue ingest fills and the CRM sync consumes.
pub const EVENTS_QUEUE: &str = "events";
/// The queue of outgoing sends.
pub const SENDS_QUEUE: &str = "sends";
/// The queue of inbound media files to fetch (crm-sync fills it, the media consumer drains it).
pub const MEDIA_QUEUE: &str = "media";
/// Receives before a message moves to the dead letters whatever happened (a backstop, as the
/// SQS redrive policy's `maxReceiveCount`; the retry horizon decides first).
pub const DEFAULT_MAX_RECEIVES: u32 = wabridge_core::retry::BACKSTOP_RECEIVES;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    msg_key       TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    visible_at    INTEGER NOT NULL,  -- Unix ms
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,              -- handle of the latest receive
    enqueued_at   INTEGER NOT NULL,  -- Unix ms; a redrive starts it again (the retry horizon)
    retrying      INTEGER NOT NULL DEFAULT 0  -- 1 while waiting out a retry_later delay
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages(queue, visible_at, id);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    id               INTEGER PRIMARY KEY,  -- the id it had on its queue
    queue            TEXT    NOT NULL,
    msg_key          TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    reason           TEXT,
    receive_count    INTEGER NOT NULL,
    dead_lettered_at INTEGER NOT NULL,
    enqueued_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_dead_letters_queue ON queue_dead_letters(queue, id);
";

/// Inserts one message into `queue` inside an open write (used by [`SqliteQueue::send_batch`]
/// and by the inbox, which enqueues in the same transaction as its dedupe marks).
pub(crate) fn enqueue_in(
    conn: &Connection,
    queue: &str,
    key: &str,
    body: &str,
    delay: Option<Duration>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let visible_at = now_ms.saturating_add(delay.map(ttl_ms).unwrap_or(0));
    conn.prepare_cached(
        "INSERT INTO queue_messages(queue, msg_key, body, visible_at, receive_count, enqueued_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5)",
    )
    .and_then(|mut s| s.execute(params![queue, key, body, visible_at, now_ms]))
    .map(|_| ())
    .map_err(sql_err)
}

fn move_to_dead_letters(
    conn: &Connection,
    id: i64,
    reason: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let moved = conn
        .prepare_cached(
            "INSERT INTO queue_dead_letters
               (id, queue, msg_key, body, reason, receive_count, dead_lettered_at, enqueued_at)
             SELECT id, queue, msg_key, body, ?2, receive_count, ?3, enqueued_at
             FROM queue_messages WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id, reason, now_ms]))
        .map_err(sql_err)?;
    conn.prepare_cached("DELETE FROM queue_messages WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id]))
        .map_err(sql_err)?;
    Ok(moved == 1)
}

/// The row id a receipt belongs to (`<id>.<nonce>`).
fn receipt_id(receipt: &str) -> Option<i64> {
    receipt.split_once('.').and_then(|(id, _)| id.parse().ok())
}

/// Counts of one queue, for the CLI and the load report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// Messages that can be received now.
    pub visible: u64,
    /// Messages received and not yet deleted (or delayed).
    pub hidden: u64,
    pub dead: u64,
}

/// One named queue of the embedded engine.
#[derive(Clone, Debug)]
pub struct SqliteQueue {
    db: Db,
    name: String,
    max_receives: u32,
    clock: Clock,
}

impl SqliteQueue {
    pub fn new(db: Db, name: impl Into<String>) -> Self {
        SqliteQueue {
            db,
            name: name.into(),
            max_receives: DEFAULT_MAX_RECEIVES,
            clock: Clock::System,
        }
    }

    /// Receives after which a message moves to the dead letters (at least 1).
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives.max(1);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn counts(&self) -> Result<QueueCounts, StoreError> {
        let (name, now) = (self.name.clone(), self.clock.now_ms());
        self.db
            .read(move |c| {
                let count = |sql: &str, with_now: bool| -> Result<u64, StoreError> {
                    let n: i64 = if with_now {
                        c.query_row(sql, params![name, now], |r| r.get(0))
                    } else {
                        c.query_row(sql, params![name], |r| r.get(0))
                    }
                    .map_err(sql_err)?;
                    Ok(n as u64)
                };
                Ok(QueueCounts {
                    visible: count(
                        "SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2",
                        true,
                    )?,
                    hidden: count(
                        "SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at > ?2",
                        true,
                    )?,
                    dead: count(
                        "SELECT count(*) FROM queue_dead_letters WHERE queue = ?1",
                        false,
                    )?,
                })
            })
            .await
    }

    /// Makes every message that a delivery holds (in flight or waiting out a retry delay)
    /// visible now; returns how many. For the start of `wabridge serve`: the data dir is locked
    /// to one process, so whatever was in flight belonged to a process that is gone, and
    /// waiting out its visibility timeout (or a long backoff) would only delay the backlog.
    /// Messages enqueued with a delay and never received keep it.
    pub async fn release_held(&self) -> Result<usize, StoreError> {
        let (name, now) = (self.name.clone(), self.clock.now_ms());
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "UPDATE queue_messages SET visible_at = ?2, retrying = 0
                     WHERE queue = ?1 AND receipt IS NOT NULL AND visible_at > ?2",
                )
                .and_then(|mut s| s.execute(params![name, now]))
                .map_err(sql_err)
            })
            .await
    }

    /// Names of the queues that hold dead letters (for a CLI listing every queue).
    pub async fn queues_with_dead_letters(db: &Db) -> Result<Vec<String>, StoreError> {
        db.read(|c| {
            let mut s = c
                .prepare("SELECT DISTINCT queue FROM queue_dead_letters ORDER BY queue")
                .map_err(sql_err)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(sql_err)
        })
        .await
    }

    fn receive_in(
        t: &Transaction<'_>,
        name: &str,
        max: usize,
        visibility_ms: i64,
        max_receives: u32,
        now: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::with_capacity(max);
        while out.len() < max {
            let candidates: Vec<(i64, String, i64, i64)> = {
                let mut s = t
                    .prepare_cached(
                        "SELECT id, body, receive_count, enqueued_at FROM queue_messages
                         WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                    )
                    .map_err(sql_err)?;
                let rows = s
                    .query_map(params![name, now, (max - out.len()) as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(sql_err)?;
                rows.collect::<Result<_, _>>().map_err(sql_err)?
            };
            if candidates.is_empty() {
                break;
            }
            for (id, body, count, enqueued_at) in candidates {
                if count >= i64::from(max_receives) {
                    move_to_dead_letters(t, id, None, now)?;
                    tracing::warn!(
                        queue = name,
                        message_id = id,
                        receives = count,
                        "moved to dead letters"
                    );
                    continue;
                }
                let receipt = format!("{id}.{}", uuid::Uuid::new_v4().simple());
                t.prepare_cached(
                    "UPDATE queue_messages SET receive_count = receive_count + 1, receipt = ?2,
                     visible_at = ?3, retrying = 0 WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![id, receipt, now.saturating_add(visibility_ms)])
                })
                .map_err(sql_err)?;
                out.push(Delivery {
                    message_id: id.to_string(),
                    receipt,
                    body,
                    receive_count: (count + 1) as u32,
                    enqueued_at: Some(enqueued_at),
                });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let messages = messages.to_vec();
        let (name, now) = (self.name.clone(), self.clock.now_ms());
        self.db
            .write(move |t| {
                messages
                    .iter()
                    .try_for_each(|m| enqueue_in(t, &name, &m.id, &m.body, m.delay, now))
            })
            .await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (name, now, max_receives) = (self.name.clone(), self.clock.now_ms(), self.max_receives);
        let visibility_ms = ttl_ms(visibility);
        self.db
            .write(move |t| {
                SqliteQueue::receive_in(t, &name, max, visibility_ms, max_receives, now)
            })
            .await
    }

    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        let Some(id) = receipt_id(receipt) else {
            return Ok(());
        };
        let receipt = receipt.to_string();
        self.db
            .write(move |t| {
                t.prepare_cached("DELETE FROM queue_messages WHERE id = ?1 AND receipt = ?2")
                    .and_then(|mut s| s.execute(params![id, receipt]))
                    .map(|_| ())
                    .map_err(sql_err)
            })
            .await
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let Some(id) = receipt_id(receipt) else {
            return Ok(());
        };
        let receipt = receipt.to_string();
        let visible_at = self.clock.now_ms().saturating_add(ttl_ms(delay));
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "UPDATE queue_messages SET visible_at = ?3, retrying = 1
                     WHERE id = ?1 AND receipt = ?2",
                )
                .and_then(|mut s| s.execute(params![id, receipt, visible_at]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), StoreError> {
        let Some(id) = receipt_id(&delivery.receipt) else {
            return Ok(());
        };
        let (receipt, reason, now) = (
            delivery.receipt.clone(),
            reason.to_string(),
            self.clock.now_ms(),
        );
        self.db
            .write(move |t| {
                let current: Option<i64> = t
                    .prepare_cached("SELECT id FROM queue_messages WHERE id = ?1 AND receipt = ?2")
                    .and_then(|mut s| s.query_row(params![id, receipt], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                if current.is_some() {
                    move_to_dead_letters(t, id, Some(&reason), now)?;
                }
                Ok(())
            })
            .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let name = self.name.clone();
        self.db
            .read(move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT id, body, reason, receive_count, dead_lettered_at
                         FROM queue_dead_letters WHERE queue = ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(sql_err)?;
                let rows = s
                    .query_map(params![name, limit.min(i64::MAX as usize) as i64], |r| {
                        Ok(DeadLetter {
                            id: r.get::<_, i64>(0)?.to_string(),
                            body: r.get(1)?,
                            reason: r.get(2)?,
                            receive_count: r.get::<_, i64>(3)? as u32,
                            dead_lettered_at: Some(r.get(4)?),
                        })
                    })
                    .map_err(sql_err)?;
                rows.collect::<Result<_, _>>().map_err(sql_err)
            })
            .await
    }

    async fn redrive(&self, id: Option<&str>) -> Result<usize, StoreError> {
        let id = match id {
            Some(text) => match text.trim().parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => return Ok(0),
            },
            None => None,
        };
        let (name, now) = (self.name.clone(), self.clock.now_ms());
        self.db
            .write(move |t| {
                // A redriven message starts over: visible now, receive count 0, a new retry
                // horizon, same id.
                let moved = t
                    .prepare_cached(
                        "INSERT INTO queue_messages
                           (id, queue, msg_key, body, visible_at, receive_count, enqueued_at)
                         SELECT id, queue, msg_key, body, ?2, 0, ?2
                         FROM queue_dead_letters WHERE queue = ?1 AND (?3 IS NULL OR id = ?3)",
                    )
                    .and_then(|mut s| s.execute(params![name, now, id]))
                    .map_err(sql_err)?;
                t.prepare_cached(
                    "DELETE FROM queue_dead_letters WHERE queue = ?1 AND (?2 IS NULL OR id = ?2)",
                )
                .and_then(|mut s| s.execute(params![name, id]))
                .map_err(sql_err)?;
                Ok(moved)
            })
            .await
    }

    async fn wake(&self) -> Result<usize, StoreError> {
        let (name, now) = (self.name.clone(), self.clock.now_ms());
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "UPDATE queue_messages SET visible_at = ?2, retrying = 0
                     WHERE queue = ?1 AND retrying = 1 AND visible_at > ?2",
                )
                .and_then(|mut s| s.execute(params![name, now]))
                .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests;
