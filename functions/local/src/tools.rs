//! The CLI tools beside `serve`: sign, post, records, dead letters, stats.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::audit::action;
use wabridge_core::config;
use wabridge_core::queue::{DeadLetter, Queue};
use wabridge_core::redact;
use wabridge_core::signature::{self, AppSecret};
use wabridge_sqlite::{Db, SqliteDedupe, SqliteQueue, SqliteRecords, EVENTS_QUEUE, SENDS_QUEUE};

use crate::data::open_existing;
use crate::error::{self, CliError};
use crate::secrets;

pub(crate) fn secret(data: &Path) -> Result<AppSecret, CliError> {
    AppSecret::new(secrets::app_secret(data)?).ok_or(CliError::EmptyAppSecret)
}

/// `wabridge sign FILE`: the header Meta would send for the file's exact bytes.
pub fn sign(file: &Path, data: &Path) -> Result<(), CliError> {
    let body = std::fs::read(file).map_err(CliError::io("read", file))?;
    println!(
        "X-Hub-Signature-256: {}",
        signature::sign(&secret(data)?, &body)
    );
    Ok(())
}

fn payload_files(target: &Path) -> Result<Vec<PathBuf>, CliError> {
    if target.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(target)
            .map_err(CliError::io("list", target))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CliError::argument(
                "TARGET",
                format!("no .json files in {}", target.display()),
            ));
        }
        Ok(files)
    } else if target.is_file() {
        Ok(vec![target.to_path_buf()])
    } else {
        Err(CliError::argument(
            "TARGET",
            format!("{} is neither a file nor a folder", target.display()),
        ))
    }
}

