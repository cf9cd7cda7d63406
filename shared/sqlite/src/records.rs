//! The local CRM store: JSON objects keyed by (kind, id), listed in first-insertion order.
//! `wabridge records --json` prints them; the local CRM adapter writes them.
//!
//! Every stored object carries a `"kind"` field (added from the key when the object lacks it).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use super::db::{sql_err, Clock, Db};
use wabridge_core::calls::CallRecord;
use wabridge_core::changes::{clear_change, fold_into_activity, ChangeKind, MessageChangeRecord};
use wabridge_core::error::StoreError;
use wabridge_core::media::record::MediaRecord;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    body       TEXT    NOT NULL,   -- a JSON object
    created_at INTEGER NOT NULL,   -- Unix ms
    updated_at INTEGER NOT NULL,
    UNIQUE(kind, id)
);
CREATE INDEX IF NOT EXISTS records_created ON records(kind, created_at);
-- The edits and deletions of a message, found when the message (or another change) is written.
CREATE INDEX IF NOT EXISTS records_changes ON records(json_extract(body, '$.message_id'))
    WHERE kind = 'message_change';
";

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Position in insertion order (kept when the record is updated).
    pub seq: i64,
    pub kind: String,
    pub id: String,
    /// The object, with `"kind"`.
    pub body: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn with_kind(kind: &str, body: Map<String, Value>) -> Map<String, Value> {
    let mut body = body;
    body.entry("kind")
        .or_insert_with(|| Value::String(kind.to_string()));
    body
}

/// Upserts inside an open write, so callers can make a record and another change (an effects
/// ledger entry, a queue delete) atomic. Returns `true` when the record is new.
pub fn upsert_in(
    conn: &Connection,
    kind: &str,
    id: &str,
    body: Map<String, Value>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let text = Value::Object(with_kind(kind, body)).to_string();
    let existed: Option<i64> = conn
        .prepare_cached("SELECT seq FROM records WHERE kind = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![kind, id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    conn.prepare_cached(
        "INSERT INTO records(kind, id, body, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![kind, id, text, now_ms]))
    .map_err(sql_err)?;
    Ok(existed.is_none())
}

/// [`SqliteRecords::delete_contact`] inside an open write.
pub fn delete_contact_in(conn: &Connection, contact_id: &str) -> Result<usize, StoreError> {
    conn.prepare_cached(
        "DELETE FROM records WHERE (kind = 'contact' AND id = ?1)
         OR json_extract(body, '$.contact_id') = ?1",
    )
    .and_then(|mut s| s.execute(params![contact_id]))
    .map_err(sql_err)
}

/// Reads one record inside a read or write.
pub fn get_in(conn: &Connection, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
    conn.prepare_cached(
        "SELECT seq, kind, id, body, created_at, updated_at FROM records WHERE kind = ?1 AND id = ?2",
    )
    .and_then(|mut s| s.query_row(params![kind, id], row).optional())
    .map_err(sql_err)?
    .map(decode)
    .transpose()
}

type Row = (i64, String, String, String, i64, i64);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode((seq, kind, id, body, created_at, updated_at): Row) -> Result<Record, StoreError> {
    let body = match serde_json::from_str(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(StoreError::corrupt(format!(
                "record {kind}/{id} is not an object"
            )))
        }
        Err(e) => return Err(StoreError::corrupt(format!("record {kind}/{id}: {e}"))),
    };
    Ok(Record {
        seq,
        kind,
        id,
        body,
        created_at,
        updated_at,
    })
}

/// The records table as an async API.
#[derive(Clone, Debug)]
pub struct SqliteRecords {
    db: Db,
    clock: Clock,
}

impl SqliteRecords {
    pub fn new(db: Db) -> Self {
        SqliteRecords {
            db,
            clock: Clock::System,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Inserts or replaces the object stored under (kind, id); returns `true` when it is new.
    /// `body` must be a JSON object.
    pub async fn upsert(&self, kind: &str, id: &str, body: Value) -> Result<bool, StoreError> {
        let Value::Object(map) = body else {
            return Err(StoreError::corrupt(format!(
                "record {kind}/{id} must be a JSON object"
            )));
        };
        let (kind, id, now) = (kind.to_string(), id.to_string(), self.clock.now_ms());
        self.db
            .write(move |t| upsert_in(t, &kind, &id, map.clone(), now))
            .await
    }

    /// Deletes the contact `contact_id` and every record that belongs to it (an erasure);
    /// returns how many rows went.
    pub async fn delete_contact(&self, contact_id: &str) -> Result<usize, StoreError> {
        let contact_id = contact_id.to_string();
        self.db
            .write(move |t| delete_contact_in(t, &contact_id))
            .await
    }

    pub async fn get(&self, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.db.read(move |c| get_in(c, &kind, &id)).await
    }

    /// Up to `limit` records with `seq > after`, in insertion order, optionally of one kind.
    /// Page with the last `seq` returned.
    pub async fn list(
        &self,
        kind: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let kind = kind.map(str::to_string);
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db
            .read(move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT seq, kind, id, body, created_at, updated_at FROM records
                         WHERE seq > ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY seq LIMIT ?3",
                    )
                    .map_err(sql_err)?;
                let rows = s
                    .query_map(params![after, kind, limit], row)
                    .map_err(sql_err)?;
                let rows: Vec<Row> = rows.collect::<Result<_, _>>().map_err(sql_err)?;
                rows.into_iter().map(decode).collect()
            })
            .await
    }

