//! Last inbound message per customer over DynamoDB: `inbound#<contact>`, updated only forward;
//! the customer's latest under the sort key `-`, and one item per business number under
//! `n#<phone_number_id>` (the window is the pair's). An erasure deletes the whole partition
//! (family `inbound`).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{n, pk, s, EXPIRES_AT, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::window::{LastInbound, WindowStore, WINDOW};

/// Sort key prefix of a number's item.
const NUMBER_SK: &str = "n#";

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

    /// Moves the item (`contact`, `sk`) forward to `at_ms`; a later time stored wins. A
    /// number's item expires two windows after its time: by then it answers nothing the
    /// customer's own item does not ([`LastInbound::for_number`]).
    async fn forward(&self, contact: &str, sk: String, at_ms: i64) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk("inbound", contact)))
            .update_expression("SET last_at = :at")
            .condition_expression("attribute_not_exists(last_at) OR last_at < :at")
            .expression_attribute_values(":at", n(at_ms));
        if sk != SINGLE_SK {
            let keep = 2 * WINDOW.as_secs() as i64;
            update = update
                .update_expression("SET last_at = :at, #ttl = :ttl")
                .expression_attribute_names("#ttl", EXPIRES_AT)
                .expression_attribute_values(":ttl", n(at_ms / 1000 + keep));
        }
        match update
            .key(SK, s(sk))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl WindowStore for DynamoWindow {
    async fn record_inbound(
        &self,
        contact: &str,
        number: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        // The pair's first: a crash between the two leaves the customer's time behind, which
        // a send naming no number reads (stricter, never looser); the redelivery completes it.
        if let Some(number) = number {
            self.forward(contact, format!("{NUMBER_SK}{number}"), at_ms)
                .await?;
        }
        self.forward(contact, SINGLE_SK.to_string(), at_ms).await
    }

    async fn last_inbound(
        &self,
        contact: &str,
        number: Option<&str>,
    ) -> Result<LastInbound, StoreError> {
        // One partition per customer, an item per number they wrote to: one Query reads all.
        let mut last = LastInbound::default();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk("inbound", contact)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                let at = item
                    .get("last_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok());
                let sk = super::get_s(item, SK).unwrap_or_default();
                match sk.strip_prefix(NUMBER_SK) {
                    None if sk == SINGLE_SK => last.any = at,
                    None => {}
                    Some(n) => {
                        last.per_number = true;
                        if Some(n) == number {
                            last.number = at;
                        }
                    }
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(last);
            }
        }
    }
}
