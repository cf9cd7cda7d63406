//! crm-sync over a numbers registry (docs/numbers.md): one [`CrmSync`] per number over the
//! table, each landing its events in its number's CRM target (numbers of one target share its
//! client and breaker), behind a [`NumberDispatch`] that dead-letters unknown numbers as
//! `unknown_number`. [`crate::cold_start`] reads the registry from the table's items
//! ([`crate::registry`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wabridge_aws::engine::AwsEngine;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::breaker::CircuitBreaker;
use wabridge_core::mapping::Mapping;
use wabridge_core::numbers::dispatch::NumberDispatch;
use wabridge_core::numbers::{Numbers, UnknownNumbers};
use wabridge_core::sync::{CrmSync, SyncHooks};

/// A setting or a secret by name.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What crm-sync needs besides the registry: the settings (`env`), the secret store by key
/// name (`secret`), and what every number's crm-sync shares.
pub struct Shared {
    pub env: Lookup,
    pub secret: Lookup,
    pub attribution: AttributionConfig,
    pub ledger_retention: Duration,
    pub hooks: Arc<dyn SyncHooks>,
    /// What every number's crm-sync carries besides its CRM (conversations, media jobs).
    pub finish: Arc<dyn Fn(CrmSync) -> CrmSync + Send + Sync>,
}

/// The dispatch of `numbers` over `engine`; a target that cannot be built is an error naming
/// its first number's label and line.
pub fn dispatch(
    engine: &AwsEngine,
    numbers: Arc<Numbers>,
    shared: &Shared,
) -> Result<NumberDispatch, String> {
    let mut by_target = HashMap::new();
    let tokens = crate::token_stores(engine);
    for (target, labels) in numbers.targets() {
        let first = numbers
            .find(labels[0])
            .expect("targets name registered numbers");
        let fail = |e: &dyn std::fmt::Display| {
            format!(
                "number `{}` (line {}): its CRM target: {e}",
                first.label, first.line
            )
        };
        wabridge_crm::check_kind(&target.kind).map_err(|e| fail(&e))?;
        let mapping = match &target.mapping {
            Some(path) => Mapping::load(path),
            None => Mapping::example(&target.kind),
        }
        .map_err(|e| fail(&e))?;
        let lookup = target.lookup(|n| (shared.env)(n), |k| (shared.secret)(k));
        let crm =
            wabridge_crm::from_lookup_with(&mapping, None, None, Some(tokens.clone()), lookup)
                .map_err(|e| fail(&e))?;
        let breaker = Arc::new(CircuitBreaker::new("crm"));
        by_target.insert(target.clone(), (crm, mapping, breaker));
    }
    let sync_of = |target| {
        let (crm, mapping, breaker) = &by_target[target];
        let sync = engine
            .crm_sync(
                crm.clone(),
                mapping.clone(),
                shared.attribution.clone(),
                shared.ledger_retention,
                shared.hooks.clone(),
            )
            .with_breaker(breaker.clone());
        (shared.finish)(sync)
    };
    let mut syncs: HashMap<String, Arc<CrmSync>> = numbers
        .all()
        .iter()
        .map(|n| {
            let sync = sync_of(&n.crm).with_number(n.business_number());
            (n.label.clone(), Arc::new(sync))
        })
        .collect();
    let fallback = match &numbers.unknown {
        UnknownNumbers::DeadLetter => None,
        UnknownNumbers::RouteTo(label) => {
            let n = numbers.find(label).expect("parse checked the label");
            Some(Arc::new(sync_of(&n.crm)))
        }
    };
    Ok(NumberDispatch::new(numbers.clone(), |label| match label {
        Some(label) => syncs.remove(label).expect("one crm-sync per number"),
        None => fallback
            .clone()
            .expect("built when unknown numbers are routed"),
    }))
}
