//! Conversation state over DynamoDB ([`wabridge_core::conversations`]):
//! - `conv#<id>`: the state as JSON with its `revision` and `contact_id`;
//! - `convhead#<contact id>|<phone_number_id>`: the thread's latest conversation (`id`);
//! - `convlast#<contact id>`: the conversation the contact opened last (`id`), rewritten with
//!   every new head (conversions find theirs there);
//! - `convmsg#<wamid>`: a counted message's mark (`conversation_id`, `at`, `contact_id`), kept
//!   as long as the effects ledger (a status may still come) and then expired by TTL.
//!
//! Every `conv#` item is also in the table's sparse `report` index (the attribution report's,
//! [`REPORT_INDEX`]; `rat` = opened_at): under `rperiod` = `convopen#<shard>` while it is open,
//! `conv#<YYYY-MM of opened_at>#<shard>` once closed. So the sweep Queries the few open
//! partitions instead of scanning the table, and the conversations report Queries the open ones
//! and the closed ones of its months. The index projects only keys for these items: the
//! states are then read by key.
//!
//! A save is one TransactWriteItems whose conditions are the revisions and the head it read, so
//! of two deliveries folding one thread at once, one writes and the other folds again.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::attribution::{REPORT_AT, REPORT_INDEX, REPORT_MAX_MONTHS, REPORT_PERIOD};
use super::{get_s, get_single, n, pk, s, EXPIRES_AT, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::conversations::{
    thread_key, ConversationRecord, ConversationState, ConversationStore, Loaded, MessageMark,
    Write,
};
use wabridge_core::error::StoreError;

pub const FAMILY: &str = "conv";
pub const HEAD_FAMILY: &str = "convhead";
pub const MARK_FAMILY: &str = "convmsg";
pub const LAST_FAMILY: &str = "convlast";

type Item = HashMap<String, AttributeValue>;

pub struct DynamoConversations {
    client: Client,
    table: String,
    /// How long a message's mark is kept (the ledger's retention).
    mark_ttl: Duration,
}

impl DynamoConversations {
    pub fn new(client: Client, table: impl Into<String>, mark_ttl: Duration) -> Self {
        DynamoConversations {
            client,
            table: table.into(),
            mark_ttl,
        }
    }

    /// Over the CLI's AWS configuration (aws-config's standard chain): the CLI's report. Marks
    /// are never written by a reader, so their retention does not matter here.
    #[cfg(feature = "credential-chain")]
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = crate::sdk::chain_config().await;
        DynamoConversations::new(Client::new(config), table, Duration::ZERO)
    }

    async fn state(&self, id: &str) -> Result<Option<ConversationState>, StoreError> {
        get_single(&self.client, &self.table, pk(FAMILY, id))
            .await?
            .map(|item| decode(&item))
            .transpose()
    }

    fn put(&self, item: Item, condition: Condition) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match condition {
            Condition::Always => put,
            Condition::New => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Condition::Equals(attribute, value) => put
                .condition_expression("#a = :v")
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":v", value),
        };
        let put = put.build().map_err(StoreError::corrupt)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// What must hold for a put of a save.
