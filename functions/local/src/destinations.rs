//! Fan-out destinations of `wabridge serve` (`docs/destinations.md`): read from the registry
//! file (`WABRIDGE_NUMBERS`) and checked at start (every refusal names the line and field),
//! each new event enqueued on its destinations' queues by the inbox in the same write as the
//! CRM's, and one worker per destination that relays it (`relay`) or posts its records
//! (`records`), with the events queue's retry horizon and its own breaker and dead letters
//! (`destination:<name>`). A failing bot holds back only its own queue. Every finished delivery
//! is kept for `wabridge replay` ([`crate::replay`]).

use std::sync::Arc;
use std::time::Duration;

use wabridge_core::breaker::CircuitBreaker;
use wabridge_core::consumer::{run_worker, Handler, Pressure, Settle, WorkerOptions};
use wabridge_core::inbox::Fanout;
use wabridge_core::mapping::Mapping;
use wabridge_core::numbers::destinations::{
    Destination, DestinationFanout, DestinationKind, Destinations,
};
use wabridge_core::numbers::records::{Mappings, RecordsHandler};
use wabridge_core::numbers::relay::RelayHandler;
use wabridge_core::numbers::replay::Logged;
use wabridge_core::numbers::{Numbers, NumbersError};
use wabridge_core::retry::RetryPolicy;
use wabridge_crm::relay::HttpRelay;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::ledger::SqliteLedger;
use wabridge_sqlite::{Db, SqliteDeliveries, SqliteQueue};

use crate::error::CliError;
use crate::secrets::Secrets;

/// During a burst of webhooks, a destination takes one delivery per this long (50 a second):
/// about the trickle the CRM's crm-sync gets, whose calls take tens of milliseconds, where a
/// local bot answers in a fraction of one and would otherwise take thousands of writes a second
/// from the acks. The backlog drains at full concurrency once the burst is over.
const BUSY_PACE: Duration = Duration::from_millis(20);

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
/// the same retry horizon as the CRM) and yielding to `pressure` (serve's webhooks), until
/// `stop`.
pub async fn spawn(
    db: &Db,
    destinations: Option<&Destinations>,
    numbers: Option<&Arc<Numbers>>,
    secrets: &Secrets,
    policy: RetryPolicy,
    pressure: Option<Pressure>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, CliError> {
    let mut workers = Vec::new();
    let log = Arc::new(SqliteDeliveries::new(db.clone()));
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
        if secret.is_empty() {
            return Err(destination_error(
                d,
                format!("`secret_key` {} is empty", d.secret_key),
            ));
        }
        let (handler, breaker): (Arc<dyn Handler>, Arc<CircuitBreaker>) = match d.kind {
            DestinationKind::Relay => {
                let post = Arc::new(HttpRelay::new(&d.url, RELAY_TIMEOUT)?);
                let handler =
                    RelayHandler::new(&d.name, &secret, post).expect("the secret is not empty");
                let breaker = handler.breaker().clone();
                (Arc::new(handler), breaker)
            }
            DestinationKind::Records => {
                let handler = records(db, d, &secret, numbers)?;
                let breaker = handler.breaker().clone();
                (Arc::new(handler), breaker)
            }
        };
        let handler = Arc::new(Logged::new(&d.name, handler, log.clone()));
        println!(
            "destination {}: {} ({})",
            d.name,
            d.kind.as_str(),
            d.queue()
        );
        workers.push(tokio::spawn(run_worker(
            Arc::new(queue),
            handler,
            WorkerOptions {
                batch: 10,
                concurrency: 4,
                // Like crm-sync: during a burst of webhooks one delivery at a time, so the
                // bot's deliveries do not compete with the acks for the writer and the cores.
                pressure: pressure.clone(),
                busy_concurrency: 1,
                busy_pace: BUSY_PACE,
                settle: Settle::new(policy, true),
                breaker: Some(breaker),
                ..WorkerOptions::default()
            },
            stop.clone(),
        )));
    }
    Ok(workers)
}

fn destination_error(d: &Destination, problem: String) -> CliError {
    CliError::from(NumbersError {
        file: crate::numbers::path().unwrap_or_default(),
        line: Some(d.line),
        problem: format!("destination `{}`: {problem}", d.name),
    })
}

/// A `records` destination: a crm-sync per number whose CRM is the webhook CRM at the
/// destination's URL, signed with its secret, with that number's mapping (an event of no known
/// number: the mapping of `unknown_numbers`' number, else the first number's; without a
/// registry, `WABRIDGE_MAPPING` or the example of `CRM_KIND`), the shared identities (read
/// only: [`wabridge_core::numbers::records::ReadIdentities`]) and a ledger scoped to the
/// destination.
fn records(
    db: &Db,
    d: &Destination,
    secret: &str,
    numbers: Option<&Arc<Numbers>>,
) -> Result<RecordsHandler, CliError> {
    let crm = Arc::new(
        WebhookCrm::new(&d.url, secret, RELAY_TIMEOUT)
            .map_err(|e| destination_error(d, format!("`secret_key` {}: {e}", d.secret_key)))?,
    );
    let mappings = Mappings::of(numbers.map(Arc::as_ref), || {
        Mapping::from_env(&wabridge_core::config::crm_kind(|n| std::env::var(n).ok()))
    })?;
    Ok(RecordsHandler::over(
        &d.name,
        numbers.cloned(),
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        crm,
        mappings,
    ))
}
