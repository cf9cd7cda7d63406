//! The dedupe port over DynamoDB: one item per accepted event key.
//!
//! Item: `pk = dedupe#<key>`, `sk = -`, `expires_at` (TTL, epoch seconds), `accepted_at`.
//! `seen` reads with strongly consistent BatchGetItem so a key marked a moment ago (Meta retries
//! quickly after a timeout) is seen; `mark` writes with BatchWriteItem. Both are idempotent.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;

use super::{
    expiry, is_live, n, now_epoch, pk, retry_unprocessed, s, BATCH_GET_MAX, BATCH_WRITE_MAX,
    EXPIRES_AT, PK, SINGLE_SK, SK,
};
use crate::sdk::store_error;
use wabridge_core::dedupe::Dedupe;
use wabridge_core::error::StoreError;

/// Record family of dedupe items.
pub const FAMILY: &str = "dedupe";

/// Meta retries a delivery for up to 7 days: a key must be remembered at least that long, so a
/// shorter `ttl` passed to [`Dedupe::mark`] is raised to this.
pub const MIN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone)]
pub struct DynamoDedupe {
    client: Client,
    table: String,
}

impl DynamoDedupe {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDedupe {
            client,
            table: table.into(),
        }
    }

    /// The item's partition key for an event key.
    pub fn item_pk(key: &str) -> String {
        pk(FAMILY, key)
    }

    fn key_of(event_key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_string(), s(Self::item_pk(event_key))),
            (SK.to_string(), s(SINGLE_SK)),
        ])
    }

    /// Reads one chunk of at most 100 distinct keys; returns the live partition keys found.
    async fn live_in_chunk(&self, chunk: &[&str], now: i64) -> Result<HashSet<String>, StoreError> {
        let keys: Vec<HashMap<String, AttributeValue>> =
            chunk.iter().map(|k| Self::key_of(k)).collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .projection_expression("#pk, #exp")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .build()
            .map_err(StoreError::corrupt)?;
        let live = retry_unprocessed("dedupe seen", request, |request| async move {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| store_error("BatchGetItem", e))?;
            let mut live = Vec::new();
            for item in out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default()
            {
                let Some(AttributeValue::S(item_pk)) = item.get(PK) else {
                    return Err(StoreError::corrupt("dedupe item without a string pk"));
                };
                // TTL deletion lags: an expired item still present counts as unseen.
                if is_live(item.get(EXPIRES_AT), now)? {
                    live.push(item_pk.clone());
                }
            }
            let rest = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
            Ok((live, rest))
        })
        .await?;
        Ok(live.into_iter().collect())
    }

    async fn mark_chunk(
        &self,
        chunk: &[&str],
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let writes = chunk
            .iter()
            .map(|key| {
                let mut item = Self::key_of(key);
                item.insert(EXPIRES_AT.to_string(), n(expires_at));
                item.insert("accepted_at".to_string(), n(now));
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(StoreError::corrupt)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        retry_unprocessed("dedupe mark", writes, |writes| async move {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, writes)
                .send()
                .await
                .map_err(|e| store_error("BatchWriteItem", e))?;
            let rest = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .filter(|w| !w.is_empty());
            Ok((Vec::<()>::new(), rest))
        })
        .await?;
        Ok(())
    }
}

/// The distinct keys, first occurrence first (BatchGetItem and BatchWriteItem reject a request
/// that names the same key twice).
fn distinct<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut set = HashSet::with_capacity(keys.len());
    keys.iter().copied().filter(|k| set.insert(*k)).collect()
}

#[async_trait]
impl Dedupe for DynamoDedupe {
    async fn seen(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let unique = distinct(keys);
        let now = now_epoch();
        let chunks = unique
            .chunks(BATCH_GET_MAX)
            .map(|chunk| self.live_in_chunk(chunk, now));
        let mut live = HashSet::new();
        for found in futures::future::try_join_all(chunks).await? {
            live.extend(found);
        }
        Ok(keys
            .iter()
            .map(|k| live.contains(&Self::item_pk(k)))
            .collect())
    }

    async fn mark(&self, keys: &[&str], ttl: Duration) -> Result<(), StoreError> {
        let unique = distinct(keys);
        if unique.is_empty() {
            return Ok(());
        }
        let now = now_epoch();
        let expires_at = expiry(ttl.max(MIN_TTL));
        let chunks = unique
            .chunks(BATCH_WRITE_MAX)
            .map(|chunk| self.mark_chunk(chunk, expires_at, now));
        futures::future::try_join_all(chunks).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_and_distinct() {
        assert_eq!(DynamoDedupe::item_pk("wamid.X"), "dedupe#wamid.X");
        assert_eq!(distinct(&["a", "b", "a", "c", "b"]), vec!["a", "b", "c"]);
    }
}
