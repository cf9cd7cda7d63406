//! Erasure over SQLite ([`wabridge_core::erasure`]): one write transaction deletes everything
//! the file holds about a person, writes their opt-out tombstones and erasure marker, and
//! enqueues the CRM's erasure event, so an erasure is all done or not at all.
//!
//! [`TABLES`] says, for every table of the file, how an erasure reaches it (or why it holds
//! nothing personal); a test fails when a table is added without saying.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use wabridge_core::erasure::{
    new_salt, tombstone, ErasureItem, ErasureStore, PastErasure, Person, Target,
};
use wabridge_core::error::StoreError;
use wabridge_core::identity::IdentityKey;

use crate::db::{sql_err, Db};
use crate::queue::enqueue_in;
use crate::EVENTS_QUEUE;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS erasure_salt (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    salt BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS erasure_tombstones (
    hash       TEXT PRIMARY KEY,   -- HMAC-SHA256 of an identity key under the salt
    erasure_id TEXT NOT NULL,
    erased_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erasures (
    contact_id TEXT PRIMARY KEY,   -- a random UUID that no longer links to anyone
    erasure_id TEXT NOT NULL,
    erased_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_contact ON identities(contact_id);
";

/// Every table of the file and how an erasure reaches it.
pub const TABLES: &[(&str, &str)] = &[
    ("identities", "deleted: the contact's keys"),
    ("consent_history", "deleted by identity key"),
    ("consent_keys", "deleted by identity key"),
    ("sends", "deleted by identity key"),
    ("send_pair_windows", "deleted by identity key"),
    ("last_inbound", "deleted by identity key"),
    ("last_inbound_number", "deleted by identity key"),
    ("attribution_contacts", "deleted by contact id"),
    ("attribution_log", "deleted by contact id"),
    ("attribution_conversions", "deleted by contact id"),
    ("conversations", "deleted by contact id"),
    ("conversation_heads", "deleted by contact id"),
    (
        "conversation_messages",
        "deleted with the contact's conversations (message ids, no content)",
    ),
    (
        "queue_messages",
        "events naming the person deleted (not the erasure event)",
    ),
    (
        "queue_dead_letters",
        "dead letters naming the person deleted",
    ),
    (
        "destination_deliveries",
        "events naming the person deleted (kept for replay)",
    ),
    (
        "dedupe_keys",
        "user-preference keys carrying their number deleted",
    ),
    (
        "dedupe_log",
        "user-preference keys carrying their number deleted",
    ),
    (
        "effects",
        "effects of user-preference events carrying their number deleted",
    ),
    (
        "records",
        "the local CRM: its records of the contact go on the erasure record",
    ),
    (
        "media_objects",
        "deleted by identity key; the files no other person's row names are deleted after",
    ),
    ("erasure_tombstones", "written: salted hashes, no identity"),
    (
        "erasures",
        "written: the contact id, which no longer links to anyone",
    ),
    ("erasure_salt", "nothing personal: the tombstones' salt"),
    (
        "audit_log",
        "nothing personal: key ids, actions, record ids",
    ),
    (
        "message_status",
        "nothing personal: Meta's message ids and a status rank",
    ),
    ("templates", "nothing personal: the template registry"),
    (
        "template_syncs",
        "nothing personal: when each WABA's template registry was last synced",
    ),
    (
        "template_applies",
        "nothing of a customer: who applied which template file (purged with the audit trail)",
    ),
    (
        "attribution_links",
        "nothing personal: tracked campaign links",
    ),
    (
        "media_uploads",
        "not linked to a person: uploaded files' details by SHA-256 (a file name may name someone: purged with message content)",
    ),
    (
        "media_meta_uploads",
        "nothing personal: Meta's media ids by file SHA-256 and number (purged after 7 days)",
    ),
    (
        "alert_state",
        "nothing personal: business numbers, WABA ids, template names (kept 30 days)",
    ),
    (
        "alert_counts",
        "nothing personal: per-minute counts of failed sends and SLA breaches (kept 30 days)",
    ),
    (
        "oauth_tokens",
        "nothing personal: a CRM connection's OAuth tokens (credentials, replaced on refresh)",
    ),
];

#[derive(Clone, Debug)]
pub struct SqliteErasure {
    db: Db,
    /// Where the person's media files are deleted (none: a file holds no media folder).
    media: Option<crate::LocalMediaStore>,
}

fn keys_of(person: &Person) -> Vec<String> {
    person.keys.iter().map(IdentityKey::as_string).collect()
}

/// The tombstone salt, if an erasure ever wrote one.
fn salt(conn: &Connection) -> Result<Option<Vec<u8>>, StoreError> {
    conn.prepare_cached("SELECT salt FROM erasure_salt WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(sql_err)
}

/// The erasure whose tombstone `key` (an identity key's storage form) has, if any.
pub(crate) fn tombstone_of(
    conn: &Connection,
    key: &str,
) -> Result<Option<PastErasure>, StoreError> {
    let Some(salt) = salt(conn)? else {
        return Ok(None);
    };
    conn.prepare_cached("SELECT erasure_id, erased_at FROM erasure_tombstones WHERE hash = ?1")
        .and_then(|mut s| {
            s.query_row(params![tombstone(&salt, key)], |r| {
                Ok(PastErasure {
                    erasure_id: r.get(0)?,
                    contact_id: None,
                    erased_at: r.get(1)?,
                })
            })
            .optional()
        })
        .map_err(sql_err)
}

fn exists(conn: &Connection, sql: &str, value: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.exists(params![value]))
        .map_err(sql_err)
}

fn identities_of(conn: &Connection, contact: &str) -> Result<Vec<IdentityKey>, StoreError> {
    let mut s = conn
        .prepare_cached("SELECT key FROM identities WHERE contact_id = ?1 ORDER BY key")
        .map_err(sql_err)?;
    let keys = s
        .query_map(params![contact], |r| r.get::<_, String>(0))
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    Ok(keys
        .iter()
        .filter_map(|k| IdentityKey::from_stored(k))
        .collect())
}

fn find(conn: &Connection, target: &Target) -> Result<Option<Person>, StoreError> {
    match target {
        Target::Contact(contact) => {
            let keys = identities_of(conn, contact)?;
            let known = !keys.is_empty()
                || exists(
                    conn,
                    "SELECT 1 FROM attribution_contacts WHERE contact_id = ?1",
                    contact,
                )?
                || exists(
                    conn,
                    "SELECT 1 FROM attribution_log WHERE contact_id = ?1",
                    contact,
                )?;
            Ok(known.then(|| Person {
                contact_id: Some(contact.clone()),
                keys,
            }))
        }
        Target::Identity { key, .. } => {
            let stored = key.as_string();
            let contact: Option<String> = conn
                .prepare_cached("SELECT contact_id FROM identities WHERE key = ?1")
                .and_then(|mut s| s.query_row(params![stored], |r| r.get(0)).optional())
                .map_err(sql_err)?;
            let mut keys = vec![key.clone()];
            if let Some(c) = &contact {
                keys.extend(identities_of(conn, c)?.into_iter().filter(|k| k != key));
            }
            let known = contact.is_some()
                || [
                    "SELECT 1 FROM consent_history WHERE contact = ?1",
                    "SELECT 1 FROM consent_keys WHERE contact = ?1",
                    "SELECT 1 FROM sends WHERE contact = ?1",
                    "SELECT 1 FROM last_inbound WHERE contact = ?1",
                    "SELECT 1 FROM send_pair_windows WHERE recipient = ?1",
                ]
                .iter()
                .map(|sql| exists(conn, sql, &stored))
                .collect::<Result<Vec<_>, _>>()?
                .contains(&true);
            Ok(known.then_some(Person {
                contact_id: contact,
                keys,
            }))
        }
    }
}

/// Deletes the rows of `table` whose `column` is one of `values`; returns how many.
fn delete_in(
    t: &Transaction,
    table: &str,
    column: &str,
    values: &[String],
) -> Result<u64, StoreError> {
    let mut n = 0;
    for v in values {
        n += t
            .prepare_cached(&format!("DELETE FROM {table} WHERE {column} = ?1"))
            .and_then(|mut s| s.execute(params![v]))
            .map_err(sql_err)? as u64;
    }
    Ok(n)
}

/// Deletes the rows of `table` (keyed by `id`) whose `column` `names` says are the person's.
fn delete_matching(
    t: &Transaction,
    table: &str,
    id: &str,
    column: &str,
    names: impl Fn(&str) -> bool,
) -> Result<u64, StoreError> {
    let doomed: Vec<rusqlite::types::Value> = {
        let mut s = t
            .prepare(&format!("SELECT {id}, {column} FROM {table}"))
            .map_err(sql_err)?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, rusqlite::types::Value>(0)?,
                    r.get::<_, String>(1)?,
                ))
            })
            .map_err(sql_err)?;
        let mut doomed = Vec::new();
        for row in rows {
            let (key, text) = row.map_err(sql_err)?;
            if names(&text) {
                doomed.push(key);
            }
        }
        doomed
    };
    let mut s = t
        .prepare(&format!("DELETE FROM {table} WHERE {id} = ?1"))
        .map_err(sql_err)?;
    for key in &doomed {
        s.execute(params![key]).map_err(sql_err)?;
    }
    Ok(doomed.len() as u64)
}

