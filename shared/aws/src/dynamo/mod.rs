//! DynamoDB adapters over ONE table (single-table design), named by `WABRIDGE_TABLE`.
//!
//! Conventions every adapter in this folder follows:
//! - key: partition key `pk` (S) and sort key `sk` (S); `pk` starts with the record family and a
//!   `#` (`dedupe#<event key>`, `identity#...`, `ledger#...`), `sk` is `-` for single items;
//! - expiry: `expires_at` (N, epoch seconds) is the table's TTL attribute. DynamoDB deletes
//!   expired items lazily (up to days later), so readers treat `expires_at <= now` as absent;
//! - batches: BatchGetItem in chunks of 100 and BatchWriteItem in chunks of 25, with
//!   unprocessed keys/items retried with backoff ([`retry_unprocessed`]);
//! - SDK errors map through [`crate::sdk::store_error`].

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::sdk::store_error;
use wabridge_core::error::StoreError;

pub mod attribution;
pub mod audit;
pub mod consent;
pub mod conversations;
pub mod dedupe;
pub mod deliveries;
pub mod erasure;
pub mod identity;
pub mod ledger;
pub mod media_index;
pub mod media_uploads;
pub mod numbers;
pub mod oauth_tokens;
pub mod sends;
pub mod template_history;
pub mod templates;
pub mod window;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";
/// Sort key of single-item records.
pub const SINGLE_SK: &str = "-";
/// BatchGetItem limit per request.
pub const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem limit per request.
pub const BATCH_WRITE_MAX: usize = 25;
/// How many times unprocessed keys/items are retried before the call reports `Unavailable`.
pub const UNPROCESSED_ATTEMPTS: u32 = 8;

/// `<family>#<id>`.
pub fn pk(family: &str, id: &str) -> String {
    format!("{family}#{id}")
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The string attribute `name` of `item`, if it is one.
pub fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// An UpdateItem of the single item `<family>#<id>` (sort key `-`) of `table`; the caller adds
/// its expressions and sends it (see [`try_update`]).
pub fn update_single(
    client: &Client,
    table: &str,
    family: &str,
    id: &str,
) -> UpdateItemFluentBuilder {
    client
        .update_item()
        .table_name(table)
        .key(PK, s(pk(family, id)))
        .key(SK, s(SINGLE_SK))
}

/// The single item `pk` (sort key `-`) of `table`, read consistently.
pub async fn get_single(
    client: &Client,
    table: &str,
    pk: String,
) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
    client
        .get_item()
        .table_name(table)
        .key(PK, s(pk))
        .key(SK, s(SINGLE_SK))
        .consistent_read(true)
        .send()
        .await
        .map(|out| out.item)
        .map_err(|e| store_error("GetItem", e))
}

/// Sends a conditional UpdateItem: `Ok(true)` when it was applied, `Ok(false)` when its
/// condition did not hold (an expected outcome, not an error); other failures map through
/// [`store_error`].
pub async fn try_update(request: UpdateItemFluentBuilder) -> Result<bool, StoreError> {
    match request
        .send()
        .await
        .map_err(|e| store_error("UpdateItem", e))
    {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Puts `item` unless an item with its key exists: `Ok(true)` when written, `Ok(false)` when
/// the key was taken (an expected outcome, not an error).
pub async fn put_new(
    client: &Client,
    table: &str,
    item: std::collections::HashMap<String, AttributeValue>,
) -> Result<bool, StoreError> {
    match client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", PK)
        .send()
        .await
        .map_err(|e| store_error("PutItem", e))
    {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Seconds since the Unix epoch.
pub fn now_epoch() -> i64 {
    wabridge_core::clock::now_secs()
}

/// `expires_at` for a record kept `ttl` from now (rounded up to the next second).
pub fn expiry(ttl: Duration) -> i64 {
    now_epoch() + ttl.as_secs() as i64 + i64::from(ttl.subsec_nanos() > 0)
}

/// Whether an item with this `expires_at` value is still live. Items without one never expire.
pub fn is_live(expires_at: Option<&AttributeValue>, now: i64) -> Result<bool, StoreError> {
    match expires_at {
        None => Ok(true),
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map(|t| t > now)
            .map_err(|_| StoreError::corrupt(format!("{EXPIRES_AT} is not an integer: {v}"))),
        Some(other) => Err(StoreError::corrupt(format!(
            "{EXPIRES_AT} is not a number: {other:?}"
        ))),
    }
}

/// Backoff before retry `attempt` (1-based) of unprocessed batch work: 25 ms doubling, capped
/// at 800 ms, with full jitter (AWS's advice for throttled batches).
pub async fn backoff(attempt: u32) {
    let cap = 25u64.saturating_mul(1 << attempt.min(5)).min(800);
    let ms = rand::random_range(cap / 2..=cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Retries `work` on what it reports as unprocessed until nothing is left, collecting what each
/// round returned; `Unavailable` after [`UNPROCESSED_ATTEMPTS`] rounds.
pub async fn retry_unprocessed<T, R, F, Fut>(
    what: &str,
    mut pending: T,
    mut work: F,
) -> Result<Vec<R>, StoreError>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<R>, Option<T>), StoreError>>,
{
    let mut results = Vec::new();
    for attempt in 1..=UNPROCESSED_ATTEMPTS {
        let (done, rest) = work(pending).await?;
        results.extend(done);
        match rest {
            None => return Ok(results),
            Some(rest) => {
                tracing::warn!(what, attempt, "DynamoDB left part of a batch unprocessed");
                pending = rest;
                backoff(attempt).await;
            }
        }
    }
    Err(StoreError::Unavailable(format!(
        "{what}: items still unprocessed after {UNPROCESSED_ATTEMPTS} attempts"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_items_are_not_live() {
        let now = 1_700_000_000;
        assert!(is_live(Some(&n(now + 1)), now).unwrap());
        assert!(!is_live(Some(&n(now)), now).unwrap());
        assert!(!is_live(Some(&n(now - 10)), now).unwrap());
        assert!(is_live(None, now).unwrap());
        assert!(is_live(Some(&s("soon")), now).is_err());
    }

    #[tokio::test]
    async fn unprocessed_work_is_retried_until_done_then_gives_up() {
        let mut rounds = 0;
        let done = retry_unprocessed("t", 3u32, |left| {
            rounds += 1;
            async move { Ok((vec![left], (left > 1).then_some(left - 1))) }
        })
        .await
        .unwrap();
        assert_eq!(rounds, 3);
        assert_eq!(done, vec![3, 2, 1]);

        let err = retry_unprocessed("t", (), |_| async { Ok((Vec::<()>::new(), Some(()))) })
            .await
            .unwrap_err();
        assert!(err.is_retryable());
    }
}
