//! `wabridge replay --destination D --since 2h [--until 1h] [--table T --queue-url URL]`
//! (`docs/destinations.md#replay`): enqueues again on D's queue, as new deliveries, the events D
//! was delivered in the period (what the content retention and erasures left). Locally from
//! the store's `destination_deliveries` (a running `serve` sends them, or the next one does);
//! against a deployment from its table's delivery log, onto the destination's SQS queue, which
//! its relay function consumes.

use wabridge_core::attribution::report::parse_since;
use wabridge_core::numbers::destinations::{is_name, Destinations, QUEUE_PREFIX};
use wabridge_sqlite::SqliteDeliveries;

use crate::error::CliError;

/// `[since_ms, until_ms)`, checked.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    since_ms: i64,
    until_ms: i64,
}

impl Period {
    /// `--since` and `--until` (default now), each refusal naming its flag.
    pub fn parse(since: &str, until: Option<&str>) -> Result<Period, CliError> {
        let now = wabridge_core::clock::now_ms();
        let since_ms = parse_since(since, now).map_err(|e| CliError::argument("--since", e))?;
        let until_ms = match until {
            Some(u) => parse_since(u, now).map_err(|e| CliError::argument("--until", e))?,
            None => now.saturating_add(1),
        };
        if until_ms <= since_ms {
            return Err(CliError::argument(
                "--until",
                format!(
                    "--until {:?} is not after --since {since:?}",
                    until.unwrap_or_default()
                ),
            ));
        }
        Ok(Period { since_ms, until_ms })
    }
}

fn enqueued(n: usize, destination: &str) {
    println!("enqueued {n} deliveries on {QUEUE_PREFIX}{destination}");
}

/// The local store's replay: `destination` must be one of the registry file's.
pub async fn replay(
    data: &std::path::Path,
    destination: &str,
    period: Period,
) -> Result<(), CliError> {
    let Some(file) = crate::numbers::path() else {
        return Err(CliError::argument(
            "--destination",
            format!("no destination {destination:?}: WABRIDGE_NUMBERS names no registry file"),
        ));
    };
    let bytes = std::fs::read(&file).map_err(CliError::io("read", &file))?;
    let registry = crate::numbers::registry()?;
    let destinations = Destinations::parse(&file, &bytes, registry.as_ref())?;
    if destinations.find(destination).is_none() {
        let names: Vec<&str> = destinations.all().iter().map(|d| d.name.as_str()).collect();
        return Err(CliError::argument(
            "--destination",
            format!(
                "no destination {destination:?} in {file} (destinations: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    let db = crate::data::open_existing(data)?;
    let n = SqliteDeliveries::new(db)
        .replay(destination, period.since_ms, period.until_ms)
        .await
        .map_err(CliError::store("cannot replay the deliveries"))?;
    enqueued(n, destination);
    Ok(())
}

/// A deployment's replay: the delivery log in `table`, sent to the destination's queue at
/// `queue_url`. The slots' names live in the stack's parameters, not in a file the CLI can
/// read: a name no slot has finds nothing in the log and enqueues nothing.
pub async fn replay_aws(
    table: &str,
    queue_url: Option<&str>,
    destination: &str,
    period: Period,
) -> Result<(), CliError> {
    if !is_name(destination) {
        return Err(CliError::argument(
            "--destination",
            format!("{destination:?} is not a destination name (1-32 of a-z 0-9 - _)"),
        ));
    }
    let queue_url = queue_url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
        CliError::argument(
            "--queue-url",
            "a replay against a deployment needs the destination's queue (its stack output \
             DestinationNQueueUrl)",
        )
    })?;
    if !queue_url.starts_with("https://") && !queue_url.starts_with("http://") {
        return Err(CliError::argument(
            "--queue-url",
            "not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
        ));
    }
    let sdk = wabridge_aws::sdk::chain_config().await;
    let engine = wabridge_aws::engine::AwsEngine::new(sdk, table);
    let queue = engine.producer(queue_url);
    let n = engine
        .deliveries()
        .replay(destination, period.since_ms, period.until_ms, &queue)
        .await
        .map_err(CliError::store(format!(
            "cannot replay the deliveries from table {table}"
        )))?;
    enqueued(n, destination);
    Ok(())
}
