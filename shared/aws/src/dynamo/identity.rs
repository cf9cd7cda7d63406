//! Identity store over DynamoDB: one item per identity key.
//!
//! Item: `pk = identity#<phone:…|bsuid:…>`, `sk = -`, `contact_id`, `updated_at`. Links are made
//! with conditional puts (`attribute_not_exists(pk)`), so when two first messages of the same
//! person race, one put wins and the other caller reads the winner's contact: never two contacts.
//! Reads are strongly consistent.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{n, now_epoch, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::identity::{IdentityKey, IdentityStore, Resolved};

pub const FAMILY: &str = "identity";
const CONTACT_ID: &str = "contact_id";

#[derive(Clone)]
pub struct DynamoIdentityStore {
    client: Client,
    table: String,
}

impl DynamoIdentityStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIdentityStore {
            client,
            table: table.into(),
        }
    }

    fn key_of(key: &IdentityKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_string(), s(pk(FAMILY, &key.as_string()))),
            (SK.to_string(), s(SINGLE_SK)),
        ])
    }

    async fn get(&self, key: &IdentityKey) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        match out.item.as_ref().and_then(|i| i.get(CONTACT_ID)) {
            None => Ok(None),
            Some(AttributeValue::S(id)) => Ok(Some(id.clone())),
            Some(other) => Err(StoreError::corrupt(format!(
                "contact_id is not a string: {other:?}"
            ))),
        }
    }

    /// Links `key` to `contact` unless linked already; returns the contact the key is linked to.
    async fn link_if_absent(&self, key: &IdentityKey, contact: &str) -> Result<String, StoreError> {
        let mut item = Self::key_of(key);
        item.insert(CONTACT_ID.into(), s(contact));
        item.insert("updated_at".into(), n(now_epoch()));
        if super::put_new(&self.client, &self.table, item).await? {
            return Ok(contact.to_string());
        }
        self.get(key)
            .await?
            .ok_or_else(|| StoreError::Unavailable("identity link vanished during resolve".into()))
    }

    async fn link(&self, key: &IdentityKey, contact: &str) -> Result<(), StoreError> {
        let mut item = Self::key_of(key);
        item.insert(CONTACT_ID.into(), s(contact));
        item.insert("updated_at".into(), n(now_epoch()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutItem", e))
    }
}

#[async_trait]
impl IdentityStore for DynamoIdentityStore {
    async fn erased_at(&self, key: &IdentityKey) -> Result<Option<i64>, StoreError> {
        Ok(
            super::erasure::tombstone_of(&self.client, &self.table, &key.as_string())
                .await?
                .map(|p| p.erased_at),
        )
    }

    async fn forget(&self, keys: &[IdentityKey], contact_id: &str) -> Result<(), StoreError> {
        for key in keys {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::key_of(key)))
                .condition_expression("contact_id = :c")
                .expression_attribute_values(":c", s(contact_id))
                .send()
                .await
                .map_err(|e| store_error("DeleteItem", e));
            match deleted {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn lookup(&self, key: &IdentityKey) -> Result<Option<String>, StoreError> {
        self.get(key).await
    }

    async fn resolve(&self, keys: &[IdentityKey], new_id: &str) -> Result<Resolved, StoreError> {
        let (first, rest) = keys
            .split_first()
            .ok_or_else(|| StoreError::Corrupt("resolve needs at least one key".into()))?;
        let mut known = None;
        for k in keys {
            if let Some(id) = self.get(k).await? {
                known = Some(id);
                break;
            }
        }
        let (contact, created) = match known {
            Some(id) => (id, false),
            None => {
                // The race: the first key decides. A loser adopts the winner's contact.
                let winner = self.link_if_absent(first, new_id).await?;
                let created = winner == new_id;
                (winner, created)
            }
        };
        for k in std::iter::once(first).chain(rest) {
            self.link_if_absent(k, &contact).await?;
        }
        Ok(Resolved {
            contact_id: contact,
            created,
        })
    }

    async fn move_key(
        &self,
        from: &IdentityKey,
        to: &IdentityKey,
        new_id: &str,
    ) -> Result<String, StoreError> {
        match self.get(from).await? {
            Some(contact) => {
                self.link(to, &contact).await?;
                if from != to {
                    // Only unlink if it still points at this contact.
                    let deleted = self
                        .client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(Self::key_of(from)))
                        .condition_expression("#c = :c")
                        .expression_attribute_names("#c", CONTACT_ID)
                        .expression_attribute_values(":c", s(&contact))
                        .send()
                        .await
                        .map_err(|e| store_error("DeleteItem", e));
                    match deleted {
                        Ok(_) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(contact)
            }
            None => {
                // Already moved (a redelivery) or never seen: resolve the new key.
                self.resolve(std::slice::from_ref(to), new_id)
                    .await
                    .map(|r| r.contact_id)
            }
        }
    }
}
