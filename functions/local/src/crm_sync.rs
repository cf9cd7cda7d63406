//! The events consumer of `wabridge serve`: crm-sync (identity, mapping + validation, the CRM
//! named by `CRM_KIND`, effects ledger) over the embedded SQLite engine.

use std::sync::Arc;

use wabridge_core::attribution::AttributionConfig;
use wabridge_core::config;
use wabridge_core::mapping::Mapping;
use wabridge_core::media::store::MediaStore;
use wabridge_core::sends::service::Sends;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::{Db, SqliteEngine, SqliteQueue, SqliteRecords, MEDIA_QUEUE};

use crate::error::CliError;

/// Builds the handler from the environment (`CRM_KIND`, default `local`; `WABRIDGE_MAPPING`,
/// default the example mapping of that CRM;
/// `WABRIDGE_ATTRIBUTION`, default attribution settings; `WABRIDGE_CONVERSATION_IDLE_HOURS`). Fails at start-up, not per message, on bad config.
/// `sends` is the sending side the hooks feed (delivery tracking, template registry, consent,
/// 24-hour window: see [`wabridge_core::sends::hooks::SendingHooks`]).
/// `media`: when set, inbound media is fetched (activities carry it `pending`; jobs go on the
/// media queue) and a CRM that takes files (HubSpot) reads them from this store.
pub async fn handler(
    db: &Db,
    sends: Arc<Sends>,
    media: Option<Arc<dyn MediaStore>>,
) -> Result<Arc<CrmSync>, CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let kind = config::crm_kind(env);
    wabridge_crm::check_kind(&kind)?;
    let mapping = Mapping::from_env(&kind)?;
    let local = Arc::new(LocalCrm::new(SqliteRecords::new(db.clone())));
    let crm = wabridge_crm::from_lookup(&mapping, Some(local), media.clone(), env)?;
    let attribution_config = AttributionConfig::from_env()?;
    let idle = wabridge_core::conversations::idle_ms(env)?;
    println!("crm: {kind}");
    let engine = SqliteEngine::new(db.clone());
    let sync = engine
        .crm_sync(crm, mapping, attribution_config, sends)
        .await
        .map_err(CliError::store("cannot set up crm-sync over the database"))?
        .with_conversations(engine.conversations(idle));
    let sync = match media {
        Some(_) => sync.with_media(Arc::new(SqliteQueue::new(db.clone(), MEDIA_QUEUE))),
        None => sync,
    };
    Ok(Arc::new(sync))
}

/// `wabridge crm check`: the CRM named by `CRM_KIND`, its settings from the environment and
/// the mapping of `WABRIDGE_MAPPING` (default the CRM's example). Prints what was found and
/// what is missing; fails when something required is.
pub async fn check() -> Result<(), CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let kind = config::crm_kind(env);
    wabridge_crm::check_kind(&kind)?;
    let mapping = Mapping::from_env(&kind)?;
    let report = wabridge_crm::check::check(&mapping, env).await?;
    println!("crm: {kind}");
    for (label, lines) in [
        ("ok", &report.ok),
        ("missing", &report.missing),
        ("optional, missing", &report.optional),
    ] {
        for line in lines {
            println!("{label}: {line}");
        }
    }
    if report.passed() {
        Ok(())
    } else {
        Err(CliError::CrmIncomplete {
            missing: report.missing.len(),
        })
    }
}
