//! The `local` CRM: canonical records in the SQLite records table of `wabridge serve`
//! (`wabridge records --json` prints them). Every write is a keyed upsert, so repeating one (an
//! in-doubt retry) changes nothing; the forward-only rule of outbound statuses (and a
//! conversation's highest revision) is checked inside the same transaction as the write.

use async_trait::async_trait;
use serde_json::Value;

use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::records::Record;
use wabridge_core::webhook::model::StatusKind;
use wabridge_sqlite::records::{fold_in, fold_media_in, get_in, upsert_in};
use wabridge_sqlite::SqliteRecords;

pub struct LocalCrm {
    records: SqliteRecords,
}

impl LocalCrm {
    pub fn new(records: SqliteRecords) -> Self {
        LocalCrm { records }
    }
}

/// (kind, id) of a record in the records table.
pub fn store_key(record: &Record) -> (&'static str, String) {
    let key = record.record_key();
    let id = key
        .split_once(':')
        .map(|(_, id)| id.to_string())
        .unwrap_or(key);
    (record.kind(), id)
}

#[async_trait]
impl Crm for LocalCrm {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        if let Record::Erasure(e) = &effect.record {
            // The local CRM erases as a hosted one would: every record of the contact goes.
            let Some(contact) = e.contact_id.clone() else {
                return Ok(());
            };
            return self
                .records
                .delete_contact(&contact)
                .await
                .map(drop)
                .map_err(|e| CrmError::Transient(format!("local store: {e}")));
        }
        let (kind, id) = store_key(&effect.record);
        let mut body = match effect.record.to_value() {
            Value::Object(map) => map,
            _ => unreachable!("records serialise as objects"),
        };
        if !effect.fields.is_empty() {
            body.insert("fields".into(), Value::Object(effect.fields.clone()));
        }
        let new_rank = match &effect.record {
            Record::Activity(a) => a.status.as_deref().map(|s| StatusKind::parse(s).rank()),
            _ => None,
        };
        // A conversation's changes may land out of order (two deliveries of one thread): the
        // highest revision stays.
        let revision = match &effect.record {
            Record::Conversation(c) => Some(c.revision),
            _ => None,
        };
        let media = match &effect.record {
            Record::Media(m) => Some(m.clone()),
            _ => None,
        };
        let now = wabridge_core::clock::now_ms();
        self.records
            .db()
            .write(move |t| {
                if let Some(rank) = new_rank {
                    if let Some(old) = get_in(t, kind, &id)? {
                        let old_rank = old
                            .body
                            .get("status")
                            .and_then(Value::as_str)
                            .map_or(0, |s| StatusKind::parse(s).rank());
                        if old_rank > rank {
                            return Ok(());
                        }
                    }
                }
                if let Some(revision) = revision {
                    let old = get_in(t, kind, &id)?;
                    let old = old.and_then(|o| o.body.get("revision").and_then(Value::as_u64));
                    if old.is_some_and(|old| old > revision) {
                        return Ok(());
                    }
                }
                let mut body = body.clone();
                if kind == "contact" {
                    // A field this event does not carry (a username-only message has no phone)
                    // is unknown, not cleared: keep what earlier events said.
                    if let Some(old) = get_in(t, kind, &id)? {
                        for (k, v) in old.body {
                            let absent = body.get(&k).is_none_or(Value::is_null);
                            if absent && !v.is_null() {
                                body.insert(k, v);
                            }
                        }
                    }
                }
                if let Some(media) = &media {
                    fold_media_in(t, media, now)?;
                }
                fold_in(t, kind, &id, &mut body, now)?;
                upsert_in(t, kind, &id, body, now).map(|_| ())
            })
            .await
            .map_err(|e| CrmError::Transient(format!("local store: {e}")))
    }
}
