//! `wabridge report conversations`: the conversations report over the local store, or over a
//! deployment's DynamoDB table (`--table`), like `wabridge report attribution`.

use std::path::Path;

use wabridge_aws::dynamo::conversations::DynamoConversations;
use wabridge_core::attribution::report::{parse_since, Format};
use wabridge_core::clock::now_ms;
use wabridge_core::conversations::report::{By, ConversationReport};
use wabridge_core::conversations::ConversationStore;
use wabridge_sqlite::SqliteConversations;

use crate::error::CliError;

/// Prints the report of the conversations opened since `since`, grouped `by` (none: all).
pub async fn report(
    data: &Path,
    table: Option<&str>,
    since: &str,
    by: Option<&str>,
    format: &str,
) -> Result<(), CliError> {
    let format: Format = format
        .parse()
        .map_err(|e| CliError::argument("--format", e))?;
    let by = match by {
        Some(b) => b.parse().map_err(|e| CliError::argument("--by", e))?,
        None => By::All,
    };
    let since_ms = parse_since(since, now_ms()).map_err(|e| CliError::argument("--since", e))?;
    let records = match table.filter(|t| !t.trim().is_empty()) {
        Some(table) => DynamoConversations::from_env(table)
            .await
            .opened_since(since_ms)
            .await
            .map_err(CliError::store(format!(
                "cannot read the conversations from table {table}"
            )))?,
        None => SqliteConversations::new(crate::data::open_existing(data)?)
            .opened_since(since_ms)
            .await
            .map_err(CliError::store("cannot read the conversations"))?,
    };
    print!(
        "{}",
        ConversationReport::build(since_ms, by, &records).render(format)
    );
    Ok(())
}
