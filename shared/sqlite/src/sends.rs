//! The send store over SQLite. The idempotency key is a UNIQUE column, so of concurrent creates
//! with one key exactly one inserts; transitions are conditional updates on the current state.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::db::{sql_err, Db};
use wabridge_core::error::StoreError;
use wabridge_core::sends::store::{
    pair_wait, Created, SendError, SendRecord, SendState, SendStore,
};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sends (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    request_hash    TEXT NOT NULL,
    request         TEXT NOT NULL,
    contact         TEXT NOT NULL,
    state           TEXT NOT NULL,
    error_code      TEXT,
    error_message   TEXT,
    wamid           TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_created ON sends(created_at);
CREATE INDEX IF NOT EXISTS sends_wamid ON sends(wamid) WHERE wamid IS NOT NULL;
-- One window per (business number, recipient); `number` is '' for the implicit single number.
-- It replaced `pair_windows` (one per recipient; dropped by the schema 4 upgrade).
CREATE TABLE IF NOT EXISTS send_pair_windows (
    recipient TEXT    NOT NULL,
    number    TEXT    NOT NULL,
    send_id   TEXT    NOT NULL,
    until_ms  INTEGER NOT NULL,
    PRIMARY KEY (recipient, number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS send_pair_windows_until ON send_pair_windows(until_ms);
";

const COLUMNS: &str =
    "id, idempotency_key, request_hash, request, contact, state, error_code, error_message, wamid, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<SendRecord, StoreError>> {
    let request: String = r.get(3)?;
    let state: String = r.get(5)?;
    let code: Option<String> = r.get(6)?;
    let message: Option<String> = r.get(7)?;
    let (Ok(request), Some(state)) = (serde_json::from_str(&request), SendState::parse(&state))
    else {
        return Ok(Err(StoreError::corrupt(format!(
            "send {} is not decodable",
            r.get::<_, String>(0)?
        ))));
    };
    Ok(Ok(SendRecord {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        request_hash: r.get(2)?,
        request,
        contact: r.get(4)?,
        state,
        error: code.map(|code| SendError {
            code,
            message: message.unwrap_or_default(),
        }),
        wamid: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    }))
}

fn load(c: &Connection, column: &str, value: &str) -> Result<Option<SendRecord>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM sends WHERE {column} = ?1"))
        .and_then(|mut s| s.query_row(params![value], from_row).optional())
        .map_err(sql_err)?
        .transpose()
}

#[derive(Clone, Debug)]
pub struct SqliteSends {
    db: Db,
}

impl SqliteSends {
    pub fn new(db: Db) -> SqliteSends {
        SqliteSends { db }
    }

    /// Deletes up to `limit` pair windows that ended before `before_ms` (a window only matters
    /// until it ends; DynamoDB's TTL sweeps the same items a day later). Returns how many.
    pub async fn purge_pair_windows(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let limit = limit as i64;
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "DELETE FROM send_pair_windows WHERE (recipient, number) IN
                     (SELECT recipient, number FROM send_pair_windows WHERE until_ms < ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![before_ms, limit]))
                .map_err(sql_err)
            })
            .await
    }
}

