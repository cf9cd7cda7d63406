//! Fan-out destinations of `wabridge serve` (`docs/destinations.md`): read from the registry
//! file (`WABRIDGE_NUMBERS`) and checked at start (every refusal names the line and field),
//! each new event enqueued on its destinations' queues by the inbox in the same write as the
//! CRM's, and one worker per destination that relays it, with the events queue's retry horizon
//! and its own breaker and dead letters (`destination:<name>`). A failing bot holds back only
//! its own queue.

use std::sync::Arc;
use std::time::Duration;

use wabridge_core::consumer::{run_worker, Settle, WorkerOptions};
use wabridge_core::inbox::Fanout;
use wabridge_core::numbers::destinations::{DestinationFanout, DestinationKind, Destinations};
use wabridge_core::numbers::relay::RelayHandler;
use wabridge_core::numbers::{Numbers, NumbersError};
use wabridge_core::retry::RetryPolicy;
use wabridge_crm::relay::HttpRelay;
use wabridge_sqlite::{Db, SqliteQueue};

use crate::error::CliError;
use crate::secrets::Secrets;

/// Longest one relay POST may take (as a CRM call's default).
const RELAY_TIMEOUT: Duration =
    Duration::from_millis(wabridge_core::config::DEFAULT_CRM_TIMEOUT_MS);

/// The destinations of the registry file, checked against `secrets`; `None` without a file or
/// without `[[destination]]` tables.
pub fn load(
    secrets: &Secrets,
    numbers: Option<&Arc<Numbers>>,
) -> Result<Option<Arc<Destinations>>, CliError> {
    let Some(file) = crate::numbers::path() else {
        return Ok(None);
    };
    let bytes = std::fs::read(&file).map_err(CliError::io("read", &file))?;
    let destinations = Destinations::parse(&file, &bytes, numbers.map(Arc::as_ref))?;
    destinations.check_secrets(&file, |key| secrets.named(key).is_some())?;
    if let Some(d) = destinations
        .all()
        .iter()
        .find(|d| d.kind == DestinationKind::Records)
    {
        return Err(NumbersError {
            file,
            line: Some(d.line),
            problem: format!(
                "destination `{}`: `kind` records is not built yet (docs/destinations.md); use relay",
                d.name
            ),
        }
        .into());
    }
    Ok((!destinations.is_empty()).then(|| Arc::new(destinations)))
}

/// What the inbox enqueues each new event on, besides the events queue.
pub fn fanout(destinations: &Arc<Destinations>, numbers: Option<&Arc<Numbers>>) -> Arc<dyn Fanout> {
    Arc::new(DestinationFanout {
        destinations: destinations.clone(),
        registry: numbers.cloned(),
    })
}

/// One worker per destination, settling with `policy` (the events queue's: a destination gets
/// the same retry horizon as the CRM), until `stop`.
pub async fn spawn(
    db: &Db,
    destinations: Option<&Destinations>,
    secrets: &Secrets,
    policy: RetryPolicy,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, CliError> {
    let mut workers = Vec::new();
    for d in destinations.map(Destinations::all).unwrap_or_default() {
        let queue = SqliteQueue::new(db.clone(), d.queue());
        let held = queue.release_held().await.map_err(CliError::store(
            "cannot release the previous process's deliveries",
        ))?;
        if held > 0 {
            println!(
                "released {held} deliveries of the {} queue held before the restart",
                d.queue()
            );
        }
        // `load` checked the key is in the store.
        let secret = secrets.named(&d.secret_key).unwrap_or_default();
        let post = Arc::new(HttpRelay::new(&d.url, RELAY_TIMEOUT)?);
        let handler = RelayHandler::new(&d.name, &secret, post).ok_or_else(|| {
            CliError::from(NumbersError {
                file: crate::numbers::path().unwrap_or_default(),
                line: Some(d.line),
                problem: format!(
                    "destination `{}`: `secret_key` {} is empty",
                    d.name, d.secret_key
                ),
            })
        })?;
        let breaker = handler.breaker().clone();
        println!(
            "destination {}: {} ({})",
            d.name,
            d.kind.as_str(),
            d.queue()
        );
        workers.push(tokio::spawn(run_worker(
            Arc::new(queue),
            Arc::new(handler),
            WorkerOptions {
                batch: 10,
                concurrency: 4,
                settle: Settle::new(policy, true),
                breaker: Some(breaker),
                ..WorkerOptions::default()
            },
            stop.clone(),
        )));
    }
    Ok(workers)
}
