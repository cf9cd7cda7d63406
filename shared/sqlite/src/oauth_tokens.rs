//! OAuth tokens of the CRMs `wabridge serve` talks to (`wabridge_core::oauth::TokenStore`), one
//! row per connection in the data directory's database, next to the secrets file the
//! configured refresh token comes from (the data directory is the local secret store). Every
//! write is conditional on the row's version, and the refresh lease is a column of the same
//! row, so two processes on one data directory (a `wabridge serve` and a CLI command) never
//! both spend a refresh token the CRM rotates.
//!
//! Credentials, not personal data: kept until replaced, never purged, and erasure has nothing
//! to find here (erasure's `TABLES` says so).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use wabridge_core::error::StoreError;
use wabridge_core::oauth::{TokenSet, TokenStore};

use crate::db::{sql_err, Db};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS oauth_tokens (
    connection    TEXT PRIMARY KEY,   -- the CRM connection (`zoho`, `kommo`, …)
    access_token  TEXT,
    refresh_token TEXT,
    refresh_at    INTEGER NOT NULL DEFAULT 0,
    version       INTEGER NOT NULL DEFAULT 0,   -- 0: no tokens written yet
    lease_holder  TEXT,
    lease_until   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// One connection's tokens.
#[derive(Clone, Debug)]
pub struct SqliteTokenStore {
    db: Db,
    connection: String,
}

impl SqliteTokenStore {
    pub fn new(db: Db, connection: impl Into<String>) -> SqliteTokenStore {
        SqliteTokenStore {
            db,
            connection: connection.into(),
        }
    }
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        let connection = self.connection.clone();
        self.db
            .read(move |c| {
                c.prepare_cached(
                    "SELECT access_token, refresh_token, refresh_at, version FROM oauth_tokens
                     WHERE connection = ?1 AND version > 0",
                )
                .and_then(|mut s| {
                    s.query_row(params![connection], |r| {
                        Ok(TokenSet {
                            access_token: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                            refresh_token: r.get(1)?,
                            refresh_at: r.get(2)?,
                            version: r.get::<_, i64>(3)?.max(0) as u64,
                        })
                    })
                    .optional()
                })
                .map_err(sql_err)
            })
            .await
    }

    async fn swap(&self, expected: Option<u64>, next: &TokenSet) -> Result<bool, StoreError> {
        let connection = self.connection.clone();
        let next = next.clone();
        let expected = expected.unwrap_or(0) as i64;
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO oauth_tokens (connection) VALUES (?1) ON CONFLICT DO NOTHING",
                    params![connection],
                )
                .map_err(sql_err)?;
                let changed = t
                    .execute(
                        "UPDATE oauth_tokens SET access_token = ?2, refresh_token = ?3,
                            refresh_at = ?4, version = ?5
                         WHERE connection = ?1 AND version = ?6",
                        params![
                            connection,
                            next.access_token,
                            next.refresh_token,
                            next.refresh_at,
                            next.version as i64,
                            expected
                        ],
                    )
                    .map_err(sql_err)?;
                Ok(changed == 1)
            })
            .await
    }

    async fn lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let connection = self.connection.clone();
        let holder = holder.to_string();
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO oauth_tokens (connection) VALUES (?1) ON CONFLICT DO NOTHING",
                    params![connection],
                )
                .map_err(sql_err)?;
                let taken = t
                    .execute(
                        "UPDATE oauth_tokens SET lease_holder = ?2, lease_until = ?3
                         WHERE connection = ?1
                           AND (lease_holder IS NULL OR lease_holder = ?2 OR lease_until <= ?4)",
                        params![connection, holder, until, now],
                    )
                    .map_err(sql_err)?;
                Ok(taken == 1)
            })
            .await
    }

    async fn release(&self, holder: &str) -> Result<(), StoreError> {
        let connection = self.connection.clone();
        let holder = holder.to_string();
        self.db
            .write(move |t| {
                t.execute(
                    "UPDATE oauth_tokens SET lease_holder = NULL, lease_until = 0
                     WHERE connection = ?1 AND lease_holder = ?2",
                    params![connection, holder],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}
