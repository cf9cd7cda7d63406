//! `--waba` of the template tools: which WABAs of the numbers registry `templates status |
//! plan | apply | history` and `report health` work on (a WABA id, or the label of one of its
//! numbers). Without a registry there is one WABA, the implicit one of today's settings, and
//! `--waba` is refused.

use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_core::config;
use wabridge_core::numbers::wabas::Waba;
use wabridge_core::numbers::Numbers;
use wabridge_core::templates::IMPLICIT_WABA;

use crate::error::CliError;

pub const FLAG: &str = "--waba";

/// The numbers registry: a deployment's (the numbers items of its table, `--table`), else the
/// file `WABRIDGE_NUMBERS` names; `None` without one.
pub async fn registry(table: Option<&str>) -> Result<Option<Numbers>, CliError> {
    match table {
        Some(table) => {
            let numbers = DynamoNumbers::from_env(table).await;
            numbers.load().await.map_err(CliError::store(format!(
                "cannot read the numbers registry of {}",
                numbers.source()
            )))
        }
        None => crate::numbers::registry(),
    }
}

/// The WABAs `waba` picks for a listing: that one, or every WABA of `numbers`; `[None]` (the
/// implicit registry) without a registry.
pub fn every(numbers: Option<&Numbers>, waba: Option<&str>) -> Result<Vec<Option<Waba>>, CliError> {
    match (numbers, waba) {
        (None, w) => no_registry(w).map(|()| vec![None]),
        (Some(n), Some(w)) => Ok(vec![Some(n.waba(w).map_err(refused)?)]),
        (Some(n), None) => Ok(n.wabas().into_iter().map(Some).collect()),
    }
}

/// The one WABA a command works on: the one `waba` names, else the registry's only one (with
/// several, `--waba` is required); `None` (the implicit one) without a registry.
pub fn one(numbers: Option<&Numbers>, waba: Option<&str>) -> Result<Option<Waba>, CliError> {
    match numbers {
        None => no_registry(waba).map(|()| None),
        Some(n) => n.one_waba(waba).map(Some).map_err(refused),
    }
}

/// The key of a WABA's registry and history ([`IMPLICIT_WABA`] for `None`).
pub fn key(waba: Option<&Waba>) -> &str {
    waba.map_or(IMPLICIT_WABA, |w| w.id.as_str())
}

fn refused(problem: String) -> CliError {
    CliError::argument(FLAG, problem)
}

fn no_registry(waba: Option<&str>) -> Result<(), CliError> {
    match waba {
        None => Ok(()),
        Some(w) => Err(refused(format!(
            "{w:?}: there is no numbers registry ({}), so no WABA to pick: the templates are \
             the one WABA's of {}",
            config::WABRIDGE_NUMBERS,
            config::WHATSAPP_BUSINESS_ACCOUNT_ID
        ))),
    }
}
