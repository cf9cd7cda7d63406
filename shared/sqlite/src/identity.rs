//! Identity store over SQLite. Every resolve / move runs in one write transaction of the single
//! writer, so two first messages of the same person can never create two contacts.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::clock::now_ms;
use wabridge_core::error::StoreError;
use wabridge_core::identity::{IdentityKey, IdentityStore, Resolved};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identities (
    key        TEXT PRIMARY KEY,   -- IdentityKey::as_string()
    contact_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS identities_contact ON identities(contact_id);
";

#[derive(Clone, Debug)]
pub struct SqliteIdentityStore {
    db: Db,
}

impl SqliteIdentityStore {
    pub fn new(db: Db) -> Self {
        SqliteIdentityStore { db }
    }
}

fn get(c: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    c.prepare_cached("SELECT contact_id FROM identities WHERE key = ?1")
        .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
        .map_err(sql_err)
}

fn link(c: &Connection, key: &str, contact: &str, replace: bool) -> Result<(), StoreError> {
    let sql = if replace {
        "INSERT INTO identities(key, contact_id, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET contact_id = excluded.contact_id, updated_at = excluded.updated_at"
    } else {
        "INSERT INTO identities(key, contact_id, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO NOTHING"
    };
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![key, contact, now_ms()]))
        .map(|_| ())
        .map_err(sql_err)
}

fn resolve_in(c: &Connection, keys: &[String], new_id: &str) -> Result<Resolved, StoreError> {
    let mut found = None;
    for k in keys {
        if let Some(id) = get(c, k)? {
            found = Some(id);
            break;
        }
    }
    let created = found.is_none();
    let contact = found.unwrap_or_else(|| new_id.to_string());
    for k in keys {
        link(c, k, &contact, false)?;
    }
    Ok(Resolved {
        contact_id: contact,
        created,
    })
}

#[async_trait]
impl IdentityStore for SqliteIdentityStore {
    async fn erased_at(&self, key: &IdentityKey) -> Result<Option<i64>, StoreError> {
        let key = key.as_string();
        self.db
            .read(move |c| crate::erasure::tombstone_of(c, &key))
            .await
            .map(|p| p.map(|p| p.erased_at))
    }

    async fn forget(&self, keys: &[IdentityKey], contact_id: &str) -> Result<(), StoreError> {
        let keys: Vec<String> = keys.iter().map(IdentityKey::as_string).collect();
        let contact = contact_id.to_string();
        self.db
            .write(move |t| {
                for k in &keys {
                    t.execute(
                        "DELETE FROM identities WHERE key = ?1 AND contact_id = ?2",
                        params![k, contact],
                    )
                    .map_err(sql_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn lookup(&self, key: &IdentityKey) -> Result<Option<String>, StoreError> {
        let key = key.as_string();
        self.db.read(move |c| get(c, &key)).await
    }

    async fn resolve(&self, keys: &[IdentityKey], new_id: &str) -> Result<Resolved, StoreError> {
        if keys.is_empty() {
            return Err(StoreError::Corrupt("resolve needs at least one key".into()));
        }
        let keys: Vec<String> = keys.iter().map(IdentityKey::as_string).collect();
        let new_id = new_id.to_string();
        self.db.write(move |t| resolve_in(t, &keys, &new_id)).await
    }

    async fn move_key(
        &self,
        from: &IdentityKey,
        to: &IdentityKey,
        new_id: &str,
    ) -> Result<String, StoreError> {
        let (from, to, new_id) = (from.as_string(), to.as_string(), new_id.to_string());
        self.db
            .write(move |t| match get(t, &from)? {
                Some(contact) => {
                    link(t, &to, &contact, true)?;
                    if from != to {
                        t.execute("DELETE FROM identities WHERE key = ?1", params![from])
                            .map_err(sql_err)?;
                    }
                    Ok(contact)
                }
                None => resolve_in(t, std::slice::from_ref(&to), &new_id).map(|r| r.contact_id),
            })
            .await
    }
}