/// Signs and POSTs one payload: `Err` when the request fails or the answer is not 2xx.
async fn post_one(
    client: &reqwest::Client,
    secret: &AppSecret,
    body: Vec<u8>,
    url: &str,
) -> Result<(), CliError> {
    let sig = signature::sign(secret, &body);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .map_err(|source| CliError::Request {
            url: url.to_string(),
            source,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(CliError::HttpStatus {
        url: url.to_string(),
        status,
        body: response.text().await.unwrap_or_default(),
    })
}

/// `wabridge post FILE|DIR`: signs and POSTs each payload; fails (after trying every file) when
/// any answer is not 2xx.
pub async fn post(target: &Path, url: &str, data: &Path) -> Result<(), CliError> {
    let secret = secret(data)?;
    let files = payload_files(target)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(CliError::HttpClient)?;
    let bar = if files.len() > 1 {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let mut failures = Vec::new();
    for file in &files {
        if let Some(bar) = &bar {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            bar.set_message(name.into_owned());
        }
        let body = std::fs::read(file).map_err(CliError::io("read", file))?;
        let outcome = post_one(&client, &secret, body, url).await;
        match (&outcome, &bar) {
            (Err(e), Some(bar)) => {
                bar.println(format!("{}: {}", file.display(), error::one_line(e)))
            }
            (Ok(()), None) => println!("{}: OK", file.display()),
            _ => {}
        }
        if let Err(e) = outcome {
            failures.push((file, e));
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_with_message("done");
    }
    match failures.len() {
        0 => {
            if files.len() > 1 {
                println!("posted {} payloads to {url}", files.len());
            }
            Ok(())
        }
        1 if files.len() == 1 => {
            let (file, e) = failures.remove(0);
            Err(CliError::Payload {
                file: file.clone(),
                source: Box::new(e),
            })
        }
        failed => Err(CliError::Payloads {
            failed,
            total: files.len(),
        }),
    }
}

/// `wabridge records`: one JSON object per line, in insertion order.
pub async fn records(data: &Path, json: bool, kind: Option<&str>) -> Result<(), CliError> {
    let db = open_existing(data)?;
    let records = SqliteRecords::new(db);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = 0;
    loop {
        let page = records
            .list(kind, after, 1000)
            .await
            .map_err(CliError::store("cannot list the records"))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            let line = if json {
                serde_json::to_string(&r.body).map_err(|source| CliError::Json {
                    what: "a record",
                    source,
                })?
            } else {
                format!("{:<16} {}", r.kind, r.id)
            };
            writeln!(out, "{line}").map_err(CliError::Stdout)?;
        }
    }
    out.flush().map_err(CliError::Stdout)
}

async fn dead_letter_queues(db: &Db, queue: Option<&str>) -> Result<Vec<String>, CliError> {
    if let Some(q) = queue {
        return Ok(vec![q.to_string()]);
    }
    let mut names = vec![EVENTS_QUEUE.to_string(), SENDS_QUEUE.to_string()];
    for q in SqliteQueue::queues_with_dead_letters(db)
        .await
        .map_err(CliError::store("cannot find the queues with dead letters"))?
    {
        if !names.contains(&q) {
            names.push(q);
        }
    }
    Ok(names)
}

/// Where `wabridge dead-letters` works: the local SQLite store, or a queue pair on SQS.
pub enum DeadLetterTarget {
    Local {
        data: PathBuf,
        /// One local queue by name, or every queue with dead letters.
        queue: Option<String>,
    },
    Sqs(Vec<SqsPair>),
}

/// An SQS queue and its dead-letter queue.
pub struct SqsPair {
    /// `events` or `sends`: shown in listings.
    pub name: String,
    pub queue_url: String,
    pub dlq_url: String,
}

impl SqsPair {
    fn new(name: &str, queue_url: String, dlq_url: String) -> SqsPair {
        SqsPair {
            name: name.to_string(),
            queue_url,
            dlq_url,
        }
    }
}

/// The SQS queue pairs `dead-letters` should use, or `None` for the local store.
///
/// `--queue-url`/`--dlq-url` name one pair (called `--queue`, default `events`). Without them,
/// the environment's `EVENTS_*` / `SENDS_*` URLs (the stack outputs) select SQS: `--queue
/// events|sends` picks one, no `--queue` takes every pair whose DLQ URL is set. Nothing set:
/// the local store.
pub fn sqs_pairs(
    queue: Option<&str>,
    queue_url: Option<String>,
    dlq_url: Option<String>,
) -> Result<Option<Vec<SqsPair>>, CliError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if queue_url.is_some() || dlq_url.is_some() {
        let name = queue.unwrap_or(EVENTS_QUEUE);
        return match (queue_url, dlq_url) {
            (Some(q), Some(d)) => Ok(Some(vec![SqsPair::new(name, q, d)])),
            _ => Err(CliError::argument(
                "--queue-url",
                "SQS mode needs both --queue-url and --dlq-url",
            )),
        };
    }
    let known = [
        (
            EVENTS_QUEUE,
            config::EVENTS_QUEUE_URL,
            config::EVENTS_DLQ_URL,
        ),
        (SENDS_QUEUE, config::SENDS_QUEUE_URL, config::SENDS_DLQ_URL),
    ];
    let mut pairs = Vec::new();
    for (name, queue_var, dlq_var) in known {
        if queue.is_some_and(|q| q != name) {
            continue;
        }
        match (env(queue_var), env(dlq_var)) {
            (Some(q), Some(d)) => pairs.push(SqsPair::new(name, q, d)),
            (None, Some(_)) => return Err(CliError::HalfSqsPair { dlq_var, queue_var }),
            _ => {}
        }
    }
    Ok((!pairs.is_empty()).then_some(pairs))
}

/// One dead letter as the CLI shows it.
struct Listed {
    queue: String,
    letter: DeadLetter,
}

async fn collect_dead_letters(
    target: &DeadLetterTarget,
    limit: usize,
) -> Result<Vec<Listed>, CliError> {
    let mut out = Vec::new();
    match target {
        DeadLetterTarget::Local { data, queue } => {
            let db = open_existing(data)?;
            for name in dead_letter_queues(&db, queue.as_deref()).await? {
                let q = SqliteQueue::new(db.clone(), name.clone());
                let left = limit.saturating_sub(out.len());
                let letters = q.dead_letters(left).await.map_err(CliError::store(format!(
                    "cannot list the dead letters of queue {name}"
                )))?;
                for letter in letters {
                    out.push(Listed {
                        queue: name.clone(),
                        letter,
                    });
                }
            }
        }
        DeadLetterTarget::Sqs(pairs) => {
            for SqsPair {
                name,
                queue_url: url,
                dlq_url: dlq,
            } in pairs
            {
                let q = SqsQueue::from_env(url, dlq).await;
                let left = limit.saturating_sub(out.len());
                let letters = q.dead_letters(left).await.map_err(CliError::store(format!(
                    "cannot list the dead letters of {dlq}"
                )))?;
                for letter in letters {
                    out.push(Listed {
                        queue: name.clone(),
                        letter,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Longest preview shown of a dead letter's body, characters.
const PREVIEW_CHARS: usize = 120;

/// The start of a body with every run of 7 or more digits (phone numbers, wa_ids, BSUIDs'
/// digits) masked by [`redact::mask`], on one line.
pub fn masked_preview(body: &str) -> String {
    let mut out = redact::mask_digit_runs(body);
    if out.chars().count() > PREVIEW_CHARS {
        out = out.chars().take(PREVIEW_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// `wabridge dead-letters list`: a table (queue, id, receives, reason, masked preview), or with
/// `--json` one object per line (`queue`, `id`, `receive_count`, `reason`, `dead_lettered_at`,
/// `preview`, `body`). Listing consumes nothing.
pub async fn dead_letters_list(
    target: &DeadLetterTarget,
    json: bool,
    limit: usize,
) -> Result<(), CliError> {
    let listed = collect_dead_letters(target, limit).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let w = CliError::Stdout;
    if !json && !listed.is_empty() {
        writeln!(
            out,
            "{:<8} {:<36} {:>8}  {:<40} PREVIEW",
            "QUEUE", "ID", "RECEIVES", "REASON"
        )
        .map_err(w)?;
    }
    for Listed { queue, letter: d } in &listed {
        let preview = masked_preview(&d.body);
        if json {
            let body: serde_json::Value =
                serde_json::from_str(&d.body).unwrap_or(serde_json::Value::String(d.body.clone()));
            let line = json!({
                "queue": queue, "id": d.id, "reason": d.reason,
                "receive_count": d.receive_count, "dead_lettered_at": d.dead_lettered_at,
                "preview": preview, "body": body,
            });
            writeln!(out, "{line}").map_err(w)?;
        } else {
            let reason = d.reason.as_deref().unwrap_or("(too many receives)");
            writeln!(
                out,
                "{:<8} {:<36} {:>8}  {:<40} {}",
                queue, d.id, d.receive_count, reason, preview
            )
            .map_err(w)?;
        }
    }
    out.flush().map_err(w)
}

/// `wabridge dead-letters redrive [--id ID]`: moves dead letters back to their source queue.
/// On SQS each is sent to the source queue first and deleted from the DLQ only after that send
/// succeeded: a crash in between leaves it on both (redelivered once more, which the consumers'
/// dedupe and effects ledger absorb), never on neither.
pub async fn dead_letters_redrive(
    target: &DeadLetterTarget,
    id: Option<&str>,
) -> Result<(), CliError> {
    let mut moved = 0;
    match target {
        DeadLetterTarget::Local { data, queue } => {
            let db = open_existing(data)?;
            for name in dead_letter_queues(&db, queue.as_deref()).await? {
                moved += SqliteQueue::new(db.clone(), name.clone())
                    .redrive(id)
                    .await
                    .map_err(CliError::store(format!("cannot redrive queue {name}")))?;
            }
        }
        DeadLetterTarget::Sqs(pairs) => {
            for SqsPair {
                queue_url: url,
                dlq_url: dlq,
                ..
            } in pairs
            {
                moved += SqsQueue::from_env(url, dlq)
                    .await
                    .redrive(id)
                    .await
                    .map_err(CliError::store(format!("cannot redrive {dlq} → {url}")))?;
            }
        }
    }
    if let (Some(id), 0) = (id, moved) {
        return Err(CliError::NoDeadLetter { id: id.to_string() });
    }
    if moved > 0 {
        let subject = id
            .map(str::to_string)
            .unwrap_or_else(|| format!("{moved} message(s)"));
        match target {
            DeadLetterTarget::Local { data, .. } => {
                let db = open_existing(data)?;
                crate::audit::note_local(&db, action::REDRIVE, Some(&subject)).await?;
            }
            DeadLetterTarget::Sqs(_) => {
                crate::audit::note_deployment(action::REDRIVE, Some(&subject)).await?
            }
        }
    }
    println!("redrove {moved} message(s)");
    Ok(())
}

/// `wabridge stats`: queue and store counts as one JSON object (used by the load test).
pub async fn stats(data: &Path) -> Result<(), CliError> {
    let db = open_existing(data)?;
    let events = SqliteQueue::new(db.clone(), EVENTS_QUEUE)
        .counts()
        .await
        .map_err(CliError::store("cannot count the events queue"))?;
    let records = SqliteRecords::new(db.clone());
    let count_failed = || CliError::store("cannot count the records");
    let total = records.count(None).await.map_err(count_failed())?;
    let mut by_kind = serde_json::Map::new();
    for kind in ["contact", "activity", "unknown", "consent"] {
        let n = records.count(Some(kind)).await.map_err(count_failed())?;
        by_kind.insert(kind.into(), n.into());
    }
    let keys = SqliteDedupe::new(db.clone())
        .count()
        .await
        .map_err(CliError::store("cannot count the dedupe keys"))?;
    // Every key gets the same TTL, so the spread of expiries is the time from the first durable
    // accept to the last: the load test's server-side throughput.
    let span: i64 = db
        .read(|c| {
            c.query_row(
                "SELECT coalesce(max(expires_at) - min(expires_at), 0) FROM (
                   SELECT expires_at FROM dedupe_keys UNION ALL SELECT expires_at FROM dedupe_log)",
                [],
                |r| r.get(0),
            )
            .map_err(wabridge_core::error::StoreError::unavailable)
        })
        .await
        .map_err(CliError::store("cannot read the accept span"))?;
    // Every other queue (media, sends, destinations), so a load test can wait for all of them.
    let names: Vec<String> = db
        .read(|c| {
            let mut s = c
                .prepare(
                    "SELECT queue FROM queue_messages WHERE queue <> ?1
                     UNION SELECT queue FROM queue_dead_letters WHERE queue <> ?1",
                )
                .map_err(wabridge_core::error::StoreError::unavailable)?;
            let names = s
                .query_map([EVENTS_QUEUE], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
                .map_err(wabridge_core::error::StoreError::unavailable)?;
            Ok(names)
        })
        .await
        .map_err(CliError::store("cannot list the queues"))?;
    let mut queues = serde_json::Map::new();
    for name in names {
        let counts = SqliteQueue::new(db.clone(), &name)
            .counts()
            .await
            .map_err(CliError::store("cannot count a queue"))?;
        queues.insert(name, serde_json::to_value(counts).unwrap_or_default());
    }
    println!(
        "{}",
        json!({"events_queue": events, "queues": queues, "records": total, "records_by_kind": by_kind, "dedupe_keys": keys, "accept_span_ms": span})
    );
    Ok(())
}

#[cfg(test)]
mod preview_tests {
    use super::masked_preview;

    #[test]
    fn previews_mask_phone_numbers_and_stay_short() {
        let p = masked_preview(
            r#"{"from":"5215512345678","bsuid":"US.13491208655302741918","n":"42"}"#,
        );
        assert!(
            !p.contains("5215512345678") && !p.contains("13491208655302741918"),
            "{p}"
        );
        assert!(
            p.contains("521********78") && p.contains(r#""n":"42""#),
            "{p}"
        );
        let long = masked_preview(&format!("{}\nnext", "x".repeat(500)));
        assert_eq!(long.chars().count(), 120);
        assert!(!masked_preview("a\nb").contains('\n'));
    }
}
