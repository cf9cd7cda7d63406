//! The media index over the single table ([`MediaIndex`]): one item per stored file and person
//! who sent it, `mediafile#<object key>` with the person's identity key as its sort key, so that
//! erasing a person deletes the files no one else sent, and a file's items expire with the
//! content retention.
//!
//! Keyed by the file, not by the person: an erasure finds a person's items by scanning the
//! table (it has no index by person: `super::erasure`), so a partition per person would save it
//! nothing; what it must answer for each of their files is whether another person still names
//! it, which is then a Query of one partition. One item per (file, person) is also one write
//! per stored file, and never a pair of items a crash could leave half written (a companion
//! item per person would need a second write and could outlive its twin, keeping a file or a
//! key after an erasure). The table's one index (`report`) is the attribution report's, sparse
//! by design; a second index for this would cost every write of the table nothing but this.
//!
//! Retention: `expires_at` is the latest message's time plus the content retention, so DynamoDB's
//! TTL removes an item once no message within the retention used the file; the object itself
//! expires through the bucket's lifecycle rule (`media/`, `ContentRetentionDays` after it was
//! written). Readers treat an expired item as absent, as DynamoDB deletes them lazily.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{get_s, is_live, n, pk, s, try_update, EXPIRES_AT, PK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::media::store::MediaIndex;

/// The family of the index's items: `mediafile#media/<sha256 hex>`, sort key the identity key.
pub const FAMILY: &str = "mediafile";
/// When the latest message that used the file arrived (Unix ms).
const STORED_AT: &str = "stored_at";

#[derive(Clone, Debug)]
pub struct DynamoMediaIndex {
    client: Client,
    table: String,
    retention: Duration,
}

impl DynamoMediaIndex {
    /// An index whose items live `retention` (the content retention) after their latest use.
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> DynamoMediaIndex {
        DynamoMediaIndex {
            client,
            table: table.into(),
            retention,
        }
    }
}

/// `expires_at` (epoch seconds) of an item last used at `at_ms`, kept `retention`.
fn expiry_of(at_ms: i64, retention: Duration) -> i64 {
    let secs = at_ms.div_euclid(1000) + i64::from(at_ms.rem_euclid(1000) > 0);
    secs + retention.as_secs() as i64 + i64::from(retention.subsec_nanos() > 0)
}

#[async_trait]
impl MediaIndex for DynamoMediaIndex {
    async fn record(&self, key: &str, contact: &str, at: i64) -> Result<(), StoreError> {
        // Only a later use moves the item forward: a redelivered job of an older message must
        // not shorten the life a newer one gave the file.
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk(FAMILY, key)))
            .key(SK, s(contact))
            .update_expression("SET #at = :at, #exp = :exp")
            .condition_expression("attribute_not_exists(#at) OR #at < :at")
            .expression_attribute_names("#at", STORED_AT)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":exp", n(expiry_of(at, self.retention)));
        try_update(request).await.map(drop)
    }
}

/// Whether a live item of the file `object_key` names someone other than `keys` (the identity
/// keys of the person being erased) at `now` (epoch seconds): the file must then stay.
pub(crate) async fn named_by_others(
    client: &Client,
    table: &str,
    object_key: &str,
    keys: &[String],
    now: i64,
) -> Result<bool, StoreError> {
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(pk(FAMILY, object_key)))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query", e))?;
        for item in out.items.unwrap_or_default() {
            let other = get_s(&item, SK).is_some_and(|k| !keys.contains(&k));
            if other && is_live(item.get(EXPIRES_AT), now)? {
                return Ok(true);
            }
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_lives_the_retention_after_its_message() {
        let day = Duration::from_secs(86_400);
        assert_eq!(expiry_of(1_700_000_000_000, day), 1_700_086_400);
        // A part of a second rounds up: the item never expires before its full retention.
        assert_eq!(expiry_of(1_700_000_000_001, day), 1_700_086_401);
        assert_eq!(
            expiry_of(0, Duration::from_millis(1_500)),
            2,
            "sub-second retentions round up too"
        );
    }
}
