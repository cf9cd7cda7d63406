//! The events consumer of `wabridge serve`: crm-sync (identity, mapping + validation, the CRM
//! named by `CRM_KIND`, effects ledger) over the embedded SQLite engine.

use std::collections::HashMap;
use std::sync::Arc;

use wabridge_core::attribution::AttributionConfig;
use wabridge_core::breaker::CircuitBreaker;
use wabridge_core::config;
use wabridge_core::consumer::Handler;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::media::store::MediaStore;
use wabridge_core::numbers::dispatch::NumberDispatch;
use wabridge_core::numbers::{CrmTarget, Numbers, UnknownNumbers};
use wabridge_core::sends::service::Sends;
use wabridge_core::sync::CrmSync;
use wabridge_crm::local::LocalCrm;
use wabridge_sqlite::{Db, SqliteEngine, SqliteQueue, SqliteRecords, MEDIA_QUEUE};

use crate::error::CliError;
use crate::secrets::Secrets;

/// The events consumer and the breaker the worker paces itself by: the CRM's with one CRM
/// target; none with several (each target's breaker then only holds back its own events).
pub type Consumer = (Arc<dyn Handler>, Option<Arc<CircuitBreaker>>);

/// crm-sync of `serve`: with a numbers registry, each event goes to its number's CRM target
/// ([`NumberDispatch`]); without one, to the one CRM of `CRM_KIND`, as before registries.
pub async fn consumer(
    db: &Db,
    sends: Arc<Sends>,
    media: Option<Arc<dyn MediaStore>>,
    numbers: Option<Arc<Numbers>>,
    secrets: &Secrets,
) -> Result<Consumer, CliError> {
    let Some(numbers) = numbers else {
        let sync = handler(db, sends, media).await?;
        let breaker = sync.breaker().clone();
        return Ok((sync, Some(breaker)));
    };
    let file = crate::numbers::path().unwrap_or_default();
    let local: Arc<dyn Crm> = Arc::new(LocalCrm::new(SqliteRecords::new(db.clone())));
    let attribution = AttributionConfig::from_env()?;
    // One CRM client, mapping and breaker per distinct target, shared by its numbers.
    let mut targets: HashMap<&CrmTarget, Target> = HashMap::new();
    let mut syncs: HashMap<String, Arc<CrmSync>> = HashMap::new();
    for n in numbers.all() {
        if !targets.contains_key(&n.crm) {
            let built = Target::build(&n.crm, local.clone(), media.clone(), db, secrets)
                .map_err(|e| crate::numbers::target_error(&file, n, e))?;
            println!("crm of {}: {}", n.label, n.crm.kind);
            targets.insert(&n.crm, built);
        }
        let sync = targets[&n.crm]
            .sync(db, &sends, &attribution, &media)
            .await?
            .with_number(n.business_number());
        syncs.insert(n.label.clone(), Arc::new(sync));
    }
    // Unknown numbers routed to a target: that target's client, records with no number.
    let fallback = match &numbers.unknown {
        UnknownNumbers::DeadLetter => None,
        UnknownNumbers::RouteTo(label) => {
            let n = numbers.find(label).expect("parse checked the label");
            let sync = targets[&n.crm]
                .sync(db, &sends, &attribution, &media)
                .await?;
            Some(Arc::new(sync))
        }
    };
    let breaker = match targets.values().collect::<Vec<_>>().as_slice() {
        [only] => Some(only.breaker.clone()),
        _ => None,
    };
    let dispatch = NumberDispatch::new(numbers.clone(), |label| match label {
        Some(label) => syncs[label].clone(),
        None => fallback
            .clone()
            .expect("built when unknown numbers are routed"),
    });
    Ok((Arc::new(dispatch), breaker))
}

/// The CRM client, mapping and breaker of one registry target.
struct Target {
    crm: Arc<dyn Crm>,
    mapping: Mapping,
    breaker: Arc<CircuitBreaker>,
}

impl Target {
    fn build(
        t: &CrmTarget,
        local: Arc<dyn Crm>,
        media: Option<Arc<dyn MediaStore>>,
        db: &Db,
        secrets: &Secrets,
    ) -> Result<Target, CliError> {
        let lookup = t.lookup(|name| std::env::var(name).ok(), |key| secrets.named(key));
        let mapping = match &t.mapping {
            Some(path) => Mapping::load(path)?,
            None => Mapping::example(&t.kind)?,
        };
        let crm = wabridge_crm::from_lookup_with(
            &mapping,
            Some(local),
            media,
            Some(token_stores(db)),
            lookup,
        )?;
        Ok(Target {
            crm,
            mapping,
            breaker: Arc::new(CircuitBreaker::new("crm")),
        })
    }

    /// A crm-sync over the file landing events in this target.
    async fn sync(
        &self,
        db: &Db,
        sends: &Arc<Sends>,
        attribution: &AttributionConfig,
        media: &Option<Arc<dyn MediaStore>>,
    ) -> Result<CrmSync, CliError> {
        let sync = SqliteEngine::new(db.clone())
            .crm_sync(
                self.crm.clone(),
                self.mapping.clone(),
                attribution.clone(),
                sends.clone(),
            )
            .await
            .map_err(CliError::store("cannot set up crm-sync over the database"))?
            .with_breaker(self.breaker.clone());
        Ok(with_media(sync, db, media))
    }
}

/// The OAuth CRMs' token stores: one `oauth_tokens` row per connection in the data
/// directory's database, shared with any other process on it (see `docs/oauth.md`).
fn token_stores(db: &Db) -> wabridge_crm::TokenStores {
    let db = db.clone();
    Arc::new(move |connection: &str| {
        Arc::new(wabridge_sqlite::SqliteTokenStore::new(
            db.clone(),
            connection,
        )) as Arc<dyn wabridge_core::oauth::TokenStore>
    })
}

fn with_media(sync: CrmSync, db: &Db, media: &Option<Arc<dyn MediaStore>>) -> CrmSync {
    match media {
        Some(_) => sync.with_media(Arc::new(SqliteQueue::new(db.clone(), MEDIA_QUEUE))),
        None => sync,
    }
}

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
    let crm = wabridge_crm::from_lookup_with(
        &mapping,
        Some(local),
        media.clone(),
        Some(token_stores(db)),
        env,
    )?;
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
pub async fn check(data: &std::path::Path) -> Result<(), CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let kind = config::crm_kind(env);
    wabridge_crm::check_kind(&kind)?;
    let mapping = Mapping::from_env(&kind)?;
    // Kommo's OAuth refresh tokens are single-use: the one the check's refresh rotates in must
    // land in the store `serve` reads, or the next refresh sends a dead one.
    let tokens = if kind == "kommo" && env(config::KOMMO_REFRESH_TOKEN).is_some() {
        Some(token_stores(&crate::data::open_or_create(data)?))
    } else {
        None
    };
    let report = wabridge_crm::check::check_with(&mapping, tokens, env).await?;
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