    /// How many records (of one kind, or all).
    pub async fn count(&self, kind: Option<&str>) -> Result<u64, StoreError> {
        let kind = kind.map(str::to_string);
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM records WHERE ?1 IS NULL OR kind = ?1",
                    params![kind],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(sql_err)
            })
            .await
    }
}

/// Folds a media result into its activity's `media[]` entry (state, stored, error), in the
/// write that stores the media record: `wabridge records` shows the activity with its file.
/// A result for an activity the store no longer has (erased, purged) changes nothing.
pub fn fold_media_in(t: &Connection, media: &MediaRecord, now: i64) -> Result<(), StoreError> {
    let id = media
        .message_id
        .clone()
        .unwrap_or_else(|| media.activity_event_id.clone());
    let Some(mut activity) = get_in(t, "activity", &id)? else {
        return Ok(());
    };
    let Some(entries) = activity.body.get_mut("media").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for entry in entries
        .iter_mut()
        .filter(|e| e.get("id").and_then(Value::as_str) == Some(media.media_id.as_str()))
    {
        entry["state"] = serde_json::to_value(media.state).unwrap_or_default();
        for (field, value) in [
            ("stored", serde_json::to_value(&media.stored)),
            ("error", serde_json::to_value(&media.error)),
        ] {
            match value {
                Ok(v) if !v.is_null() => entry[field] = v,
                _ => {
                    if let Some(map) = entry.as_object_mut() {
                        map.remove(field);
                    }
                }
            }
        }
    }
    upsert_in(t, "activity", &id, activity.body, now).map(|_| ())
}

