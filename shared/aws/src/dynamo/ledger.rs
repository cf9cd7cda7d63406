//! Effects ledger over DynamoDB (protocol in [`wabridge_core::ledger`]).
//!
//! Effect item: `pk = ledger#<effect id>`, `sk = -`, `state` (pending|done|released),
//! `lease_until` (epoch ms), `expires_at` (the table's TTL attribute: the ledger's retention
//! after the last write, default [`wabridge_core::config::DEFAULT_LEDGER_RETENTION_DAYS`] days, the same
//! retention the SQLite ledger purges after). A claim is ONE conditional
//! UpdateItem (new, released, or pending with an expired lease) returning the old item, so two
//! workers never both proceed. Status item: `pk = msgstatus#<message id>`, `rank`, updated with
//! the condition `rank <= :r`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::{expiry, n, pk, s, try_update, update_single, EXPIRES_AT, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::clock::now_ms;
use wabridge_core::error::StoreError;
use wabridge_core::ledger::{Claim, Ledger};

pub const FAMILY: &str = "ledger";
pub const STATUS_FAMILY: &str = "msgstatus";

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    /// `expires_at` = last write + this.
    retention: Duration,
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
            retention: Duration::from_secs(
                wabridge_core::config::DEFAULT_LEDGER_RETENTION_DAYS * 86_400,
            ),
        }
    }

    /// How long an entry lives after its last write (its `expires_at`).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn update(
        &self,
        family: &str,
        id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        update_single(&self.client, &self.table, family, id)
    }

    fn key_of(family: &str, id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_string(), s(pk(family, id))),
            (SK.to_string(), s(SINGLE_SK)),
        ])
    }

    async fn set_state(&self, effect_id: &str, state: &str) -> Result<(), StoreError> {
        // A failed condition means already done: `done` is final.
        try_update(
            self.update(FAMILY, effect_id)
                .update_expression("SET #st = :st, #exp = :exp")
                .condition_expression("attribute_not_exists(#st) OR #st <> :done")
                .expression_attribute_names("#st", "state")
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":st", s(state))
                .expression_attribute_values(":done", s("done"))
                .expression_attribute_values(":exp", n(expiry(self.retention))),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn claim(&self, effect_id: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = now_ms();
        let result = self
            .update(FAMILY, effect_id)
            .update_expression("SET #st = :pending, #lease = :until, #exp = :exp ADD attempts :one")
            .condition_expression(
                "attribute_not_exists(#st) OR #st = :released OR (#st = :pending AND #lease <= :now)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":released", s("released"))
            .expression_attribute_values(":until", n(now + lease.as_millis() as i64))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expiry(self.retention)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e));
        match result {
            Ok(out) => {
                let old_state = out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("state"))
                    .cloned();
                Ok(Claim::Proceed {
                    in_doubt: old_state == Some(s("pending")),
                })
            }
            Err(StoreError::Conflict(_)) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_of(FAMILY, effect_id)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| store_error("GetItem", e))?;
                let item = out.item.unwrap_or_default();
                match item.get("state") {
                    Some(AttributeValue::S(st)) if st == "done" => Ok(Claim::Done),
                    _ => {
                        let left = num(&item, "lease_until").unwrap_or(now) - now;
                        Ok(Claim::Busy(Duration::from_millis(left.max(100) as u64)))
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn confirm(&self, effect_id: &str) -> Result<(), StoreError> {
        self.set_state(effect_id, "done").await
    }

    async fn release(&self, effect_id: &str) -> Result<(), StoreError> {
        self.set_state(effect_id, "released").await
    }

    async fn abandon(&self, effect_id: &str) -> Result<(), StoreError> {
        // No pending claim left to abandon: nothing to do.
        try_update(
            self.update(FAMILY, effect_id)
                .update_expression("SET #lease = :zero")
                .condition_expression("#st = :pending")
                .expression_attribute_names("#st", "state")
                .expression_attribute_names("#lease", "lease_until")
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":zero", n(0)),
        )
        .await
        .map(|_| ())
    }

    async fn advance_status(&self, message_id: &str, rank: u8) -> Result<bool, StoreError> {
        try_update(
            self.update(STATUS_FAMILY, message_id)
                .update_expression("SET #r = :r, #exp = :exp")
                .condition_expression("attribute_not_exists(#r) OR #r <= :r")
                .expression_attribute_names("#r", "rank")
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":r", n(i64::from(rank)))
                .expression_attribute_values(":exp", n(expiry(self.retention))),
        )
        .await
    }
}