#[async_trait]
impl SendStore for SqliteSends {
    async fn create(&self, record: &SendRecord) -> Result<Created, StoreError> {
        let r = record.clone();
        self.db
            .write(move |t| {
                let inserted = t
                    .prepare_cached(&format!(
                        "INSERT INTO sends ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                         ON CONFLICT(idempotency_key) DO NOTHING"
                    ))
                    .and_then(|mut s| {
                        s.execute(params![
                            r.id,
                            r.idempotency_key,
                            r.request_hash,
                            r.request.to_string(),
                            r.contact,
                            r.state.as_str(),
                            r.error.as_ref().map(|e| e.code.clone()),
                            r.error.as_ref().map(|e| e.message.clone()),
                            r.wamid,
                            r.created_at,
                            r.updated_at
                        ])
                    })
                    .map_err(sql_err)?;
                if inserted == 1 {
                    return Ok(Created::New(r.clone()));
                }
                let key = r.idempotency_key.as_deref().unwrap_or_default();
                load(t, "idempotency_key", key)?
                    .map(Created::Existing)
                    .ok_or_else(|| StoreError::Conflict(format!("send {} exists", r.id)))
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<SendRecord>, StoreError> {
        let id = id.to_string();
        self.db.read(move |c| load(c, "id", &id)).await
    }

    async fn transition(
        &self,
        id: &str,
        to: SendState,
        error: Option<&SendError>,
        wamid: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<(SendRecord, bool)>, StoreError> {
        let (id, error, wamid) = (id.to_string(), error.cloned(), wamid.map(str::to_string));
        self.db
            .write(move |t| {
                let from: Vec<&str> = to.predecessors().iter().map(|s| s.as_str()).collect();
                let placeholders = (0..from.len())
                    .map(|i| format!("?{}", i + 7))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "UPDATE sends SET state = ?2, error_code = coalesce(?3, error_code),
                        error_message = coalesce(?4, error_message), wamid = coalesce(wamid, ?5),
                        updated_at = ?6, lease_until = 0
                     WHERE id = ?1 AND state IN ({})",
                    if placeholders.is_empty() {
                        "NULL".to_string()
                    } else {
                        placeholders
                    }
                );
                let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
                    Box::new(id.clone()),
                    Box::new(to.as_str()),
                    Box::new(error.as_ref().map(|e| e.code.clone())),
                    Box::new(error.as_ref().map(|e| e.message.clone())),
                    Box::new(wamid.clone()),
                    Box::new(at_ms),
                ];
                values.extend(
                    from.iter()
                        .map(|s| Box::new(s.to_string()) as Box<dyn rusqlite::ToSql>),
                );
                let moved = t
                    .execute(
                        &sql,
                        rusqlite::params_from_iter(values.iter().map(|b| b.as_ref())),
                    )
                    .map_err(sql_err)?;
                if moved == 0 {
                    // A status may carry the wamid we did not record yet (the sender's write lost).
                    if let Some(w) = &wamid {
                        t.execute(
                            "UPDATE sends SET wamid = ?2 WHERE id = ?1 AND wamid IS NULL",
                            params![id, w],
                        )
                        .map_err(sql_err)?;
                    }
                }
                Ok(load(t, "id", &id)?.map(|r| (r, moved == 1)))
            })
            .await
    }

    async fn claim(&self, id: &str, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.db
            .write(move |t| {
                t.execute(
                    "UPDATE sends SET lease_until = ?3 WHERE id = ?1 AND state = 'queued' AND lease_until <= ?2",
                    params![id, now_ms, until_ms],
                )
                .map(|n| n == 1)
                .map_err(sql_err)
            })
            .await
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.db
            .write(move |t| {
                t.execute(
                    "UPDATE sends SET lease_until = 0 WHERE id = ?1",
                    params![id],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn reserve_pair(
        &self,
        recipient: &str,
        number: Option<&str>,
        id: &str,
        now_ms: i64,
        interval: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        let (recipient, id) = (recipient.to_string(), id.to_string());
        let number = number.unwrap_or_default().to_string();
        let until_ms = now_ms.saturating_add(interval.as_millis() as i64);
        self.db
            .write(move |t| {
                let held: Option<(String, i64)> = t
                    .prepare_cached(
                        "SELECT send_id, until_ms FROM send_pair_windows
                         WHERE recipient = ?1 AND number = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![recipient, number], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(sql_err)?;
                if let Some((holder, held_until)) = held {
                    if holder != id && held_until > now_ms {
                        return Ok(Some(pair_wait(held_until, now_ms)));
                    }
                }
                t.prepare_cached(
                    "INSERT INTO send_pair_windows(recipient, number, send_id, until_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(recipient, number) DO UPDATE SET send_id = excluded.send_id,
                                                                  until_ms = excluded.until_ms",
                )
                .and_then(|mut s| s.execute(params![recipient, number, id, until_ms]))
                .map_err(sql_err)?;
                Ok(None)
            })
            .await
    }

    async fn find_by_wamid(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        let wamid = wamid.to_string();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT id FROM sends WHERE wamid = ?1",
                    params![wamid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)
            })
            .await
    }
}
