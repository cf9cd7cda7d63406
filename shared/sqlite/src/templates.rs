//! The template registries over SQLite, one row per (WABA, name, language): `waba` is the
//! WhatsApp Business Account's id, or `''` for the implicit number's registry (what every row
//! was before registries were per WABA: schema 5 moved them there); `template_syncs` says when
//! each registry was last synced completely. And the history of
//! `templates apply`, one row per change, kept as long as the audit trail (the audit purge
//! deletes both: [`crate::SqliteAudit::purge_expired`]).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::audit::DEFAULT_AUDIT_RETENTION_DAYS;
use wabridge_core::error::StoreError;
use wabridge_core::template_files::apply::TemplateHistory;
use wabridge_core::template_files::plan::AppliedChange;
use wabridge_core::templates::{TemplateInfo, TemplatePatch, TemplateStatus, TemplateStore};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS templates (
    waba            TEXT NOT NULL DEFAULT '',
    name            TEXT NOT NULL,
    language        TEXT NOT NULL,
    status          TEXT,
    reason          TEXT,
    status_at       INTEGER NOT NULL DEFAULT 0,
    category        TEXT,
    body_parameters INTEGER,
    quality         TEXT,
    PRIMARY KEY (waba, name, language)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS template_syncs (
    waba      TEXT PRIMARY KEY,
    synced_at INTEGER NOT NULL  -- Unix ms of the last complete sync
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS template_applies (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    waba         TEXT NOT NULL DEFAULT '',  -- as `templates.waba` (schema 6)
    name         TEXT NOT NULL,
    language     TEXT NOT NULL,
    action       TEXT NOT NULL,     -- create, edit, delete
    template_id  TEXT,
    content_hash TEXT NOT NULL,
    applied_by   TEXT NOT NULL,     -- cli, or what --by said; never a key
    applied_at   INTEGER NOT NULL,  -- Unix ms
    expires_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS template_applies_at ON template_applies(applied_at);
CREATE INDEX IF NOT EXISTS template_applies_expiry ON template_applies(expires_at);
";

/// Schema 5's copy of the rows of schema 4's `templates` (keyed by name and language) into the
/// implicit number's registry ([`crate::db`]'s re-keying).
pub(crate) const REKEY_5: &str = "
INSERT INTO templates (waba, name, language, status, reason, status_at, category,
    body_parameters, quality)
SELECT '', name, language, status, reason, status_at, category, body_parameters, quality
FROM templates_old;";

/// One WABA's template registry.
#[derive(Clone, Debug)]
pub struct SqliteTemplates {
    db: Db,
    waba: String,
}

impl SqliteTemplates {
    /// The implicit number's registry ([`wabridge_core::templates::IMPLICIT_WABA`]).
    pub fn new(db: Db) -> SqliteTemplates {
        SqliteTemplates::for_waba(db, wabridge_core::templates::IMPLICIT_WABA)
    }

    /// The registry of WABA `waba`.
    pub fn for_waba(db: Db, waba: &str) -> SqliteTemplates {
        SqliteTemplates {
            db,
            waba: waba.to_string(),
        }
    }

    /// Every WABA's registry in `db`.
    pub fn registries(db: Db) -> wabridge_core::templates::TemplateRegistries {
        wabridge_core::templates::TemplateRegistries::new(move |waba| {
            std::sync::Arc::new(SqliteTemplates::for_waba(db.clone(), waba))
        })
    }
}

#[async_trait]
impl TemplateStore for SqliteTemplates {
    async fn get(&self, name: &str, language: &str) -> Result<Option<TemplateInfo>, StoreError> {
        let (name, language, waba) = (name.to_string(), language.to_string(), self.waba.clone());
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT status, reason, status_at, category, body_parameters, quality
                     FROM templates WHERE waba = ?3 AND name = ?1 AND language = ?2",
                    params![name, language, waba],
                    |r| {
                        Ok(TemplateInfo {
                            name: name.clone(),
                            language: language.clone(),
                            status: r
                                .get::<_, Option<String>>(0)?
                                .map(|s| TemplateStatus::new(&s)),
                            reason: r.get(1)?,
                            status_at: r.get(2)?,
                            category: r.get(3)?,
                            body_parameters: r.get::<_, Option<i64>>(4)?.map(|n| n as u32),
                            quality: r.get(5)?,
                        })
                    },
                )
                .optional()
                .map_err(sql_err)
            })
            .await
    }

    async fn put_status(
        &self,
        name: &str,
        language: &str,
        status: &TemplateStatus,
        reason: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let (name, language, status, reason, waba) = (
            name.to_string(),
            language.to_string(),
            status.as_str().to_string(),
            reason.map(str::to_string),
            self.waba.clone(),
        );
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO templates (waba, name, language, status, reason, status_at)
                     VALUES (?6, ?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(waba, name, language) DO UPDATE SET status = excluded.status,
                        reason = excluded.reason, status_at = excluded.status_at
                     WHERE excluded.status_at >= templates.status_at",
                    params![name, language, status, reason, at_ms, waba],
                )
                .map(|n| n == 1)
                .map_err(sql_err)
            })
            .await
    }

    async fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        self.select(None).await
    }

    async fn patch(
        &self,
        name: &str,
        language: &str,
        patch: &TemplatePatch,
    ) -> Result<(), StoreError> {
        let (name, language, p) = (name.to_string(), language.to_string(), patch.clone());
        let waba = self.waba.clone();
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO templates (waba, name, language, category, body_parameters, quality)
                     VALUES (?6, ?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(waba, name, language) DO UPDATE SET
                        category = COALESCE(excluded.category, templates.category),
                        body_parameters = COALESCE(excluded.body_parameters, templates.body_parameters),
                        quality = COALESCE(excluded.quality, templates.quality)",
                    params![name, language, p.category, p.body_parameters.map(i64::from), p.quality, waba],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn languages(&self, name: &str) -> Result<Vec<TemplateInfo>, StoreError> {
        self.select(Some(name.to_string())).await
    }

    async fn put_definition(
        &self,
        name: &str,
        language: &str,
        category: Option<&str>,
        body_parameters: Option<u32>,
    ) -> Result<(), StoreError> {
        let (name, language, category, waba) = (
            name.to_string(),
            language.to_string(),
            category.map(str::to_string),
            self.waba.clone(),
        );
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO templates (waba, name, language, category, body_parameters)
                     VALUES (?5, ?1, ?2, ?3, ?4)
                     ON CONFLICT(waba, name, language) DO UPDATE SET category = excluded.category,
                        body_parameters = excluded.body_parameters",
                    params![
                        name,
                        language,
                        category,
                        body_parameters.map(i64::from),
                        waba
                    ],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn synced_at(&self) -> Result<Option<i64>, StoreError> {
        let waba = self.waba.clone();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT synced_at FROM template_syncs WHERE waba = ?1",
                    params![waba],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)
            })
            .await
    }

    async fn mark_synced(&self, at_ms: i64) -> Result<(), StoreError> {
        let waba = self.waba.clone();
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO template_syncs (waba, synced_at) VALUES (?1, ?2)
                     ON CONFLICT(waba) DO UPDATE SET synced_at = excluded.synced_at",
                    params![waba, at_ms],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}

