//! The schema: every table of the engine, created (and versioned) when a [`super::Db`] opens.

use rusqlite::{Connection, TransactionBehavior};
use wabridge_core::error::StoreError;

use super::sql_err;

/// Every table of the embedded engine, created at [`super::Db::open`] with `CREATE ... IF NOT EXISTS`.
/// A module that adds tables adds its schema constant here (the one place migrations live).
const SCHEMAS: &[&str] = &[
    crate::dedupe::SCHEMA,
    crate::recent::SCHEMA,
    crate::queue::SCHEMA,
    crate::records::SCHEMA,
    crate::identity::SCHEMA,
    crate::ledger::SCHEMA,
    crate::sends::SCHEMA,
    crate::consent::SCHEMA,
    crate::templates::SCHEMA,
    crate::window::SCHEMA,
    crate::audit::SCHEMA,
    crate::erasure::SCHEMA,
];

/// Current schema version, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

/// What a database of an older version needs beyond `CREATE ... IF NOT EXISTS` (which creates
/// new tables, never new columns): `(version that introduced it, statements)`.
const UPGRADES: &[(i64, &str)] = &[(
    2,
    "ALTER TABLE queue_messages ADD COLUMN retrying INTEGER NOT NULL DEFAULT 0;",
)];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // Deferred first: when the schema is already there, `CREATE ... IF NOT EXISTS` takes no
    // write lock, so a read-only command (`stats`, `records`) opens while `serve`'s writer
    // keeps the lock busy (waiting for it there starved the open past its busy timeout).
    match migrate_in(conn, TransactionBehavior::Deferred) {
        Err(StoreError::Unavailable(_)) => migrate_in(conn, TransactionBehavior::Immediate),
        done => done,
    }
}

fn migrate_in(conn: &mut Connection, behavior: TransactionBehavior) -> Result<(), StoreError> {
    let txn = conn.transaction_with_behavior(behavior).map_err(sql_err)?;
    let version: i64 = txn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this binary ({SCHEMA_VERSION})"
        )));
    }
    // A fresh database (version 0) gets every column from SCHEMAS; an older one, the upgrades
    // past its version first.
    if version > 0 {
        for (introduced, upgrade) in UPGRADES {
            if version < *introduced {
                txn.execute_batch(upgrade).map_err(sql_err)?;
            }
        }
    }
    for schema in SCHEMAS {
        txn.execute_batch(schema).map_err(sql_err)?;
    }
    if version != SCHEMA_VERSION {
        txn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .map_err(sql_err)?;
    }
    txn.commit().map_err(sql_err)
}
