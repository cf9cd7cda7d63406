//! `wabridge conversations list|show|close|tag` and `PATCH /conversations/{id}`,
//! `POST /conversations/{id}/tags`, `DELETE /conversations/{id}/tags/{tag}` over the local store (`wabridge_core::conversations`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use wabridge_core::auth::ApiKeys;
use wabridge_core::clock::rfc3339;
use wabridge_core::conversations::route::{Catalogues, ConversationsRoute};
use wabridge_core::conversations::sla::{sla_minutes, SlaPolicy};
use wabridge_core::conversations::sweep::{sweep_interval, Sweeper};
use wabridge_core::conversations::update::{Change, ConversationUpdates};
use wabridge_core::conversations::{idle_ms, ConversationRecord, ConversationStore};
use wabridge_core::numbers::Numbers;
use wabridge_sqlite::{Db, SqliteConversations, SqliteEngine, SqliteQueue, EVENTS_QUEUE};

use crate::data::open_existing;
use crate::error::CliError;

/// The mapping's catalogues (`WABRIDGE_MAPPING`, else the CRM's example).
fn catalogues() -> Result<Catalogues, CliError> {
    let kind = wabridge_core::config::crm_kind(|n| std::env::var(n).ok());
    wabridge_crm::check_kind(&kind)?;
    Ok(Catalogues::of(&wabridge_core::mapping::Mapping::from_env(
        &kind,
    )?))
}

/// Changes written to the file, then queued on its events queue for crm-sync (`wabridge
/// serve` delivers them to the CRM).
pub fn updates(db: &Db) -> Result<ConversationUpdates, CliError> {
    let conversations =
        SqliteEngine::new(db.clone()).conversations(idle_ms(|n| std::env::var(n).ok())?);
    Ok(ConversationUpdates::new(
        conversations,
        Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE)),
    ))
}

/// `PATCH /conversations/{id}` and `POST /conversations/{id}/tags` over the file.
pub fn route(db: &Db, keys: Arc<ApiKeys>) -> Result<Arc<ConversationsRoute>, CliError> {
    Ok(Arc::new(ConversationsRoute::new(
        updates(db)?,
        catalogues()?,
        keys,
    )))
}

/// The conversation sweep of `serve` (SLA breaches, idle closes, backlog), every
/// `WABRIDGE_SWEEP_INTERVAL`. A bad `WABRIDGE_FIRST_RESPONSE_SLA_MINUTES`,
/// `WABRIDGE_SWEEP_INTERVAL` or `WABRIDGE_CONVERSATION_IDLE_HOURS` stops `serve` at start.
pub fn spawn_sweeper(
    db: &Db,
    numbers: Option<&Numbers>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, CliError> {
    let env = |n: &str| std::env::var(n).ok();
    let policy = SlaPolicy::new(sla_minutes(env)?).with_numbers(numbers);
    let interval = sweep_interval(env)?;
    let sweeper = Sweeper::new(
        SqliteEngine::new(db.clone()).conversations(idle_ms(env)?),
        policy,
        Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE)),
    )
    .with_alerts(Arc::new(SqliteEngine::new(db.clone()).alerts()));
    Ok(sweeper.spawn(interval, stop))
}

/// `conversations close ID`: closes it (`close_reason: explicit`) and prints it.
pub async fn close(data: &Path, id: &str) -> Result<(), CliError> {
    let change = Change {
        close: true,
        ..Change::default()
    };
    change_and_print(data, id, &change).await
}

/// `conversations tag ID TAG... [--remove]`: adds (or removes) tags of the mapping's
/// catalogue and prints the conversation.
pub async fn tag(data: &Path, id: &str, tags: &[String], remove: bool) -> Result<(), CliError> {
    let catalogues = catalogues()?;
    let change = if remove {
        catalogues.removal(tags)
    } else {
        catalogues.change(None, None, None, tags)
    }
    .map_err(|e| CliError::ConversationRefused(e.to_string()))?;
    change_and_print(data, id, &change).await
}

async fn change_and_print(data: &Path, id: &str, change: &Change) -> Result<(), CliError> {
    let updates = updates(&open_existing(data)?)?;
    let state = updates
        .apply(id, change)
        .await
        .map_err(CliError::store("cannot change the conversation"))?
        .ok_or_else(|| CliError::NoConversation { id: id.to_string() })?;
    print_record(&state.record)
}

fn print_record(record: &ConversationRecord) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(record).map_err(|source| CliError::Json {
        what: "a conversation",
        source,
    })?;
    println!("{text}");
    Ok(())
}

/// Prints the newest `limit` conversations (of `contact`, when given): a table, or with `json`
/// one record per line.
pub async fn list(
    data: &Path,
    contact: Option<String>,
    limit: usize,
    json: bool,
) -> Result<(), CliError> {
    let store = SqliteConversations::new(open_existing(data)?);
    let all = store
        .list(contact, limit)
        .await
        .map_err(CliError::store("cannot list the conversations"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !json {
        writeln!(
            out,
            "{:<36} {:<36} {:<20} {:<8} {:<12} {:<20} {:>4} {:>4} {:>10} {:<20} closed",
            "id", "contact", "opened", "by", "origin", "agent", "in", "out", "frt_ms", "tags"
        )
        .map_err(CliError::Stdout)?;
    }
    for state in &all {
        let line = if json {
            serde_json::to_string(&state.record).map_err(|source| CliError::Json {
                what: "a conversation",
                source,
            })?
        } else {
            row(&state.record)
        };
        writeln!(out, "{line}").map_err(CliError::Stdout)?;
    }
    out.flush().map_err(CliError::Stdout)
}

fn row(r: &ConversationRecord) -> String {
    let name = |v: Option<serde_json::Value>| {
        v.and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    };
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    format!(
        "{:<36} {:<36} {:<20} {:<8} {:<12} {:<20} {:>4} {:>4} {:>10} {:<20} {}",
        r.id,
        r.contact_id,
        rfc3339(r.opened_at),
        name(r.opened_by.and_then(|p| serde_json::to_value(p).ok())),
        name(r.origin.and_then(|o| serde_json::to_value(o).ok())),
        r.agent.as_deref().unwrap_or("-"),
        r.inbound_count,
        r.outbound_count,
        opt(r.first_response_ms),
        if r.tags.is_empty() {
            "-".to_string()
        } else {
            r.tags.join(",")
        },
        r.closed_at.map_or("open".to_string(), rfc3339),
    )
}

/// Prints one conversation as JSON; an unknown id is an error naming it.
pub async fn show(data: &Path, id: &str) -> Result<(), CliError> {
    let store = SqliteConversations::new(open_existing(data)?);
    let state = store
        .get(id)
        .await
        .map_err(CliError::store("cannot read the conversation"))?
        .ok_or_else(|| CliError::NoConversation { id: id.to_string() })?;
    print_record(&state.record)
}
