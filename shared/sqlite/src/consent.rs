//! The consent history over SQLite: INSERT only (the id is the primary key: a redelivered entry
//! is ignored); no statement of this module updates or deletes a history row (only an erasure
//! does: `crate::erasure`). Idempotency
//! markers of `POST /consents` (`consent_keys`) expire after `CONSENT_KEY_TTL` and are purged.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ConsentStore, CONSENT_KEY_TTL,
};
use wabridge_core::error::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS consent_history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    contact     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    category    TEXT NOT NULL,
    action      TEXT NOT NULL,
    source      TEXT NOT NULL,
    evidence    TEXT,
    at          INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    number      TEXT              -- the business number it was given on (NULL: the business)
);
CREATE INDEX IF NOT EXISTS consent_history_contact ON consent_history(contact, at, seq);
CREATE TABLE IF NOT EXISTS consent_keys (
    id           TEXT PRIMARY KEY,   -- the entry id derived from the Idempotency-Key
    request_hash TEXT NOT NULL,
    entry        TEXT NOT NULL,      -- the ConsentEntry (JSON) the first call recorded
    contact      TEXT NOT NULL,      -- for erasure by contact
    expires_at   INTEGER NOT NULL    -- Unix ms
);
CREATE INDEX IF NOT EXISTS consent_keys_expiry ON consent_keys(expires_at);
";

#[derive(Clone, Debug)]
pub struct SqliteConsent {
    db: Db,
}

impl SqliteConsent {
    pub fn new(db: Db) -> SqliteConsent {
        SqliteConsent { db }
    }

    /// Deletes up to `limit` idempotency markers expired at `now_ms`; returns how many went.
    pub async fn purge_expired_keys(&self, now_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "DELETE FROM consent_keys WHERE id IN
                       (SELECT id FROM consent_keys WHERE expires_at <= ?1 LIMIT ?2)",
                )
                .and_then(|mut s| s.execute(params![now_ms, limit as i64]))
                .map_err(sql_err)
            })
            .await
    }
}

#[async_trait]
impl ConsentStore for SqliteConsent {
    async fn erased_at(&self, contact: &str) -> Result<Option<i64>, StoreError> {
        let contact = contact.to_string();
        self.db
            .read(move |c| crate::erasure::tombstone_of(c, &contact))
            .await
            .map(|past| past.map(|p| p.erased_at))
    }

    async fn append(&self, entry: &ConsentEntry) -> Result<bool, StoreError> {
        let e = entry.clone();
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "INSERT INTO consent_history (id, contact, recipient, category, action, source, evidence, at, recorded_at, number)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(id) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        e.id,
                        e.contact,
                        e.to,
                        e.category.as_str(),
                        e.action.as_str(),
                        e.source.as_str(),
                        e.evidence,
                        e.at,
                        e.recorded_at,
                        e.number
                    ])
                })
                .map(|n| n == 1)
                .map_err(sql_err)
            })
            .await
    }

    async fn history(&self, contact: &str) -> Result<Vec<ConsentEntry>, StoreError> {
        let contact = contact.to_string();
        self.db
            .read(move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT id, contact, recipient, category, action, source, evidence, at, recorded_at, number
                         FROM consent_history WHERE contact = ?1 ORDER BY at, seq",
                    )
                    .map_err(sql_err)?;
                let rows = s
                    .query_map(params![contact], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, Option<String>>(6)?,
                            r.get::<_, i64>(7)?,
                            r.get::<_, i64>(8)?,
                            r.get::<_, Option<String>>(9)?,
                        ))
                    })
                    .map_err(sql_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, contact, to, category, action, source, evidence, at, recorded_at, number) = row.map_err(sql_err)?;
                    let (Some(category), Some(action), Some(source)) = (
                        ConsentCategory::parse(&category),
                        ConsentAction::parse(&action),
                        ConsentSource::parse_stored(&source),
                    ) else {
                        return Err(StoreError::corrupt(format!("consent entry {id} is not decodable")));
                    };
                    out.push(ConsentEntry { id, contact, to, category, action, source, evidence, at, recorded_at, number });
                }
                Ok(out)
            })
            .await
    }

    async fn claim_key(
        &self,
        entry: &ConsentEntry,
        request_hash: &str,
    ) -> Result<Option<(String, ConsentEntry)>, StoreError> {
        let json = serde_json::to_string(entry).map_err(StoreError::corrupt)?;
        let (id, contact, hash) = (
            entry.id.clone(),
            entry.contact.clone(),
            request_hash.to_string(),
        );
        let now = wabridge_core::clock::now_ms();
        let expires_at = now + CONSENT_KEY_TTL.as_millis() as i64;
        self.db
            .write(move |t| {
                // An expired marker counts as absent (the purger may not have run yet).
                let existing: Option<(String, String)> = t
                    .prepare_cached(
                        "SELECT request_hash, entry FROM consent_keys WHERE id = ?1 AND expires_at > ?2",
                    )
                    .and_then(|mut s| s.query_row(params![id, now], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .map_err(sql_err)?;
                if let Some((hash, entry)) = existing {
                    let entry = serde_json::from_str(&entry).map_err(StoreError::corrupt)?;
                    return Ok(Some((hash, entry)));
                }
                t.prepare_cached(
                    "INSERT OR REPLACE INTO consent_keys (id, request_hash, entry, contact, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| s.execute(params![id, hash, json, contact, expires_at]))
                .map_err(sql_err)?;
                Ok(None)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history written before entries kept their business number (schema 3) opens, keeps
    /// its entries (on no number: they count for every number) and takes numbered ones; the
    /// retired per-recipient pair windows go.
    #[tokio::test]
    async fn a_schema_3_history_gains_the_number_column_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE consent_history (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                    contact TEXT NOT NULL, recipient TEXT NOT NULL, category TEXT NOT NULL,
                    action TEXT NOT NULL, source TEXT NOT NULL, evidence TEXT,
                    at INTEGER NOT NULL, recorded_at INTEGER NOT NULL);
                 INSERT INTO consent_history(id, contact, recipient, category, action, source, at, recorded_at)
                    VALUES ('old', 'phone:525512345678', '+525512345678', 'marketing', 'opt_in', 'web_form', 1, 1);
                 CREATE TABLE pair_windows (recipient TEXT PRIMARY KEY, send_id TEXT NOT NULL,
                    until_ms INTEGER NOT NULL);
                 PRAGMA user_version=3;",
            )
            .unwrap();
        }
        let store = SqliteConsent::new(Db::open(&path).unwrap());
        let tables: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('pair_windows', 'send_pair_windows')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "pair_windows dropped, send_pair_windows made");
        let mut stop = store.history("phone:525512345678").await.unwrap()[0].clone();
        assert_eq!((stop.id.as_str(), stop.number.as_deref()), ("old", None));
        stop.id = "stop".into();
        stop.action = ConsentAction::OptOut;
        stop.at = 2;
        stop.number = Some("106540352242922".into());
        assert!(store.append(&stop).await.unwrap());
        let history = store.history("phone:525512345678").await.unwrap();
        let numbers: Vec<_> = history.iter().map(|e| e.number.as_deref()).collect();
        assert_eq!(numbers, [None, Some("106540352242922")]);
    }
}