/// What the local CRM folds into a record before writing `body` under (`kind`, `id`), in the
/// same write:
/// - an `activity`: the stored edits and deletion of its message (they may have arrived
///   first), by the ordering rule of [`wabridge_core::changes`];
/// - a `message_change`: folded into its activity when stored; a deletion clears the content of
///   the activity and of the message's stored edits (this store is wabridge's own: the content
///   goes whatever the mapping's `[revoke]` says), and an edit of a deleted message is stored
///   without its content;
/// - a `call`: merged with what the call's other events said ([`CallRecord::merge`]).
pub fn fold_in(
    t: &Connection,
    kind: &str,
    id: &str,
    body: &mut Map<String, Value>,
    now: i64,
) -> Result<(), StoreError> {
    match kind {
        "activity" => {
            for change in changes_of(t, id)? {
                fold_into_activity(body, &change, true);
            }
            Ok(())
        }
        "message_change" => fold_change(t, body, now),
        "call" => {
            let Some(old) = get_in(t, kind, id)? else {
                return Ok(());
            };
            let (Ok(mut merged), Ok(new)) = (
                serde_json::from_value::<CallRecord>(Value::Object(old.body)),
                serde_json::from_value::<CallRecord>(Value::Object(body.clone())),
            ) else {
                return Err(StoreError::corrupt(format!("call record {id} unreadable")));
            };
            merged.merge(&new);
            let fields = body.remove("fields");
            let Ok(Value::Object(map)) = serde_json::to_value(&merged) else {
                return Err(StoreError::corrupt(format!("call record {id} unwritable")));
            };
            *body = map;
            if let Some(f) = fields {
                body.insert("fields".into(), f);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The stored changes of message `message_id`.
fn changes_of(t: &Connection, message_id: &str) -> Result<Vec<MessageChangeRecord>, StoreError> {
    let mut s = t
        .prepare_cached(
            "SELECT body FROM records WHERE kind = 'message_change'
             AND json_extract(body, '$.message_id') = ?1 ORDER BY seq",
        )
        .map_err(sql_err)?;
    let bodies: Vec<String> = s
        .query_map(params![message_id], |r| r.get(0))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    bodies
        .iter()
        .map(|b| {
            serde_json::from_str(b)
                .map_err(|e| StoreError::corrupt(format!("message_change of {message_id}: {e}")))
        })
        .collect()
}

fn fold_change(t: &Connection, body: &mut Map<String, Value>, now: i64) -> Result<(), StoreError> {
    let change: MessageChangeRecord = serde_json::from_value(Value::Object(body.clone()))
        .map_err(|e| StoreError::corrupt(format!("message_change: {e}")))?;
    let earlier = changes_of(t, &change.message_id)?;
    let deleted = change.change == Some(ChangeKind::Deleted)
        || earlier
            .iter()
            .any(|c| c.change == Some(ChangeKind::Deleted));
    if deleted {
        clear_change(body);
        body.remove("fields");
        // The message's earlier edits lose their content too.
        for c in earlier
            .iter()
            .filter(|c| c.change == Some(ChangeKind::Edited))
        {
            let key = c.record_key();
            let id = key.split_once(':').map_or(key.as_str(), |(_, id)| id);
            if let Some(mut stored) = get_in(t, "message_change", id)? {
                clear_change(&mut stored.body);
                stored.body.remove("fields");
                upsert_in(t, "message_change", id, stored.body, now)?;
            }
        }
    }
    if change.change == Some(ChangeKind::Deleted) {
        forget_dead_letters_in(t, &change.message_id)?;
    }
    if let Some(mut activity) = get_in(t, "activity", &change.message_id)? {
        if fold_into_activity(&mut activity.body, &change, true) {
            upsert_in(t, "activity", &change.message_id, activity.body, now)?;
        }
    }
    Ok(())
}

/// Deletes the dead-lettered events and the destinations' delivery log rows that carry a
/// deleted message's content: the message's own (`m:<wamid>`) and its edits'. A redrive or a
/// `wabridge replay` would otherwise bring the content back.
fn forget_dead_letters_in(t: &Connection, message_id: &str) -> Result<(), StoreError> {
    let gone = t
        .prepare_cached(
            "DELETE FROM queue_dead_letters WHERE queue = ?1 AND (msg_key = 'm:' || ?2
             OR json_extract(body, '$.item.edit.original_message_id') = ?2)",
        )
        .and_then(|mut s| s.execute(params![crate::EVENTS_QUEUE, message_id]))
        .map_err(sql_err)?;
    let logged = t
        .prepare_cached(
            "DELETE FROM destination_deliveries WHERE key = 'm:' || ?1
             OR json_extract(body, '$.item.edit.original_message_id') = ?1",
        )
        .and_then(|mut s| s.execute(params![message_id]))
        .map_err(sql_err)?;
    if logged > 0 {
        tracing::info!(
            deliveries = logged,
            "a deleted message's logged deliveries removed with its content"
        );
    }
    if gone > 0 {
        tracing::info!(
            dead_letters = gone,
            "a deleted message's dead-lettered events removed with its content"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn upsert_keeps_insertion_order_and_adds_kind() {
        let dir = tempfile::tempdir().unwrap();
        let r = SqliteRecords::new(Db::open(dir.path().join("r.db")).unwrap());
        assert!(r
            .upsert("contact", "c1", json!({"name": "Ana"}))
            .await
            .unwrap());
        assert!(r
            .upsert(
                "activity",
                "a1",
                json!({"kind": "activity", "type": "text"})
            )
            .await
            .unwrap());
        assert!(!r
            .upsert("contact", "c1", json!({"name": "Ana María"}))
            .await
            .unwrap());
        let all = r.list(None, 0, 100).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].kind.as_str(), all[0].id.as_str()),
            ("contact", "c1")
        );
        assert_eq!(
            all[0].body,
            json!({"kind": "contact", "name": "Ana María"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(all[1].kind, "activity");
        let contacts = r.list(Some("contact"), 0, 100).await.unwrap();
        assert_eq!(contacts.len(), 1);
        assert_eq!(
            r.list(None, all[0].seq, 100).await.unwrap()[0].id,
            "a1",
            "paging by seq"
        );
        assert_eq!(r.count(None).await.unwrap(), 2);
        assert_eq!(r.count(Some("activity")).await.unwrap(), 1);
        assert_eq!(
            r.get("contact", "c1").await.unwrap().unwrap().body["name"],
            "Ana María"
        );
        assert!(r.get("contact", "nope").await.unwrap().is_none());
        assert!(
            r.upsert("contact", "x", json!([1])).await.is_err(),
            "objects only"
        );
    }
}
