//! `wabridge report health`: the business signals of the local store (number quality,
//! templates not APPROVED, account restrictions, the failed-send rate, SLA breaches and
//! backlog), from what the alert sink kept and the template registries (each WABA's, with a
//! numbers registry).

use std::path::Path;

use wabridge_core::alerts::health::Health;
use wabridge_core::attribution::report::{parse_since, Format};
use wabridge_core::clock::now_ms;
use wabridge_sqlite::SqliteAlerts;

use crate::error::CliError;

/// Prints the report: `window` like 24h or 7d (the counters' look-back), `format` table or json.
/// `waba`: only that WABA's templates (a WABA id or a number label of the numbers registry).
pub async fn report(
    data: &Path,
    window: &str,
    format: &str,
    waba: Option<&str>,
) -> Result<(), CliError> {
    let format: Format = format
        .parse()
        .map_err(|e| CliError::argument("--format", e))?;
    if format == Format::Csv {
        return Err(CliError::argument("--format", "use table or json"));
    }
    let now = now_ms();
    let since = parse_since(window, now).map_err(|e| CliError::argument("--window", e))?;
    let db = crate::data::open_existing(data)?;
    let (states, counts) = SqliteAlerts::new(db.clone())
        .read(since)
        .await
        .map_err(CliError::store("cannot read the alert state"))?;
    let templates = crate::templates::listed(&db, waba).await?;
    let hours = ((now - since).max(0) + 3_599_999) / 3_600_000;
    let health = Health::build(&states, &counts, &templates, hours);
    match format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&health).map_err(|source| CliError::Json {
                what: "the health report",
                source,
            })?;
            println!("{json}");
        }
        _ => print!("{}", health.table()),
    }
    Ok(())
}
