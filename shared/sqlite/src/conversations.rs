//! Conversation state over SQLite ([`wabridge_core::conversations`]): each conversation's state
//! with its revision, the latest conversation of each thread, and the mark of every message
//! counted. A save checks its conditions and writes inside one transaction of the writer.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{sql_err, Clock, Db};
use wabridge_core::conversations::{
    thread_key, ConversationRecord, ConversationState, ConversationStore, Loaded, MessageMark,
    Write,
};
use wabridge_core::error::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id         TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    opened_at  INTEGER NOT NULL,
    closed_at  INTEGER,
    state      TEXT NOT NULL    -- ConversationState as JSON
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_contact ON conversations(contact_id);
CREATE INDEX IF NOT EXISTS conversations_opened ON conversations(opened_at);
-- The sweep's work: open conversations only (a partial index).
CREATE INDEX IF NOT EXISTS conversations_open ON conversations(opened_at) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS conversation_heads (
    thread     TEXT PRIMARY KEY, -- contact id | phone_number_id
    contact_id TEXT NOT NULL,
    id         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversation_heads_contact ON conversation_heads(contact_id);
CREATE TABLE IF NOT EXISTS conversation_messages (
    message_id      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    at              INTEGER NOT NULL,
    written_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversation_messages_conversation
    ON conversation_messages(conversation_id);
CREATE INDEX IF NOT EXISTS conversation_messages_written ON conversation_messages(written_at);
";

#[derive(Clone, Debug)]
pub struct SqliteConversations {
    db: Db,
    clock: Clock,
}

impl SqliteConversations {
    pub fn new(db: Db) -> SqliteConversations {
        SqliteConversations {
            db,
            clock: Clock::System,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Conversations by opening time, newest first; with `contact`, only theirs.
    pub async fn list(
        &self,
        contact: Option<String>,
        limit: usize,
    ) -> Result<Vec<ConversationState>, StoreError> {
        self.db
            .read(move |c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT state FROM conversations WHERE ?1 IS NULL OR contact_id = ?1
                         ORDER BY opened_at DESC, id LIMIT ?2",
                    )
                    .map_err(sql_err)?;
                let rows = s
                    .query_map(params![contact, limit as i64], |r| r.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err)?;
                rows.iter().map(|t| decode(t)).collect()
            })
            .await
    }
}

/// The states of a query with one parameter.
fn states(c: &Connection, sql: &str, param: i64) -> Result<Vec<ConversationState>, StoreError> {
    let mut s = c.prepare_cached(sql).map_err(sql_err)?;
    let rows = s
        .query_map(params![param], |r| r.get::<_, String>(0))
        .map_err(sql_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err)?;
    rows.iter().map(|t| decode(t)).collect()
}

fn decode(text: &str) -> Result<ConversationState, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("conversation: {e}")))
}

