//! Last inbound message per contact over SQLite (keeps the latest time: unordered deliveries
//! converge).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::error::StoreError;
use wabridge_core::window::WindowStore;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS last_inbound (
    contact TEXT PRIMARY KEY,
    at      INTEGER NOT NULL
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
}

#[async_trait]
impl WindowStore for SqliteWindow {
    async fn record_inbound(&self, contact: &str, at_ms: i64) -> Result<(), StoreError> {
        let contact = contact.to_string();
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO last_inbound (contact, at) VALUES (?1, ?2)
                     ON CONFLICT(contact) DO UPDATE SET at = max(at, excluded.at)",
                    params![contact, at_ms],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn last_inbound(&self, contact: &str) -> Result<Option<i64>, StoreError> {
        let contact = contact.to_string();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT at FROM last_inbound WHERE contact = ?1",
                    params![contact],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)
            })
            .await
    }
}
