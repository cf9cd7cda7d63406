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
    crate::media_index::SCHEMA,
    crate::media_uploads::SCHEMA,
    crate::oauth_tokens::SCHEMA,
    crate::conversations::SCHEMA,
    crate::alerts::SCHEMA,
    crate::deliveries::SCHEMA,
];

/// Current schema version, kept in `PRAGMA user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 6;

/// What a database of an older version needs beyond `CREATE ... IF NOT EXISTS` (which creates
/// new tables, never new columns): `(version that introduced it, table, column, definition)`.
/// A column is added only to a table that exists without it (a table the old version never
/// had is created whole from [`SCHEMAS`]).
const UPGRADES: &[(i64, &str, &str, &str)] = &[
    (
        2,
        "queue_messages",
        "retrying",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    (3, "templates", "quality", "TEXT"),
    (4, "consent_history", "number", "TEXT"),
    (6, "template_applies", "waba", "TEXT NOT NULL DEFAULT ''"),
];

/// Tables a version retired: `(version that retired it, table)`, dropped when a database older
/// than that opens (never on a current one: a `DROP` takes the write lock every open would then
/// wait for). `pair_windows` held one pair window per recipient, rows that lived seconds; schema
/// 4 keeps them per business number (`send_pair_windows`).
const RETIRED: &[(i64, &str)] = &[(4, "pair_windows")];

/// Tables whose primary key a version changed (SQLite cannot alter a key): `(version, table,
/// copy)`. When an older database opens, the table is renamed `{table}_old` before [`SCHEMAS`]
/// create it anew; then `copy` moves its rows from `{table}_old`, which is dropped. Schema 5
/// keys templates by WABA; the rows it had go to the implicit number's registry.
const REKEYED: &[(i64, &str, &str)] = &[(5, "templates", crate::templates::REKEY_5)];

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
    let mut rekeyed = Vec::new();
    if version > 0 {
        for (retired, table) in RETIRED {
            if version < *retired {
                txn.execute_batch(&format!("DROP TABLE IF EXISTS {table};"))
                    .map_err(sql_err)?;
            }
        }
        for (introduced, table, column, definition) in UPGRADES {
            if version < *introduced && lacks_column(&txn, table, column)? {
                txn.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition};"
                ))
                .map_err(sql_err)?;
            }
        }
        for (introduced, table, copy) in REKEYED {
            if version < *introduced && has_table(&txn, table)? {
                txn.execute_batch(&format!("ALTER TABLE {table} RENAME TO {table}_old;"))
                    .map_err(sql_err)?;
                rekeyed.push((*table, *copy));
            }
        }
    }
    for schema in SCHEMAS {
        txn.execute_batch(schema).map_err(sql_err)?;
    }
    for (table, copy) in rekeyed {
        txn.execute_batch(&format!("{copy}\nDROP TABLE {table}_old;"))
            .map_err(sql_err)?;
    }
    if version != SCHEMA_VERSION {
        txn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .map_err(sql_err)?;
    }
    txn.commit().map_err(sql_err)
}

/// Whether `table` exists.
fn has_table(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(sql_err)
}

/// Whether `table` exists and has no column `column`.
fn lacks_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .map_err(sql_err)?;
    let columns = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    Ok(!columns.is_empty() && !columns.iter().any(|c| c == column))
}
