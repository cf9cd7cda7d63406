//! The CLI's side of the audit trail (`wabridge_core::audit`): the lines its own writes leave
//! (redrive, template sync, link), and `wabridge audit` to read them, from the local store or a
//! deployment's table.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use wabridge_aws::dynamo::audit::DynamoAudit;
use wabridge_core::attribution::report::parse_since;
use wabridge_core::audit::{self, Audit, AuditLog, CLI_ACTOR};
use wabridge_core::clock::now_ms;
use wabridge_sqlite::{Db, SqliteEngine};

use crate::error::CliError;

/// The local trail, lines kept `WABRIDGE_AUDIT_RETENTION_DAYS`.
pub fn local(db: &Db) -> Result<Audit, CliError> {
    let retention = audit::retention(|n| std::env::var(n).ok())?;
    Ok(Audit::new(Arc::new(
        SqliteEngine::new(db.clone()).audit(retention),
    )))
}

/// Records a write the CLI made to the local store.
pub async fn note_local(db: &Db, action: &str, subject: Option<&str>) -> Result<(), CliError> {
    local(db)?.note(CLI_ACTOR, action, subject).await;
    Ok(())
}

/// Records a write the CLI made to a deployment: in its table when `WABRIDGE_TABLE` names it,
/// else a warning says the line could not be kept.
pub async fn note_deployment(action: &str, subject: Option<&str>) -> Result<(), CliError> {
    match std::env::var(wabridge_core::config::WABRIDGE_TABLE)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        Some(table) => note_in_table(&table, action, subject).await?,
        None => eprintln!(
            "warning: {} is not set: this {action} is not in the deployment's audit trail",
            wabridge_core::config::WABRIDGE_TABLE
        ),
    }
    Ok(())
}

/// Records a write the CLI made to the deployment whose table is `table`.
pub async fn note_in_table(
    table: &str,
    action: &str,
    subject: Option<&str>,
) -> Result<(), CliError> {
    let retention = audit::retention(|n| std::env::var(n).ok())?;
    let log = DynamoAudit::from_env(table).await.with_retention(retention);
    Audit::new(Arc::new(log))
        .note(CLI_ACTOR, action, subject)
        .await;
    Ok(())
}

/// `wabridge audit [--since 7d] [--json] [--table T]`: the lines since then, oldest first.
pub async fn list(
    data: &Path,
    table: Option<&str>,
    since: &str,
    as_json: bool,
    limit: usize,
) -> Result<(), CliError> {
    let since_ms = parse_since(since, now_ms()).map_err(|e| CliError::argument("--since", e))?;
    let lines = match table.filter(|t| !t.trim().is_empty()) {
        Some(table) => DynamoAudit::from_env(table)
            .await
            .since(since_ms, limit)
            .await
            .map_err(CliError::store(format!(
                "cannot read the audit trail from table {table}"
            )))?,
        None => {
            let db = crate::data::open_existing(data)?;
            SqliteEngine::new(db)
                .audit(audit::retention(|n| std::env::var(n).ok())?)
                .since(since_ms, limit)
                .await
                .map_err(CliError::store("cannot read the audit trail"))?
        }
    };
    for line in lines {
        if as_json {
            println!("{}", json!(line));
        } else {
            let at = wabridge_core::clock::rfc3339(line.at);
            println!(
                "{at}  {:<24} {:<14} {}",
                line.actor,
                line.action,
                line.subject.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