enum Condition {
    Always,
    /// No item with the key yet.
    New,
    /// The stored item's attribute still has this value.
    Equals(&'static str, AttributeValue),
}

/// `New` for `None`, else the attribute must still be `value`.
fn expect(attribute: &'static str, value: Option<AttributeValue>) -> Condition {
    value.map_or(Condition::New, |v| Condition::Equals(attribute, v))
}

fn decode(item: &Item) -> Result<ConversationState, StoreError> {
    let text =
        get_s(item, "state").ok_or_else(|| StoreError::corrupt("conversation without state"))?;
    serde_json::from_str(&text).map_err(|e| StoreError::corrupt(format!("conversation: {e}")))
}

fn single(family: &str, id: &str) -> Item {
    [
        (PK.to_string(), s(pk(family, id))),
        (SK.to_string(), s(SINGLE_SK)),
    ]
    .into()
}

/// Index partitions of open conversations, and of each month's closed ones.
const SHARDS: u32 = 4;
/// States read by key at once after an index Query.
const READS: usize = 16;

fn shard(id: &str) -> u32 {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % SHARDS
}

fn open_partition(shard: u32) -> String {
    format!("convopen#{shard}")
}

/// `conv#YYYY-MM#<shard>` of a Unix ms time.
fn month_partition(at_ms: i64, shard: u32) -> Result<String, StoreError> {
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .map_err(|_| StoreError::corrupt(format!("time out of range: {at_ms}")))?;
    Ok(format!(
        "conv#{:04}-{:02}#{shard}",
        date.year(),
        u8::from(date.month())
    ))
}

/// The index partition of a conversation as it is now.
fn partition(r: &ConversationRecord) -> Result<String, StoreError> {
    if r.is_open() {
        Ok(open_partition(shard(&r.id)))
    } else {
        month_partition(r.opened_at, shard(&r.id))
    }
}

impl DynamoConversations {
    /// The states of the items of index partition `p` with `rat` (opened_at) >= `since`.
    async fn partition_states(
        &self,
        p: String,
        since: i64,
    ) -> Result<Vec<ConversationState>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(REPORT_INDEX)
                .key_condition_expression("#p = :p AND #at >= :since")
                .expression_attribute_names("#p", REPORT_PERIOD)
                .expression_attribute_names("#at", REPORT_AT)
                .expression_attribute_values(":p", s(p.clone()))
                .expression_attribute_values(":since", n(since))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            keys.extend(out.items().iter().filter_map(|i| get_s(i, PK)));
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        // The index is eventually consistent: a state read by key is the truth (it may have
        // closed since, or be gone after an erasure).
        let states: Vec<Option<Item>> = futures::stream::iter(keys)
            .map(|key| get_single(&self.client, &self.table, key))
            .buffered(READS)
            .try_collect()
            .await?;
        states.iter().flatten().map(decode).collect()
    }
}

/// The contact id of a thread key (`<contact id>|<number>`).
fn contact_of(thread: &str) -> &str {
    thread.split_once('|').map_or(thread, |(c, _)| c)
}

