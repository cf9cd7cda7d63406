//! Last inbound message per contact over DynamoDB: `inbound#<contact>`, updated only forward.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{n, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::window::WindowStore;

#[derive(Clone, Debug)]
pub struct DynamoWindow {
    client: Client,
    table: String,
}

impl DynamoWindow {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoWindow {
        DynamoWindow {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl WindowStore for DynamoWindow {
    async fn record_inbound(&self, contact: &str, at_ms: i64) -> Result<(), StoreError> {
        match self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk("inbound", contact)))
            .key(SK, s(SINGLE_SK))
            .update_expression("SET last_at = :at")
            .condition_expression("attribute_not_exists(last_at) OR last_at < :at")
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn last_inbound(&self, contact: &str) -> Result<Option<i64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk("inbound", contact)))
            .key(SK, s(SINGLE_SK))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item.and_then(|i| {
            i.get("last_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
        }))
    }
}