impl SqliteTemplates {
    /// Every row, or only `name`'s, ordered by name then language.
    async fn select(&self, name: Option<String>) -> Result<Vec<TemplateInfo>, StoreError> {
        let waba = self.waba.clone();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT name, language, status, reason, status_at, category, body_parameters,
                            quality
                         FROM templates WHERE waba = ?2 AND (?1 IS NULL OR name = ?1)
                         ORDER BY name, language",
                    )
                    .map_err(sql_err)?;
                let rows = stmt
                    .query_map(params![name, waba], |r| {
                        Ok(TemplateInfo {
                            name: r.get(0)?,
                            language: r.get(1)?,
                            status: r
                                .get::<_, Option<String>>(2)?
                                .map(|s| TemplateStatus::new(&s)),
                            reason: r.get(3)?,
                            status_at: r.get(4)?,
                            category: r.get(5)?,
                            body_parameters: r.get::<_, Option<i64>>(6)?.map(|n| n as u32),
                            quality: r.get(7)?,
                        })
                    })
                    .map_err(sql_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
            })
            .await
    }
}

/// One WABA's apply history (`templates apply`, `templates history`): Meta's edit limits
/// count per template of one WABA. Rows from before schema 6 are the implicit number's.
#[derive(Clone, Debug)]
pub struct SqliteTemplateHistory {
    db: Db,
    waba: String,
    retention: Duration,
}

impl SqliteTemplateHistory {
    /// The implicit number's history ([`wabridge_core::templates::IMPLICIT_WABA`]).
    pub fn new(db: Db) -> SqliteTemplateHistory {
        SqliteTemplateHistory::for_waba(db, wabridge_core::templates::IMPLICIT_WABA)
    }

    /// The history of WABA `waba`.
    pub fn for_waba(db: Db, waba: &str) -> SqliteTemplateHistory {
        SqliteTemplateHistory {
            db,
            waba: waba.to_string(),
            retention: Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
        }
    }

    /// Rows are kept `retention`, the audit trail's (`WABRIDGE_AUDIT_RETENTION_DAYS`).
    pub fn with_retention(mut self, retention: Duration) -> SqliteTemplateHistory {
        self.retention = retention;
        self
    }
}

#[async_trait]
impl TemplateHistory for SqliteTemplateHistory {
    async fn record(&self, c: &AppliedChange) -> Result<(), StoreError> {
        let (c, waba) = (c.clone(), self.waba.clone());
        let expires_at = c.applied_at_ms + self.retention.as_millis() as i64;
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO template_applies (name, language, action, template_id,
                        content_hash, applied_by, applied_at, expires_at, waba)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        c.name,
                        c.language,
                        c.action,
                        c.template_id,
                        c.content_hash,
                        c.applied_by,
                        c.applied_at_ms,
                        expires_at,
                        waba
                    ],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    async fn history(
        &self,
        name: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<AppliedChange>, StoreError> {
        let (name, waba) = (name.map(str::to_string), self.waba.clone());
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT name, language, action, template_id, content_hash, applied_by, applied_at
                         FROM template_applies
                         WHERE waba = ?3 AND applied_at >= ?1 AND (?2 IS NULL OR name = ?2)
                         ORDER BY applied_at, seq",
                    )
                    .map_err(sql_err)?;
                let rows = stmt
                    .query_map(params![since_ms, name, waba], |r| {
                        Ok(AppliedChange {
                            name: r.get(0)?,
                            language: r.get(1)?,
                            action: r.get(2)?,
                            template_id: r.get(3)?,
                            content_hash: r.get(4)?,
                            applied_by: r.get(5)?,
                            applied_at_ms: r.get(6)?,
                        })
                    })
                    .map_err(sql_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
            })
            .await
    }

    async fn queued_sends(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_string();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM sends WHERE state = 'queued'
                       AND json_extract(request, '$.type') = 'template'
                       AND json_extract(request, '$.name') = ?1",
                    params![name],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(sql_err)
            })
            .await
    }
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