#[async_trait]
impl ConversationStore for DynamoConversations {
    async fn load(&self, thread: &str, message_id: &str) -> Result<Loaded, StoreError> {
        let (mark, head) = futures::future::try_join(
            get_single(&self.client, &self.table, pk(MARK_FAMILY, message_id)),
            get_single(&self.client, &self.table, pk(HEAD_FAMILY, thread)),
        )
        .await?;
        let mark = match mark {
            Some(item) => Some(MessageMark {
                message_id: message_id.to_string(),
                conversation_id: get_s(&item, "conversation_id")
                    .ok_or_else(|| StoreError::corrupt("message mark without conversation"))?,
                at: item
                    .get("at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| StoreError::corrupt("message mark without time"))?,
            }),
            None => None,
        };
        let head = head.and_then(|item| get_s(&item, "id"));
        let id = mark.as_ref().map(|m| &m.conversation_id).or(head.as_ref());
        let conversation = match id {
            Some(id) => self.state(id).await?,
            None => None,
        };
        Ok(Loaded {
            conversation,
            mark,
            head,
        })
    }

    async fn save(&self, write: &Write) -> Result<bool, StoreError> {
        let contact = contact_of(&write.thread);
        let mut items = Vec::new();
        for (expected, state) in &write.conversations {
            let mut item = single(FAMILY, &state.record.id);
            let text = serde_json::to_string(state)
                .map_err(|e| StoreError::corrupt(format!("conversation: {e}")))?;
            item.insert("state".into(), s(text));
            item.insert("revision".into(), n(state.record.revision as i64));
            item.insert("contact_id".into(), s(&state.record.contact_id));
            item.insert(REPORT_PERIOD.into(), s(partition(&state.record)?));
            item.insert(REPORT_AT.into(), n(state.record.opened_at));
            let condition = expect("revision", expected.map(|r| n(r as i64)));
            items.push(self.put(item, condition)?);
        }
        if let Some((expected, new)) = &write.head {
            let mut item = single(HEAD_FAMILY, &write.thread);
            item.insert("id".into(), s(new));
            item.insert("contact_id".into(), s(contact));
            items.push(self.put(item, expect("id", expected.as_ref().map(s)))?);
            let mut last = single(LAST_FAMILY, contact);
            last.insert("id".into(), s(new));
            last.insert("contact_id".into(), s(contact));
            items.push(self.put(last, Condition::Always)?);
        }
        if let Some(mark) = &write.mark {
            let mut item = single(MARK_FAMILY, &mark.message_id);
            item.insert("conversation_id".into(), s(&mark.conversation_id));
            item.insert("at".into(), n(mark.at));
            item.insert("contact_id".into(), s(contact));
            item.insert(EXPIRES_AT.into(), n(super::expiry(self.mark_ttl)));
            items.push(self.put(item, Condition::Always)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let cancelled = e
                    .as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception());
                if cancelled {
                    // A condition failed (or a concurrent transaction on the same items):
                    // the caller reads again and folds again.
                    Ok(false)
                } else {
                    Err(store_error("TransactWriteItems", e))
                }
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<ConversationState>, StoreError> {
        self.state(id).await
    }

    async fn open(&self) -> Result<Vec<ConversationState>, StoreError> {
        let mut all = Vec::new();
        for shard in 0..SHARDS {
            let states = self
                .partition_states(open_partition(shard), i64::MIN)
                .await?;
            all.extend(states.into_iter().filter(|s| s.record.is_open()));
        }
        Ok(all)
    }

    async fn opened_since(&self, since: i64) -> Result<Vec<ConversationRecord>, StoreError> {
        let now = wabridge_core::clock::now_ms();
        let months = |at: i64| month_partition(at, 0).map(|p| p[5..12].to_string());
        let (first, last) = (months(since)?, months(now.max(since))?);
        let mut partitions: Vec<String> = (0..SHARDS).map(open_partition).collect();
        // Month by month from `since`'s to now's, at most the attribution report's reach.
        let (mut y, mut m): (i32, u32) = (
            first[..4].parse().unwrap_or(1970),
            first[5..].parse().unwrap_or(1),
        );
        for month in 0.. {
            if month == REPORT_MAX_MONTHS {
                return Err(StoreError::Invalid(format!(
                    "the DynamoDB report reads at most {REPORT_MAX_MONTHS} months back; use a later --since"
                )));
            }
            let name = format!("{y:04}-{m:02}");
            partitions.extend((0..SHARDS).map(|sh| format!("conv#{name}#{sh}")));
            if name >= last {
                break;
            }
            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        }
        let mut all = Vec::new();
        for p in partitions {
            let states = self.partition_states(p, since).await?;
            all.extend(states.into_iter().map(|s| s.record));
        }
        // An item read by key may have moved partitions since the Query: once each.
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.dedup_by(|a, b| a.id == b.id);
        Ok(all.into_iter().filter(|r| r.opened_at >= since).collect())
    }

    async fn latest(
        &self,
        contact_id: &str,
        number: Option<&str>,
    ) -> Result<Option<ConversationState>, StoreError> {
        let key = match number {
            Some(number) => pk(HEAD_FAMILY, &thread_key(contact_id, number)),
            None => pk(LAST_FAMILY, contact_id),
        };
        match get_single(&self.client, &self.table, key).await? {
            Some(item) => match get_s(&item, "id") {
                Some(id) => self.state(&id).await,
                None => Err(StoreError::corrupt("conversation pointer without id")),
            },
            None => Ok(None),
        }
    }
}