/// What an erasure's transaction removed, and the media files to delete once it committed.
type Erased = (BTreeMap<String, u64>, Vec<String>);

fn erase(t: &Transaction, person: &Person, item: &ErasureItem) -> Result<Erased, StoreError> {
    let keys = keys_of(person);
    let contact: Vec<String> = person.contact_id.iter().cloned().collect();
    let mut removed = BTreeMap::new();
    let mut count = |table: &str, n: u64| {
        if n > 0 {
            *removed.entry(table.to_string()).or_insert(0) += n;
        }
    };
    count(
        "identities",
        delete_in(t, "identities", "contact_id", &contact)?,
    );
    count("identities", delete_in(t, "identities", "key", &keys)?);
    for (table, column) in [
        ("consent_history", "contact"),
        ("consent_keys", "contact"),
        ("sends", "contact"),
        ("send_pair_windows", "recipient"),
        ("last_inbound", "contact"),
        ("last_inbound_number", "contact"),
    ] {
        count(table, delete_in(t, table, column, &keys)?);
    }
    for table in [
        "attribution_contacts",
        "attribution_log",
        "attribution_conversions",
    ] {
        count(table, delete_in(t, table, "contact_id", &contact)?);
    }
    if let Some(contact) = &person.contact_id {
        for (table, n) in crate::conversations::erase_in(t, contact)? {
            count(table, n);
        }
    }
    let about = |body: &str| person.named_in(body);
    let queued = delete_matching(t, "queue_messages", "id", "body", |body| about(body))?;
    count("queue_messages", queued);
    count(
        "queue_dead_letters",
        delete_matching(t, "queue_dead_letters", "id", "body", about)?,
    );
    count(
        "destination_deliveries",
        delete_matching(t, "destination_deliveries", "id", "body", about)?,
    );
    let keyed = |key: &str| person.named_in_key(key);
    count(
        "dedupe_keys",
        delete_matching(t, "dedupe_keys", "key", "key", keyed)?,
    );
    count(
        "dedupe_log",
        delete_matching(t, "dedupe_log", "seq", "key", keyed)?,
    );
    count(
        "effects",
        delete_matching(t, "effects", "effect_id", "effect_id", keyed)?,
    );
    let files = crate::media_index::erase_in(t, &keys)?;

    // What stays: tombstones and the marker, then the CRM's erasure event.
    t.execute(
        "INSERT OR IGNORE INTO erasure_salt (id, salt) VALUES (1, ?1)",
        params![new_salt()],
    )
    .map_err(sql_err)?;
    let salt = salt(t)?.expect("just written");
    for key in &keys {
        t.execute(
            "INSERT OR REPLACE INTO erasure_tombstones (hash, erasure_id, erased_at) VALUES (?1, ?2, ?3)",
            params![tombstone(&salt, key), item.erasure_id, item.erased_at],
        )
        .map_err(sql_err)?;
    }
    if let Some(c) = &person.contact_id {
        t.execute(
            "INSERT OR REPLACE INTO erasures (contact_id, erasure_id, erased_at) VALUES (?1, ?2, ?3)",
            params![c, item.erasure_id, item.erased_at],
        )
        .map_err(sql_err)?;
    }
    let event = item.event();
    let body = serde_json::to_string(&event).map_err(|e| StoreError::corrupt(e.to_string()))?;
    enqueue_in(t, EVENTS_QUEUE, &event.key, &body, None, item.erased_at)?;
    Ok((removed, files))
}

