//! The attribution store over DynamoDB (single table). Items (`sk = -`), each with `body` (S,
//! the JSON of the domain type):
//! - `attrlink#<code>`: a tracked link (`expires_at` is the link's own expiry, kept for reads but
//!   not the TTL attribute: an expired code must still be recognised as expired);
//! - `attrcontact#<contact id>`: contact touch state with `version` (N) for optimistic writes;
//! - `attrlog#<event id>`: a processed inbound message;
//! - `attrconv#<event id>`: a conversion with `status`, `detail`, `attempts`.
//!
//! A commit writes the contact state (conditioned on its version) and the log entry
//! (conditioned on absence) in one TransactWriteItems. The report runs over SQLite only.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::{n, pk, s, PK, SINGLE_SK, SK};
use crate::adapters::aws::store_error;
use crate::attribution::link::TrackedLink;
use crate::attribution::store::{
    AttributionStore, Claim, Commit, ContactState, ConversionRow, LogEntry,
};
use crate::error::StoreError;

#[derive(Clone)]
pub struct DynamoAttribution {
    client: Client,
    table: String,
}

fn key(family: &str, id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), s(pk(family, id))),
        (SK.to_string(), s(SINGLE_SK)),
    ])
}

fn body<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v).map(s).map_err(StoreError::corrupt)
}

fn parse<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    match item.get("body") {
        Some(AttributeValue::S(b)) => serde_json::from_str(b).map_err(StoreError::corrupt),
        _ => Err(StoreError::corrupt(
            "attribution item without a string body",
        )),
    }
}

impl DynamoAttribution {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAttribution {
            client,
            table: table.into(),
        }
    }

    async fn get(
        &self,
        family: &str,
        id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(family, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Puts `item` unless an item with its key exists; `false` when it does.
    async fn put_new(&self, item: HashMap<String, AttributeValue>) -> Result<bool, StoreError> {
        super::put_new(&self.client, &self.table, item).await
    }
}

#[async_trait]
impl AttributionStore for DynamoAttribution {
    async fn insert_link(&self, link: &TrackedLink) -> Result<bool, StoreError> {
        let mut item = key("attrlink", &link.code);
        item.insert("body".into(), body(link)?);
        item.insert("link_expires_at".into(), n(link.expires_at));
        self.put_new(item).await
    }

    async fn link(&self, code: &str) -> Result<Option<TrackedLink>, StoreError> {
        self.get("attrlink", code)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    async fn contact(&self, contact_id: &str) -> Result<Option<ContactState>, StoreError> {
        self.get("attrcontact", contact_id)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    async fn processed(&self, event_id: &str) -> Result<Option<LogEntry>, StoreError> {
        self.get("attrlog", event_id)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    async fn commit(&self, state: &ContactState, entry: &LogEntry) -> Result<Commit, StoreError> {
        let mut contact = key("attrcontact", &state.contact_id);
        contact.insert("body".into(), body(state)?);
        contact.insert("version".into(), n(state.version as i64));
        let contact_put = if state.version <= 1 {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(contact))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(contact))
                .condition_expression("#v = :prev")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":prev", n(state.version as i64 - 1))
        }
        .build()
        .map_err(StoreError::corrupt)?;
        let mut log = key("attrlog", &entry.event_id);
        log.insert("body".into(), body(entry)?);
        log.insert("at".into(), n(entry.at));
        let log_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(log))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(StoreError::corrupt)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(contact_put).build())
            .transact_items(TransactWriteItem::builder().put(log_put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Commit::Done),
            Err(e) => {
                let cancelled = e
                    .as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception());
                if !cancelled {
                    return Err(store_error("TransactWriteItems", e));
                }
                // A condition failed: either the event is logged already, or the contact moved.
                match self.processed(&entry.event_id).await? {
                    Some(done) => Ok(Commit::AlreadyProcessed(done)),
                    None => Ok(Commit::VersionConflict),
                }
            }
        }
    }

    async fn claim_conversion(&self, row: &ConversionRow) -> Result<Claim, StoreError> {
        let mut item = key("attrconv", &row.event_id);
        item.insert("body".into(), body(row)?);
        item.insert("status".into(), s(row.status.clone()));
        item.insert("attempts".into(), n(i64::from(row.attempts)));
        if self.put_new(item).await? {
            return Ok(Claim::New);
        }
        let item = self
            .get("attrconv", &row.event_id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("conversion vanished".into()))?;
        let mut existing: ConversionRow = parse(&item)?;
        if let Some(AttributeValue::S(st)) = item.get("status") {
            existing.status = st.clone();
        }
        existing.detail = match item.get("detail") {
            Some(AttributeValue::S(d)) => Some(d.clone()),
            _ => None,
        };
        if let Some(AttributeValue::N(a)) = item.get("attempts") {
            existing.attempts = a.parse().unwrap_or(0);
        }
        Ok(Claim::Existing(Box::new(existing)))
    }

    async fn finish_conversion(
        &self,
        event_id: &str,
        status: &str,
        detail: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key("attrconv", event_id)))
            .condition_expression("attribute_exists(#pk)")
            .update_expression("SET #st = :st, #d = :d, #a = :a")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#d", "detail")
            .expression_attribute_names("#a", "attempts")
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":d", detail.map(s).unwrap_or(AttributeValue::Null(true)))
            .expression_attribute_values(":a", n(i64::from(attempts)))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e));
        match result {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                Err(StoreError::NotFound(format!("conversion {event_id}")))
            }
            Err(e) => Err(e),
        }
    }
}