fn get_in(c: &Connection, id: &str) -> Result<Option<(u64, ConversationState)>, StoreError> {
    let row: Option<(i64, String)> = c
        .prepare_cached("SELECT revision, state FROM conversations WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_err)?;
    row.map(|(revision, text)| Ok((revision as u64, decode(&text)?)))
        .transpose()
}

/// A conversation's stored revision, without decoding its state (a save's condition).
fn revision_in(c: &Connection, id: &str) -> Result<Option<u64>, StoreError> {
    c.prepare_cached("SELECT revision FROM conversations WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![id], |r| r.get::<_, i64>(0)).optional())
        .map(|r| r.map(|v| v as u64))
        .map_err(sql_err)
}

/// Deletes everything about a contact's conversations inside an erasure's write; returns the
/// rows deleted per table.
pub fn erase_in(t: &Connection, contact_id: &str) -> Result<[(&'static str, u64); 3], StoreError> {
    let run = |sql: &str| {
        t.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![contact_id]))
            .map(|n| n as u64)
            .map_err(sql_err)
    };
    let marks = run("DELETE FROM conversation_messages WHERE conversation_id IN
                     (SELECT id FROM conversations WHERE contact_id = ?1)")?;
    let heads = run("DELETE FROM conversation_heads WHERE contact_id = ?1")?;
    let conversations = run("DELETE FROM conversations WHERE contact_id = ?1")?;
    Ok([
        ("conversation_messages", marks),
        ("conversation_heads", heads),
        ("conversations", conversations),
    ])
}

#[async_trait]
impl ConversationStore for SqliteConversations {
    async fn load(&self, thread: &str, message_id: &str) -> Result<Loaded, StoreError> {
        let (thread, message_id) = (thread.to_string(), message_id.to_string());
        self.db
            .read(move |c| {
                let mark: Option<MessageMark> = c
                    .prepare_cached(
                        "SELECT conversation_id, at FROM conversation_messages
                         WHERE message_id = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![message_id], |r| {
                            Ok(MessageMark {
                                message_id: message_id.clone(),
                                conversation_id: r.get(0)?,
                                at: r.get(1)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(sql_err)?;
                let head: Option<String> = c
                    .prepare_cached("SELECT id FROM conversation_heads WHERE thread = ?1")
                    .and_then(|mut s| s.query_row(params![thread], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                let id = mark.as_ref().map(|m| &m.conversation_id).or(head.as_ref());
                let conversation = match id {
                    Some(id) => get_in(c, id)?.map(|(_, state)| state),
                    None => None,
                };
                Ok(Loaded {
                    conversation,
                    mark,
                    head,
                })
            })
            .await
    }

    async fn save(&self, write: &Write) -> Result<bool, StoreError> {
        // Encoded here, not in the closure: the closure runs on the one writer thread, which
        // every write of the process waits for.
        let texts = write
            .conversations
            .iter()
            .map(|(_, state)| {
                serde_json::to_string(state)
                    .map_err(|e| StoreError::corrupt(format!("conversation: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let write = write.clone();
        let now = self.clock.now_ms();
        self.db
            .write(move |t| {
                for (expected, state) in &write.conversations {
                    let stored = revision_in(t, &state.record.id)?;
                    if stored != *expected {
                        return Ok(false);
                    }
                }
                if let Some((expected, _)) = &write.head {
                    let stored: Option<String> = t
                        .prepare_cached("SELECT id FROM conversation_heads WHERE thread = ?1")
                        .and_then(|mut s| {
                            s.query_row(params![write.thread], |r| r.get(0)).optional()
                        })
                        .map_err(sql_err)?;
                    if stored != *expected {
                        return Ok(false);
                    }
                }
                for ((_, state), text) in write.conversations.iter().zip(&texts) {
                    let r = &state.record;
                    t.prepare_cached(
                        "INSERT INTO conversations (id, contact_id, revision, opened_at,
                         closed_at, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT(id) DO UPDATE SET revision = excluded.revision,
                         opened_at = excluded.opened_at, closed_at = excluded.closed_at,
                         state = excluded.state",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            r.id,
                            r.contact_id,
                            r.revision as i64,
                            r.opened_at,
                            r.closed_at,
                            text
                        ])
                    })
                    .map_err(sql_err)?;
                }
                if let Some((_, new)) = &write.head {
                    let contact = write
                        .conversations
                        .iter()
                        .find(|(_, s)| &s.record.id == new)
                        .map(|(_, s)| s.record.contact_id.clone())
                        .unwrap_or_default();
                    t.prepare_cached(
                        "INSERT INTO conversation_heads (thread, contact_id, id) VALUES (?1, ?2, ?3)
                         ON CONFLICT(thread) DO UPDATE SET id = excluded.id",
                    )
                    .and_then(|mut s| s.execute(params![write.thread, contact, new]))
                    .map_err(sql_err)?;
                }
                if let Some(mark) = &write.mark {
                    t.prepare_cached(
                        "INSERT INTO conversation_messages (message_id, conversation_id, at,
                         written_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(message_id) DO UPDATE SET at = min(at, excluded.at)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![mark.message_id, mark.conversation_id, mark.at, now])
                    })
                    .map_err(sql_err)?;
                }
                Ok(true)
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<ConversationState>, StoreError> {
        let id = id.to_string();
        self.db
            .read(move |c| Ok(get_in(c, &id)?.map(|(_, state)| state)))
            .await
    }

    async fn open(&self) -> Result<Vec<ConversationState>, StoreError> {
        self.db
            .read(|c| {
                states(
                    c,
                    "SELECT state FROM conversations WHERE closed_at IS NULL AND opened_at >= ?1",
                    i64::MIN,
                )
            })
            .await
    }

    async fn opened_since(&self, since: i64) -> Result<Vec<ConversationRecord>, StoreError> {
        self.db
            .read(move |c| {
                let all = states(
                    c,
                    "SELECT state FROM conversations WHERE opened_at >= ?1 ORDER BY id",
                    since,
                )?;
                Ok(all.into_iter().map(|s| s.record).collect())
            })
            .await
    }

    async fn latest(
        &self,
        contact_id: &str,
        number: Option<&str>,
    ) -> Result<Option<ConversationState>, StoreError> {
        let (contact_id, number) = (contact_id.to_string(), number.map(str::to_string));
        self.db
            .read(move |c| {
                let id: Option<String> = match number {
                    Some(number) => c
                        .prepare_cached("SELECT id FROM conversation_heads WHERE thread = ?1")
                        .and_then(|mut s| {
                            s.query_row(params![thread_key(&contact_id, &number)], |r| r.get(0))
                                .optional()
                        }),
                    None => {
                        c.prepare_cached(
                            "SELECT id FROM conversations WHERE contact_id = ?1
                             ORDER BY opened_at DESC, id DESC LIMIT 1",
                        )
                        .and_then(|mut s| s.query_row(params![contact_id], |r| r.get(0)).optional())
                    }
                }
                .map_err(sql_err)?;
                match id {
                    Some(id) => Ok(get_in(c, &id)?.map(|(_, state)| state)),
                    None => Ok(None),
                }
            })
            .await
    }
}
