//! Looking for data in every store, as the retention and erasure tests do: what the samples
//! say (message texts), every row of every table of a SQLite file and the file's bytes, every
//! item of a DynamoDB table.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// Message content in a webhook or send: texts, captions, titles, Flow answers, addresses and
/// shared contacts' names (at least 8 characters: shorter ones name nothing). A referral is
/// an ad's copy, kept with the attribution, and `errors` are Meta's: not what a person wrote.
pub fn message_texts(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "referral" | "errors"))
            {
                if let Value::String(s) = v {
                    let content = matches!(
                        k.as_str(),
                        "body"
                            | "caption"
                            | "title"
                            | "description"
                            | "response_json"
                            | "address"
                            | "formatted_name"
                            | "text"
                    );
                    if content && s.chars().count() >= 8 {
                        out.insert(s.clone());
                    }
                }
                message_texts(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| message_texts(i, out)),
        _ => {}
    }
}

/// Every row of every table of the SQLite file at `path`, as `(table, all columns as text)`.
pub fn sqlite_rows(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let mut s = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = s.column_count();
        let found: Vec<String> = s
            .query_map([], |r| {
                let mut text = String::new();
                for i in 0..columns {
                    let v: rusqlite::types::Value = r.get(i)?;
                    text.push_str(&format!("{v:?} | "));
                }
                Ok(text)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.extend(found.into_iter().map(|r| (table.clone(), r)));
    }
    rows
}

/// The names of the tables of the SQLite file at `path`.
pub fn sqlite_tables(path: &Path) -> BTreeSet<String> {
    sqlite_rows(path).into_iter().map(|(t, _)| t).collect()
}

/// The bytes of the SQLite file at `path` after its WAL was checkpointed into it (and of what
/// is left of the WAL): where deleted data would linger.
pub fn sqlite_file_bytes(path: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(more) = std::fs::read(&wal) {
        bytes.extend(more);
    }
    bytes
}

/// Whether `needle` (as UTF-8, or as SQLite's JSON escapes it) is in `haystack`.
pub fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    let escaped = serde_json::to_string(needle).unwrap();
    let escaped = &escaped[1..escaped.len() - 1];
    [needle, escaped]
        .iter()
        .any(|n| !n.is_empty() && haystack.windows(n.len()).any(|w| w == n.as_bytes()))
}

/// Every item of a DynamoDB table (a paginated scan).
pub async fn dynamo_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Every string an item holds (its keys' and attributes', nested ones too), one per line.
pub fn item_text(item: &HashMap<String, AttributeValue>) -> String {
    fn walk(v: &AttributeValue, out: &mut String) {
        match v {
            AttributeValue::S(s) => {
                out.push_str(s);
                out.push('\n');
            }
            AttributeValue::Ss(ss) => ss.iter().for_each(|s| {
                out.push_str(s);
                out.push('\n');
            }),
            AttributeValue::L(l) => l.iter().for_each(|v| walk(v, out)),
            AttributeValue::M(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    item.values().for_each(|v| walk(v, &mut out));
    out
}
