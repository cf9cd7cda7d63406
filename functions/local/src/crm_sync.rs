//! The events consumer of `wabridge serve`: crm-sync (identity, mapping + validation, the CRM
//! named by `CRM_KIND`, effects ledger) over the embedded SQLite engine.

use std::sync::Arc;

use wabridge_core::attribution::AttributionConfig;
use wabridge_core::config;
use wabridge_core::consumer::Handler;
use wabridge_core::mapping::Mapping;
use wabridge_core::sends::hooks::SendingHooks;
use wabridge_core::sends::service::Sends;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteRecords};

/// Builds the handler from the environment (`CRM_KIND`, default `local`; `WABRIDGE_MAPPING`,
/// default the example mapping of that CRM;
/// `WABRIDGE_ATTRIBUTION`, default attribution settings). Fails at start-up, not per message, on bad config.
/// `sends` is the sending side the hooks feed (delivery tracking, template registry, consent,
/// 24-hour window: see [`SendingHooks`]).
pub async fn handler(db: &Db, sends: Arc<Sends>) -> Result<Arc<dyn Handler>, String> {
    let env = |name: &str| std::env::var(name).ok();
    let kind = config::crm_kind(env);
    let mapping = Mapping::from_env(&kind).map_err(|e| e.to_string())?;
    let local = Arc::new(LocalCrm::new(SqliteRecords::new(db.clone())));
    let crm = wabridge_crm::from_lookup(&mapping, Some(local), env).map_err(|e| e.to_string())?;
    let attribution_config = AttributionConfig::from_env().map_err(|e| e.to_string())?;
    let attribution = SqliteAttribution::open(db.clone())
        .await
        .map_err(|e| e.to_string())?;
    println!("crm: {kind}");
    Ok(Arc::new(
        CrmSync::new(
            Arc::new(SqliteIdentityStore::new(db.clone())),
            Arc::new(SqliteLedger::new(db.clone())),
            crm,
            Arc::new(mapping),
        )
        .with_attribution(Arc::new(attribution), attribution_config)
        .with_hooks(Arc::new(SendingHooks::new(sends))),
    ))
}