impl SqliteErasure {
    /// Also creates the attribution tables, which the erasure reaches even in a file `serve`
    /// never opened.
    pub async fn open(db: Db) -> Result<SqliteErasure, StoreError> {
        crate::attribution::SqliteAttribution::open(db.clone()).await?;
        Ok(SqliteErasure { db, media: None })
    }

    /// Also deletes the person's media files from `store`.
    pub fn with_media(mut self, store: crate::LocalMediaStore) -> Self {
        self.media = Some(store);
        self
    }
}

#[async_trait]
impl ErasureStore for SqliteErasure {
    async fn find(&self, target: &Target) -> Result<Option<Person>, StoreError> {
        let target = target.clone();
        self.db.read(move |c| find(c, &target)).await
    }

    async fn erase(
        &self,
        person: &Person,
        item: &ErasureItem,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let (person, item) = (person.clone(), item.clone());
        let (mut removed, files) = self.db.write(move |t| erase(t, &person, &item)).await?;
        // After the commit: a crash before this leaves files no row names, which the
        // retention purge removes (`media_index::purge`).
        if let (Some(store), false) = (&self.media, files.is_empty()) {
            let n = crate::media_index::delete_files(store, &files).await?;
            removed.insert("media_files".into(), n);
        }
        Ok(removed)
    }

    async fn erased(&self, target: &Target) -> Result<Option<PastErasure>, StoreError> {
        let target = target.clone();
        self.db
            .read(move |c| match &target {
                Target::Contact(contact) => c
                    .prepare_cached(
                        "SELECT erasure_id, erased_at FROM erasures WHERE contact_id = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![contact], |r| {
                            Ok(PastErasure {
                                erasure_id: r.get(0)?,
                                contact_id: Some(contact.clone()),
                                erased_at: r.get(1)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(sql_err),
                Target::Identity { key, .. } => tombstone_of(c, &key.as_string()),
            })
            .await
    }
}

#[cfg(test)]
mod tests;
