//! `wabridge templates sync | list`: the template registry of the local store, filled from
//! Meta's template list (`GET /{version}/{waba-id}/message_templates`), and the hourly sync
//! `wabridge serve` runs when the Graph API and the WABA id are configured.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wabridge_core::config::ConfigError;

use serde_json::json;
use wabridge_core::sends::template_sync::TemplateSyncConfig;
use wabridge_core::templates::TemplateRegistry;
use wabridge_sqlite::{Db, SqliteTemplates};

use crate::error::CliError;

/// How often `serve` syncs after a success.
pub const SYNC_EVERY: Duration = Duration::from_secs(3600);
/// How soon `serve` tries again after a failed sync.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

fn registry(db: &Db) -> TemplateRegistry {
    TemplateRegistry::new(Arc::new(SqliteTemplates::new(db.clone())))
}

/// `wabridge templates sync`: one sync into the data dir's store; prints the report as JSON.
pub async fn sync(data: &Path) -> Result<(), CliError> {
    let config = TemplateSyncConfig::from_env()?;
    let db = crate::data::open_or_create(data)?;
    let report = wabridge_graph::template_sync(config)
        .sync(&registry(&db))
        .await?;
    crate::audit::note_local(&db, wabridge_core::audit::action::TEMPLATE_SYNC, None).await?;
    println!("{}", json!(report));
    Ok(())
}

/// `wabridge templates status [--json]` (also `list`): what the registry knows, one template
/// and language per line: review status, category, quality, body parameters, Meta's reason.
pub async fn list(data: &Path, as_json: bool) -> Result<(), CliError> {
    let db = crate::data::open_existing(data)?;
    let templates = registry(&db)
        .list()
        .await
        .map_err(CliError::store("cannot list the templates"))?;
    let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    if as_json {
        for t in &templates {
            println!(
                "{}",
                json!({
                    "name": t.name,
                    "language": t.language,
                    "status": t.status.as_ref().map(|s| s.as_str()),
                    "category": t.category,
                    "body_parameters": t.body_parameters,
                    "reason": t.reason,
                    "quality": t.quality,
                })
            );
        }
        return Ok(());
    }
    println!(
        "{:<40} {:<8} {:<12} {:<15} {:<8} {:<11} REASON",
        "NAME", "LANG", "STATUS", "CATEGORY", "QUALITY", "BODY PARAMS"
    );
    for t in &templates {
        println!(
            "{:<40} {:<8} {:<12} {:<15} {:<8} {:<11} {}",
            t.name,
            t.language,
            dash(t.status.as_ref().map(|s| s.as_str())),
            dash(t.category.as_deref()),
            dash(t.quality.as_deref()),
            t.body_parameters
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
            dash(t.reason.as_deref())
        );
    }
    if templates.is_empty() {
        eprintln!("no templates known yet: run `wabridge templates sync`");
    }
    Ok(())
}

/// Syncs once now, then every [`SYNC_EVERY`] (after a failure: every [`RETRY_AFTER_FAILURE`]),
/// until `stop` turns true. `None` (and a note saying why) when the token or the WABA id is
/// missing; an error when a setting is unusable. A failed sync only logs: it never stops the
/// server.
pub fn spawn_periodic(
    db: &Db,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, CliError> {
    let config = match TemplateSyncConfig::from_env() {
        Ok(c) => c,
        Err(why @ ConfigError::Missing { .. }) => {
            tracing::info!("{why}");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let sync = wabridge_graph::template_sync(config);
    let registry = registry(db);
    Ok(Some(tokio::spawn(async move {
        loop {
            let result = tokio::select! {
                r = sync.sync(&registry) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            let wait = match result {
                Ok(report) => {
                    tracing::info!(
                        templates = report.templates,
                        pages = report.pages,
                        "template registry synced from Meta"
                    );
                    SYNC_EVERY
                }
                Err(e) => {
                    tracing::warn!(error = %e, retryable = e.is_retryable(), "template sync failed; trying again later");
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })))
}
