//! Last inbound message per customer, and per (business number, customer) pair, over SQLite
//! (keeps the latest time: unordered deliveries converge). Both tables are keyed by identity
//! key, so an erasure reaches them like `consent_history`.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::error::StoreError;
use wabridge_core::window::{LastInbound, WindowStore};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS last_inbound (
    contact TEXT PRIMARY KEY,
    at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS last_inbound_number (
    contact TEXT NOT NULL,
    number  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (contact, number)
) WITHOUT ROWID;
";

#[derive(Clone, Debug)]
pub struct SqliteWindow {
    db: Db,
}

impl SqliteWindow {
    pub fn new(db: Db) -> SqliteWindow {
        SqliteWindow { db }
    }

    /// Deletes up to `limit` number windows whose last message is older than `before_ms`.
    /// Kept two windows, they answer nothing the customer's own row does not
    /// ([`LastInbound::for_number`]). Returns how many.
    pub async fn purge_number_windows(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let limit = limit as i64;
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "DELETE FROM last_inbound_number WHERE (contact, number) IN
                     (SELECT contact, number FROM last_inbound_number WHERE at < ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![before_ms, limit]))
                .map_err(sql_err)
            })
            .await
    }
}

#[async_trait]
impl WindowStore for SqliteWindow {
    async fn record_inbound(
        &self,
        contact: &str,
        number: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let contact = contact.to_string();
        let number = number.map(str::to_string);
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO last_inbound (contact, at) VALUES (?1, ?2)
                     ON CONFLICT(contact) DO UPDATE SET at = max(at, excluded.at)",
                    params![contact, at_ms],
                )
                .map_err(sql_err)?;
                if let Some(number) = &number {
                    t.execute(
                        "INSERT INTO last_inbound_number (contact, number, at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(contact, number) DO UPDATE SET at = max(at, excluded.at)",
                        params![contact, number, at_ms],
                    )
                    .map_err(sql_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn last_inbound(
        &self,
        contact: &str,
        number: Option<&str>,
    ) -> Result<LastInbound, StoreError> {
        let contact = contact.to_string();
        let number = number.unwrap_or_default().to_string();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT (SELECT at FROM last_inbound WHERE contact = ?1),
                            (SELECT at FROM last_inbound_number WHERE contact = ?1 AND number = ?2),
                            EXISTS (SELECT 1 FROM last_inbound_number WHERE contact = ?1)",
                    params![contact, number],
                    |r| {
                        Ok(LastInbound {
                            any: r.get(0)?,
                            number: r.get(1)?,
                            per_number: r.get(2)?,
                        })
                    },
                )
                .optional()
                .map(Option::unwrap_or_default)
                .map_err(sql_err)
            })
            .await
    }
}
