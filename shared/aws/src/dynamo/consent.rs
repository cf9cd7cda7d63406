//! The consent history over DynamoDB: one item per entry under `consent#<contact>`, sort key
//! `<at, zero-padded>#<id>` (history in order by a Query); conditional puts only: nothing
//! overwrites an entry, a redelivered one is ignored. `POST /consents` idempotency markers are
//! one item each under `consentkey#<id>` (sort key `key`), expiring by the table's TTL after
//! `CONSENT_KEY_TTL`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{expiry, n, now_epoch, pk, s, EXPIRES_AT, PK, SK};
use crate::sdk::store_error;
use wabridge_core::consent::{
    sort_history, ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ConsentStore,
    CONSENT_KEY_TTL,
};
use wabridge_core::error::StoreError;

#[derive(Clone, Debug)]
pub struct DynamoConsent {
    client: Client,
    table: String,
}

impl DynamoConsent {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoConsent {
        DynamoConsent {
            client,
            table: table.into(),
        }
    }
}

fn str_of(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

#[async_trait]
impl ConsentStore for DynamoConsent {
    async fn erased_at(&self, contact: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            super::erasure::tombstone_of(&self.client, &self.table, contact)
                .await?
                .map(|p| p.erased_at),
        )
    }

    async fn append(&self, e: &ConsentEntry) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk("consent", &e.contact)))
            .item(SK, s(format!("{:015}#{}", e.at.max(0), e.id)))
            .item("id", s(&e.id))
            .item("recipient", s(&e.to))
            .item("category", s(e.category.as_str()))
            .item("action", s(e.action.as_str()))
            .item("source", s(e.source.as_str()))
            .item("at", n(e.at))
            .item("recorded_at", n(e.recorded_at))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(ev) = &e.evidence {
            req = req.item("evidence", s(ev));
        }
        if let Some(number) = &e.number {
            req = req.item("number", s(number));
        }
        match req.send().await.map_err(|e| store_error("PutItem", e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn claim_key(
        &self,
        entry: &ConsentEntry,
        request_hash: &str,
    ) -> Result<Option<(String, ConsentEntry)>, StoreError> {
        let json = serde_json::to_string(entry).map_err(StoreError::corrupt)?;
        let key = || {
            HashMap::from([
                (PK.to_string(), s(pk("consentkey", &entry.id))),
                (SK.to_string(), s("key")),
            ])
        };
        // Twice at most: a marker that expired between our put and our read is claimed again.
        for _ in 0..2 {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(key()))
                .item("request_hash", s(request_hash))
                .item("entry", s(&json))
                .item("contact", s(&entry.contact))
                .item(EXPIRES_AT, n(expiry(CONSENT_KEY_TTL)))
                // An expired marker that the TTL has not deleted yet counts as absent.
                .condition_expression("attribute_not_exists(pk) OR #exp <= :now")
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":now", n(now_epoch()))
                .send()
                .await
                .map_err(|e| store_error("PutItem (consent key)", e));
            match put {
                Ok(_) => return Ok(None),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            let got = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| store_error("GetItem (consent key)", e))?;
            if let Some(item) = got.item {
                let hash = str_of(&item, "request_hash").unwrap_or_default();
                let first = str_of(&item, "entry")
                    .ok_or_else(|| StoreError::corrupt("consent key without its entry"))?;
                let first = serde_json::from_str(&first).map_err(StoreError::corrupt)?;
                return Ok(Some((hash, first)));
            }
        }
        Err(StoreError::Unavailable(
            "consent idempotency key kept changing; retry".into(),
        ))
    }

    async fn history(&self, contact: &str) -> Result<Vec<ConsentEntry>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk("consent", contact)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                let num = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let id = str_of(item, "id").unwrap_or_default();
                let (Some(category), Some(action), Some(source)) = (
                    str_of(item, "category").and_then(|c| ConsentCategory::parse(&c)),
                    str_of(item, "action").and_then(|c| ConsentAction::parse(&c)),
                    str_of(item, "source").and_then(|c| ConsentSource::parse_stored(&c)),
                ) else {
                    return Err(StoreError::corrupt(format!(
                        "consent entry {id} is not decodable"
                    )));
                };
                out.push(ConsentEntry {
                    id,
                    contact: contact.to_string(),
                    to: str_of(item, "recipient").unwrap_or_default(),
                    category,
                    action,
                    source,
                    evidence: str_of(item, "evidence"),
                    at: num("at"),
                    recorded_at: num("recorded_at"),
                    number: str_of(item, "number"),
                });
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        sort_history(&mut out);
        Ok(out)
    }
}
