//! `wabridge templates sync | list`: the template registries of the local store, filled from
//! Meta's template list (`GET /{version}/{waba-id}/message_templates`), and the hourly sync
//! `wabridge serve` runs when the Graph API and the WABA id are configured. With a numbers
//! registry, every WABA of it is synced into its own registry, with a token of one of its
//! numbers; without, the one WABA of `WHATSAPP_BUSINESS_ACCOUNT_ID` into the implicit one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wabridge_core::config::ConfigError;

use serde_json::json;
use wabridge_core::numbers::Numbers;
use wabridge_core::sends::template_sync::{sync_each, TemplateSync, TemplateSyncConfig};
use wabridge_core::templates::{TemplateRegistries, TemplateRegistry, WabaTemplates};
use wabridge_sqlite::{Db, SqliteTemplates};

use crate::error::CliError;

/// How often `serve` syncs after a success.
pub const SYNC_EVERY: Duration = Duration::from_secs(3600);
/// How soon `serve` tries again after a failed sync.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// The syncs to run (one per WABA of `numbers`, or the one of the environment's WABA) and the
/// registries they fill.
fn syncs(
    db: &Db,
    numbers: Option<&Numbers>,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<TemplateSync>, TemplateRegistries), ConfigError> {
    let registries = SqliteTemplates::registries(db.clone());
    let (configs, registries) = match numbers {
        Some(numbers) => (
            TemplateSyncConfig::per_waba(|n| std::env::var(n).ok(), numbers, secret)?,
            registries.per_waba(),
        ),
        None => (vec![TemplateSyncConfig::from_env()?], registries),
    };
    let syncs = configs.into_iter().map(wabridge_graph::template_sync);
    Ok((syncs.collect(), registries))
}

/// `wabridge templates sync`: one sync into the data dir's store; prints the report as JSON
/// (with a numbers registry, one line per WABA with its `waba_id`). The first WABA that fails
/// fails the command, after every WABA was tried.
pub async fn sync(data: &Path) -> Result<(), CliError> {
    // The store first: it creates the data directory the secrets file goes in.
    let db = crate::data::open_or_create(data)?;
    // Tokens live in the secrets only with a registry: without one, nothing is generated.
    let secrets = match crate::numbers::path() {
        Some(_) => Some(crate::secrets::load_or_generate(data)?),
        None => None,
    };
    let numbers = match &secrets {
        Some(s) => crate::numbers::load(s)?,
        None => None,
    };
    let secret = |k: &str| secrets.as_ref().and_then(|s| s.named(k));
    let (syncs, registries) = syncs(&db, numbers.as_deref(), secret)?;
    let mut failed = None;
    for (waba, result) in sync_each(&syncs, &registries).await {
        match result {
            Ok(report) if numbers.is_some() => {
                let mut line = json!(report);
                line["waba_id"] = json!(waba);
                println!("{line}");
            }
            Ok(report) => println!("{}", json!(report)),
            Err(e) => {
                eprintln!("WABA {waba}: template sync failed: {e}");
                failed.get_or_insert(e);
            }
        }
    }
    crate::audit::note_local(&db, wabridge_core::audit::action::TEMPLATE_SYNC, None).await?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Every picked WABA's templates (`waba`: one WABA of the numbers registry by id or number
/// label; default all), each from its own registry; without a registry, the implicit one's.
pub async fn listed(db: &Db, waba: Option<&str>) -> Result<Vec<WabaTemplates>, CliError> {
    let numbers = crate::numbers::registry()?;
    let mut out = Vec::new();
    for waba in crate::wabas::every(numbers.as_ref(), waba)? {
        let store = SqliteTemplates::for_waba(db.clone(), crate::wabas::key(waba.as_ref()));
        let templates = TemplateRegistry::new(Arc::new(store))
            .list()
            .await
            .map_err(CliError::store("cannot list the templates"))?;
        out.push(WabaTemplates { waba, templates });
    }
    Ok(out)
}

/// `wabridge templates status [--waba W] [--json]` (also `list`): what the registries know,
/// one template and language per line: review status, category, quality, body parameters,
/// Meta's reason; with a numbers registry, led by the WABA and the labels of its numbers.
pub async fn list(data: &Path, waba: Option<&str>, as_json: bool) -> Result<(), CliError> {
    let db = crate::data::open_existing(data)?;
    let listed = listed(&db, waba).await?;
    let dash = |v: Option<&str>| v.unwrap_or("-").to_string();
    let rows = listed
        .iter()
        .flat_map(|w| w.templates.iter().map(move |t| (w.waba.as_ref(), t)));
    if as_json {
        for (waba, t) in rows {
            let mut line = json!({
                "name": t.name,
                "language": t.language,
                "status": t.status.as_ref().map(|s| s.as_str()),
                "category": t.category,
                "body_parameters": t.body_parameters,
                "reason": t.reason,
                "quality": t.quality,
            });
            if let Some(w) = waba {
                line["waba_id"] = json!(w.id);
                line["numbers"] = json!(w.numbers);
            }
            println!("{line}");
        }
        return Ok(());
    }
    let per_waba = listed.iter().any(|w| w.waba.is_some());
    if per_waba {
        print!("{:<16} {:<24} ", "WABA", "NUMBERS");
    }
    println!(
        "{:<40} {:<8} {:<12} {:<15} {:<8} {:<11} REASON",
        "NAME", "LANG", "STATUS", "CATEGORY", "QUALITY", "BODY PARAMS"
    );
    for (waba, t) in rows {
        if let Some(w) = waba {
            print!("{:<16} {:<24} ", w.id, w.numbers.join(","));
        }
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
    if listed.iter().all(|w| w.templates.is_empty()) {
        eprintln!("no templates known yet: run `wabridge templates sync`");
    }
    Ok(())
}

/// Syncs every WABA once now, then every [`SYNC_EVERY`] (after a failure: every
/// [`RETRY_AFTER_FAILURE`]), until `stop` turns true. `None` (and a note saying why) when the token or the WABA id is
/// missing; an error when a setting is unusable. A failed sync only logs: it never stops the
/// server.
pub fn spawn_periodic(
    db: &Db,
    numbers: Option<&Numbers>,
    secrets: &crate::secrets::Secrets,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, CliError> {
    let (syncs, registries) = match syncs(db, numbers, |k| secrets.named(k)) {
        Ok(s) => s,
        Err(why @ ConfigError::Missing { .. }) => {
            tracing::info!("{why}");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Some(tokio::spawn(async move {
        loop {
            let results = tokio::select! {
                r = sync_each(&syncs, &registries) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            // One WABA failing retries them all sooner: a sync is a few requests per WABA.
            let mut wait = SYNC_EVERY;
            for (waba, result) in results {
                match result {
                    Ok(report) => tracing::info!(
                        waba = %waba,
                        templates = report.templates,
                        pages = report.pages,
                        "template registry synced from Meta"
                    ),
                    Err(e) => {
                        tracing::warn!(waba = %waba, error = %e, retryable = e.is_retryable(), "template sync failed; trying again later");
                        wait = RETRY_AFTER_FAILURE;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })))
}
