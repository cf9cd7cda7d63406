//! What each destination received on AWS, for `wabridge replay --table`
//! ([`wabridge_core::numbers::replay`], `docs/destinations.md#replay`): the SQLite
//! `destination_deliveries` table as DynamoDB items.
//!
//! - Log item: `pk = delivery#<destination>`, `sk = <delivered_at ms, 13 digits>#<key>`, with
//!   `key`, `body` (the event) and `delivered_at`: a period is one Query of the partition.
//! - Key item: `pk = delivery#<destination>#<key>`, `sk = -`: written in the same transaction,
//!   on the condition that it is new, so a key is logged once (an SQS redelivery, a replayed
//!   delivery keep the first time).
//!
//! Both carry `expires_at` = the content retention (`WABRIDGE_CONTENT_RETENTION_DAYS`), as send
//! content does: the body is message content. An erasure deletes the log items whose body
//! names the person, with their key items ([`super::erasure`]). Events over the claim-check
//! threshold (200 KiB) are not logged: a DynamoDB item holds at most 400 KB, and their bucket
//! objects end after 14 days; a replay does not send them again.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::{expiry, get_s, get_single, is_live, n, pk, s, EXPIRES_AT, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::claim_check::CLAIM_CHECK_BYTES;
use wabridge_core::clock::Clock;
use wabridge_core::error::StoreError;
use wabridge_core::event::Event;
use wabridge_core::numbers::replay::{replay_key, DeliveryLog};
use wabridge_core::queue::Queue;

pub const FAMILY: &str = "delivery";

type Item = HashMap<String, AttributeValue>;

/// The partition of `destination`'s log items.
fn log_pk(destination: &str) -> String {
    pk(FAMILY, destination)
}

/// The key item of `key` delivered to `destination`.
pub(crate) fn key_pk(destination: &str, key: &str) -> String {
    pk(FAMILY, &format!("{destination}#{key}"))
}

/// The key item of a log item (an erasure deletes both).
pub(crate) fn key_item_of(item: &Item) -> Option<Item> {
    let destination = get_s(item, PK)?.strip_prefix("delivery#")?.to_string();
    let key = get_s(item, "key")?;
    Some(HashMap::from([
        (PK.to_string(), s(key_pk(&destination, &key))),
        (SK.to_string(), s(SINGLE_SK)),
    ]))
}

/// Sort keys order by time: 13 digits hold Unix ms until the year 2286.
fn sort_key(at_ms: i64, key: &str) -> String {
    format!("{at_ms:013}#{key}")
}

#[derive(Clone)]
pub struct DynamoDeliveries {
    client: Client,
    table: String,
    /// Items expire this long after the delivery.
    retention: Duration,
    clock: Clock,
}

impl DynamoDeliveries {
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        DynamoDeliveries {
            client,
            table: table.into(),
            retention,
            clock: Clock::System,
        }
    }

    /// Deliveries are timed by `clock` (tests log deliveries hours apart).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(StoreError::corrupt)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The events `destination` was delivered in `[since_ms, until_ms)`, oldest first.
    pub async fn logged(
        &self,
        destination: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        if until_ms <= since_ms {
            return Ok(Vec::new());
        }
        let now = super::now_epoch();
        let mut bodies = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(log_pk(destination)))
                .expression_attribute_values(":from", s(format!("{since_ms:013}")))
                // `$` sorts after the `#` that follows the time: every key of `until - 1` ms.
                .expression_attribute_values(":to", s(format!("{:013}$", until_ms - 1)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in out.items.unwrap_or_default() {
                if !is_live(item.get(EXPIRES_AT), now)? {
                    continue;
                }
                let body = get_s(&item, "body")
                    .ok_or_else(|| StoreError::corrupt("a delivery log item without a body"))?;
                bodies.push(body);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(bodies);
            }
        }
    }

    /// Enqueues again on `queue` (the destination's), under fresh keys, every event
    /// `destination` was delivered in `[since_ms, until_ms)`, oldest first; returns how many.
    pub async fn replay(
        &self,
        destination: &str,
        since_ms: i64,
        until_ms: i64,
        queue: &dyn Queue,
    ) -> Result<usize, StoreError> {
        let bodies = self.logged(destination, since_ms, until_ms).await?;
        let tag = self.clock.now_ms();
        let mut messages = Vec::with_capacity(bodies.len());
        for body in &bodies {
            let mut event =
                Event::from_json(body).map_err(|e| StoreError::corrupt(e.to_string()))?;
            event.key = replay_key(&event.key, tag);
            messages.push(event.to_message());
        }
        // In runs of 100: a long period is not one burst of concurrent sends.
        for run in messages.chunks(100) {
            queue.send_batch(run).await?;
        }
        Ok(messages.len())
    }
}

#[async_trait]
impl DeliveryLog for DynamoDeliveries {
    async fn delivered(&self, destination: &str, key: &str, event: &str) -> Result<(), StoreError> {
        if event.len() > CLAIM_CHECK_BYTES {
            tracing::warn!(
                destination,
                event = %wabridge_core::redact::key(key),
                bytes = event.len(),
                "a claim-checked event is not logged for replay (over the item size)"
            );
            return Ok(());
        }
        let now = self.clock.now_ms();
        let expires = n(expiry(self.retention));
        let log: Item = HashMap::from([
            (PK.to_string(), s(log_pk(destination))),
            (SK.to_string(), s(sort_key(now, key))),
            ("key".to_string(), s(key)),
            ("body".to_string(), s(event)),
            ("delivered_at".to_string(), n(now)),
            (EXPIRES_AT.to_string(), expires.clone()),
        ]);
        let marker: Item = HashMap::from([
            (PK.to_string(), s(key_pk(destination, key))),
            (SK.to_string(), s(SINGLE_SK)),
            (EXPIRES_AT.to_string(), expires),
        ]);
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.put(marker)?)
            .transact_items(self.put(log)?)
            .send()
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        let cancelled = e
            .as_service_error()
            .is_some_and(|s| s.is_transaction_canceled_exception());
        if !cancelled {
            return Err(store_error("TransactWriteItems", e));
        }
        // A condition failed (the key is logged already) or a concurrent transaction won.
        let existing = get_single(&self.client, &self.table, key_pk(destination, key)).await?;
        match existing {
            Some(item) if is_live(item.get(EXPIRES_AT), super::now_epoch())? => Ok(()),
            _ => Err(StoreError::Unavailable(format!(
                "TransactWriteItems: the delivery log's write of {} was cancelled",
                wabridge_core::redact::key(key)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_by_time_and_a_period_bounds_them() {
        let a = sort_key(999, "m:wamid.B");
        let b = sort_key(1_000, "m:wamid.A");
        assert!(a < b, "{a} {b}");
        // The Query's upper bound `<until - 1>$` takes every key of that millisecond, and
        // none of `until`'s.
        let to = format!("{:013}$", 1_000 - 1);
        assert!(a <= to && b > to);
        assert_eq!(b, "0000000001000#m:wamid.A");
    }

    #[test]
    fn a_log_item_leads_to_its_key_item() {
        let item: Item = HashMap::from([
            (PK.to_string(), s(log_pk("bot-mx"))),
            (SK.to_string(), s(sort_key(5, "m:wamid.A"))),
            ("key".to_string(), s("m:wamid.A")),
        ]);
        let key = key_item_of(&item).unwrap();
        assert_eq!(get_s(&key, PK).unwrap(), "delivery#bot-mx#m:wamid.A");
        assert_eq!(get_s(&key, SK).unwrap(), "-");
    }
}
