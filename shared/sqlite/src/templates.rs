//! The template registry over SQLite, one row per (name, language).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::{sql_err, Db};
use wabridge_core::error::StoreError;
use wabridge_core::templates::{TemplateInfo, TemplateStatus, TemplateStore};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS templates (
    name            TEXT NOT NULL,
    language        TEXT NOT NULL,
    status          TEXT,
    reason          TEXT,
    status_at       INTEGER NOT NULL DEFAULT 0,
    category        TEXT,
    body_parameters INTEGER,
    PRIMARY KEY (name, language)
) WITHOUT ROWID;
";

#[derive(Clone, Debug)]
pub struct SqliteTemplates {
    db: Db,
}

impl SqliteTemplates {
    pub fn new(db: Db) -> SqliteTemplates {
        SqliteTemplates { db }
    }
}

#[async_trait]
impl TemplateStore for SqliteTemplates {
    async fn get(&self, name: &str, language: &str) -> Result<Option<TemplateInfo>, StoreError> {
        let (name, language) = (name.to_string(), language.to_string());
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT status, reason, status_at, category, body_parameters FROM templates
                     WHERE name = ?1 AND language = ?2",
                    params![name, language],
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
        let (name, language, status, reason) = (
            name.to_string(),
            language.to_string(),
            status.as_str().to_string(),
            reason.map(str::to_string),
        );
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO templates (name, language, status, reason, status_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(name, language) DO UPDATE SET status = excluded.status,
                        reason = excluded.reason, status_at = excluded.status_at
                     WHERE excluded.status_at >= templates.status_at",
                    params![name, language, status, reason, at_ms],
                )
                .map(|n| n == 1)
                .map_err(sql_err)
            })
            .await
    }

    async fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare(
                        "SELECT name, language, status, reason, status_at, category, body_parameters
                         FROM templates ORDER BY name, language",
                    )
                    .map_err(sql_err)?;
                let rows = stmt
                    .query_map([], |r| {
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
                        })
                    })
                    .map_err(sql_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
            })
            .await
    }

    async fn put_definition(
        &self,
        name: &str,
        language: &str,
        category: Option<&str>,
        body_parameters: Option<u32>,
    ) -> Result<(), StoreError> {
        let (name, language, category) = (
            name.to_string(),
            language.to_string(),
            category.map(str::to_string),
        );
        self.db
            .write(move |t| {
                t.execute(
                    "INSERT INTO templates (name, language, category, body_parameters) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(name, language) DO UPDATE SET category = excluded.category,
                        body_parameters = excluded.body_parameters",
                    params![name, language, category, body_parameters.map(i64::from)],
                )
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }
}
