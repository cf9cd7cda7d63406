//! The audit trail over SQLite (`wabridge_core::audit`): append only; lines past their retention
//! are deleted by the purger (`SqliteDedupe::with_audit_purge`).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use super::db::{sql_err, Db};
use wabridge_core::audit::{AuditEntry, AuditLog, DEFAULT_AUDIT_RETENTION_DAYS};
use wabridge_core::error::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,   -- Unix ms
    actor      TEXT NOT NULL,      -- key:<id> or cli; never a key
    action     TEXT NOT NULL,
    subject    TEXT,               -- a record id, never personal data
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at);
CREATE INDEX IF NOT EXISTS audit_log_expiry ON audit_log(expires_at);
";

#[derive(Clone, Debug)]
pub struct SqliteAudit {
    db: Db,
    retention: Duration,
}

impl SqliteAudit {
    pub fn new(db: Db) -> SqliteAudit {
        SqliteAudit {
            db,
            retention: Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
        }
    }

    /// Lines are kept `retention` (`WABRIDGE_AUDIT_RETENTION_DAYS`).
    pub fn with_retention(mut self, retention: Duration) -> SqliteAudit {
        self.retention = retention;
        self
    }

    /// Deletes up to `limit` lines expired at `now_ms`, and as many rows of the template apply
    /// history (kept as long as the audit trail); returns how many went.
    pub async fn purge_expired(&self, now_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.db
            .write(move |t| {
                let mut gone = 0;
                for table in ["audit_log", "template_applies"] {
                    gone += t
                        .prepare_cached(&format!(
                            "DELETE FROM {table} WHERE seq IN
                               (SELECT seq FROM {table} WHERE expires_at <= ?1 LIMIT ?2)"
                        ))
                        .and_then(|mut s| s.execute(params![now_ms, limit as i64]))
                        .map_err(sql_err)?;
                }
                Ok(gone)
            })
            .await
    }
}

#[async_trait]
impl AuditLog for SqliteAudit {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let e = entry.clone();
        let expires_at = e.at + self.retention.as_millis() as i64;
        self.db
            .write(move |t| {
                t.prepare_cached(
                    "INSERT INTO audit_log (at, actor, action, subject, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![e.at, e.actor, e.action, e.subject, expires_at])
                })
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn since(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.db
            .read(move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT at, actor, action, subject FROM audit_log
                         WHERE at >= ?1 ORDER BY at, seq LIMIT ?2",
                    )
                    .map_err(sql_err)?;
                let rows = s
                    .query_map(params![since_ms, limit as i64], |r| {
                        Ok(AuditEntry {
                            at: r.get(0)?,
                            actor: r.get(1)?,
                            action: r.get(2)?,
                            subject: r.get(3)?,
                        })
                    })
                    .map_err(sql_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at: i64, subject: &str) -> AuditEntry {
        AuditEntry {
            at,
            actor: "key:crm-sends".into(),
            action: "send".into(),
            subject: Some(subject.into()),
        }
    }

    #[tokio::test]
    async fn lines_are_listed_since_a_time_and_purged_after_their_retention() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("a.db")).unwrap();
        let audit = SqliteAudit::new(db).with_retention(Duration::from_secs(30 * 86_400));
        let day = 86_400_000;
        for (i, at) in [10 * day, 20 * day, 30 * day].into_iter().enumerate() {
            audit.append(&line(at, &format!("s{i}"))).await.unwrap();
        }
        let since: Vec<_> = audit.since(15 * day, 10).await.unwrap();
        assert_eq!(
            since
                .iter()
                .map(|l| l.subject.clone().unwrap())
                .collect::<Vec<_>>(),
            ["s1", "s2"]
        );
        assert_eq!(since[0], line(20 * day, "s1"));
        assert_eq!(audit.since(0, 1).await.unwrap().len(), 1, "limit");
        // Day 45: the first line (written on day 10, kept 30 days) is gone, the others stay.
        assert_eq!(audit.purge_expired(45 * day, 100).await.unwrap(), 1);
        assert_eq!(audit.since(0, 10).await.unwrap().len(), 2);
    }
}
