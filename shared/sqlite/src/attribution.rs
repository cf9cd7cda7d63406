//! The attribution store over SQLite: tracked links, contact touch state (optimistic version),
//! the log of processed inbound messages, the conversions ledger, and the attribution report.
//!
//! Tables are created by [`SqliteAttribution::open`] (`CREATE ... IF NOT EXISTS`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::attribution::link::TrackedLink;
use wabridge_core::attribution::report::{Report, ReportRow};
use wabridge_core::attribution::store::{
    AttributionStore, Claim, Commit, ContactState, ConversionRow, Credit, LogEntry,
};
use wabridge_core::error::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS attribution_links (
    code       TEXT PRIMARY KEY,
    body       TEXT NOT NULL,      -- TrackedLink JSON
    created_at INTEGER NOT NULL,   -- Unix ms
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attribution_contacts (
    contact_id TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL       -- ContactState JSON
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attribution_log (
    event_id           TEXT PRIMARY KEY,
    contact_id         TEXT NOT NULL,
    at                 INTEGER NOT NULL,
    conversation_start INTEGER NOT NULL,
    lead               INTEGER NOT NULL,
    utm_source         TEXT,
    utm_medium         TEXT,
    utm_campaign       TEXT,
    body               TEXT NOT NULL   -- LogEntry JSON
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attribution_log_at ON attribution_log(at);
CREATE TABLE IF NOT EXISTS attribution_conversions (
    event_id     TEXT PRIMARY KEY,
    contact_id   TEXT NOT NULL,
    event_time   INTEGER NOT NULL,
    value        REAL NOT NULL,
    currency     TEXT NOT NULL,
    utm_source   TEXT,
    utm_medium   TEXT,
    utm_campaign TEXT,
    status       TEXT NOT NULL,
    detail       TEXT,
    attempts     INTEGER NOT NULL,
    body         TEXT NOT NULL      -- ConversionRow JSON as claimed
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attribution_conversions_time ON attribution_conversions(event_time);
";

#[derive(Clone, Debug)]
pub struct SqliteAttribution {
    db: Db,
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(StoreError::corrupt)
}

fn log_entry(conn: &Connection, event_id: &str) -> Result<Option<LogEntry>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM attribution_log WHERE event_id = ?1")
        .and_then(|mut s| s.query_row(params![event_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    body.as_deref().map(from_json).transpose()
}

fn conversion(conn: &Connection, event_id: &str) -> Result<Option<ConversionRow>, StoreError> {
    let row: Option<(String, String, Option<String>, u32)> = conn
        .prepare_cached("SELECT body, status, detail, attempts FROM attribution_conversions WHERE event_id = ?1")
        .and_then(|mut s| s.query_row(params![event_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
        .map_err(sql_err)?;
    row.map(|(body, status, detail, attempts)| {
        let mut c: ConversionRow = from_json(&body)?;
        c.status = status;
        c.detail = detail;
        c.attempts = attempts;
        Ok(c)
    })
    .transpose()
}

impl SqliteAttribution {
    /// Creates the tables when missing.
    pub async fn open(db: Db) -> Result<SqliteAttribution, StoreError> {
        db.write(|txn| txn.execute_batch(SCHEMA).map_err(sql_err))
            .await?;
        Ok(SqliteAttribution { db })
    }

    /// The conversion recorded under an event id.
    pub async fn conversion(&self, event_id: &str) -> Result<Option<ConversionRow>, StoreError> {
        let id = event_id.to_string();
        self.db.read(move |conn| conversion(conn, &id)).await
    }

    /// Conversations, leads, conversions and value per source / medium / campaign since
    /// `since_ms` (Unix ms; message time for conversations and leads, event time for
    /// conversions).
    pub async fn report(&self, since_ms: i64) -> Result<Report, StoreError> {
        self.db
            .read(move |conn| {
                let mut rows: BTreeMap<Credit, ReportRow> = BTreeMap::new();
                let mut q = conn
                    .prepare(
                        "SELECT utm_source, utm_medium, utm_campaign, SUM(conversation_start), SUM(lead)
                         FROM attribution_log WHERE at >= ?1 GROUP BY 1, 2, 3",
                    )
                    .map_err(sql_err)?;
                let it = q
                    .query_map(params![since_ms], |r| {
                        Ok((Credit { utm_source: r.get(0)?, utm_medium: r.get(1)?, utm_campaign: r.get(2)? }, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))
                    })
                    .map_err(sql_err)?;
                for row in it {
                    let (credit, conversations, leads) = row.map_err(sql_err)?;
                    let e = rows.entry(credit.clone()).or_insert_with(|| ReportRow::new(credit));
                    e.conversations += conversations as u64;
                    e.leads += leads as u64;
                }
                let mut q = conn
                    .prepare(
                        "SELECT utm_source, utm_medium, utm_campaign, currency, COUNT(*), SUM(value)
                         FROM attribution_conversions WHERE event_time >= ?1 GROUP BY 1, 2, 3, 4",
                    )
                    .map_err(sql_err)?;
                let it = q
                    .query_map(params![since_ms], |r| {
                        Ok((
                            Credit { utm_source: r.get(0)?, utm_medium: r.get(1)?, utm_campaign: r.get(2)? },
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, f64>(5)?,
                        ))
                    })
                    .map_err(sql_err)?;
                for row in it {
                    let (credit, currency, count, value) = row.map_err(sql_err)?;
                    let e = rows.entry(credit.clone()).or_insert_with(|| ReportRow::new(credit));
                    e.conversions += count as u64;
                    *e.value.entry(currency).or_insert(0.0) += value;
                }
                Ok(Report { since_ms, rows: rows.into_values().collect() })
            })
            .await
    }
}

#[async_trait]
impl AttributionStore for SqliteAttribution {
    async fn insert_link(&self, link: &TrackedLink) -> Result<bool, StoreError> {
        let body = to_json(link)?;
        let (code, created, expires) = (link.code.clone(), link.created_at, link.expires_at);
        self.db
            .write(move |txn| {
                txn.prepare_cached(
                    "INSERT INTO attribution_links(code, body, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(code) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![code, body, created, expires]))
                .map(|n| n == 1)
                .map_err(sql_err)
            })
            .await
    }

    async fn link(&self, code: &str) -> Result<Option<TrackedLink>, StoreError> {
        let code = code.to_string();
        self.db
            .read(move |conn| {
                let body: Option<String> = conn
                    .prepare_cached("SELECT body FROM attribution_links WHERE code = ?1")
                    .and_then(|mut s| s.query_row(params![code], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                body.as_deref().map(from_json).transpose()
            })
            .await
    }

    async fn contact(&self, contact_id: &str) -> Result<Option<ContactState>, StoreError> {
        let id = contact_id.to_string();
        self.db
            .read(move |conn| {
                let body: Option<String> = conn
                    .prepare_cached("SELECT body FROM attribution_contacts WHERE contact_id = ?1")
                    .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                body.as_deref().map(from_json).transpose()
            })
            .await
    }

    async fn processed(&self, event_id: &str) -> Result<Option<LogEntry>, StoreError> {
        let id = event_id.to_string();
        self.db.read(move |conn| log_entry(conn, &id)).await
    }

    async fn commit(&self, state: &ContactState, entry: &LogEntry) -> Result<Commit, StoreError> {
        let state_body = to_json(state)?;
        let entry_body = to_json(entry)?;
        let state = state.clone();
        let entry = entry.clone();
        self.db
            .write(move |txn| {
                if let Some(done) = log_entry(txn, &entry.event_id)? {
                    return Ok(Commit::AlreadyProcessed(done));
                }
                let stored: Option<i64> = txn
                    .prepare_cached("SELECT version FROM attribution_contacts WHERE contact_id = ?1")
                    .and_then(|mut s| s.query_row(params![state.contact_id], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                if stored.unwrap_or(0) + 1 != state.version as i64 {
                    return Ok(Commit::VersionConflict);
                }
                txn.prepare_cached(
                    "INSERT INTO attribution_contacts(contact_id, version, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(contact_id) DO UPDATE SET version = excluded.version, body = excluded.body",
                )
                .and_then(|mut s| s.execute(params![state.contact_id, state.version as i64, state_body]))
                .map_err(sql_err)?;
                txn.prepare_cached(
                    "INSERT INTO attribution_log(event_id, contact_id, at, conversation_start, lead, utm_source, utm_medium, utm_campaign, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        entry.event_id,
                        entry.contact_id,
                        entry.at,
                        entry.conversation_start,
                        entry.lead,
                        entry.credit.utm_source,
                        entry.credit.utm_medium,
                        entry.credit.utm_campaign,
                        entry_body
                    ])
                })
                .map_err(sql_err)?;
                Ok(Commit::Done)
            })
            .await
    }

    async fn claim_conversion(&self, row: &ConversionRow) -> Result<Claim, StoreError> {
        let body = to_json(row)?;
        let row = row.clone();
        self.db
            .write(move |txn| {
                if let Some(existing) = conversion(txn, &row.event_id)? {
                    return Ok(Claim::Existing(Box::new(existing)));
                }
                txn.prepare_cached(
                    "INSERT INTO attribution_conversions(event_id, contact_id, event_time, value, currency, utm_source, utm_medium, utm_campaign, status, detail, attempts, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        row.event_id,
                        row.contact_id,
                        row.event_time,
                        row.value,
                        row.currency,
                        row.credit.utm_source,
                        row.credit.utm_medium,
                        row.credit.utm_campaign,
                        row.status,
                        row.detail,
                        row.attempts,
                        body
                    ])
                })
                .map_err(sql_err)?;
                Ok(Claim::New)
            })
            .await
    }

    async fn finish_conversion(
        &self,
        event_id: &str,
        status: &str,
        detail: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let (id, status, detail) = (
            event_id.to_string(),
            status.to_string(),
            detail.map(str::to_string),
        );
        self.db
            .write(move |txn| {
                let n = txn
                    .prepare_cached("UPDATE attribution_conversions SET status = ?2, detail = ?3, attempts = ?4 WHERE event_id = ?1")
                    .and_then(|mut s| s.execute(params![id, status, detail, attempts]))
                    .map_err(sql_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("conversion {id}")));
                }
                Ok(())
            })
            .await
    }
}
