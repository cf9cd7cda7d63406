//! Erasure over DynamoDB ([`wabridge_core::erasure`]): tombstones `tombstone#<hash>` (a salted
//! hash of an identity key, never the key), erasure markers `erased#<contact id>`, and the
//! salt `erasure#salt`, created by the first erasure and never changed.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{get_s, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::erasure::{tombstone, PastErasure};
use wabridge_core::error::StoreError;

pub const SALT_FAMILY: &str = "erasure";
pub const SALT_ID: &str = "salt";
pub const TOMBSTONE_FAMILY: &str = "tombstone";
pub const MARKER_FAMILY: &str = "erased";

async fn get(
    client: &Client,
    table: &str,
    key: String,
) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
    client
        .get_item()
        .table_name(table)
        .key(PK, s(key))
        .key(SK, s(SINGLE_SK))
        .consistent_read(true)
        .send()
        .await
        .map(|o| o.item)
        .map_err(|e| store_error("GetItem", e))
}

/// The tombstones' salt, if an erasure ever wrote one.
pub(crate) async fn salt(client: &Client, table: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(get(client, table, pk(SALT_FAMILY, SALT_ID))
        .await?
        .and_then(|i| {
            i.get("salt")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
        }))
}

fn past(item: &std::collections::HashMap<String, AttributeValue>) -> Option<PastErasure> {
    Some(PastErasure {
        erasure_id: get_s(item, "erasure_id")?,
        contact_id: get_s(item, "contact_id"),
        erased_at: item.get("erased_at")?.as_n().ok()?.parse().ok()?,
    })
}

/// The erasure whose tombstone `key` (an identity key's storage form) has, if any.
pub(crate) async fn tombstone_of(
    client: &Client,
    table: &str,
    key: &str,
) -> Result<Option<PastErasure>, StoreError> {
    let Some(salt) = salt(client, table).await? else {
        return Ok(None);
    };
    Ok(
        get(client, table, pk(TOMBSTONE_FAMILY, &tombstone(&salt, key)))
            .await?
            .as_ref()
            .and_then(past),
    )
}
