//! OAuth tokens of a CRM connection in the table (`wabridge_core::oauth::TokenStore`; the
//! SQLite side is `wabridge_sqlite::oauth_tokens`): one item `oauth#<connection>` (sort key
//! `-`) with the tokens, their version and the refresh lease, every write conditional.
//!
//! **Why the table and not Secrets Manager.** The configured refresh token stays in the stack's
//! secret; the tokens a refresh returns are written here. Secrets Manager has no conditional
//! write: two crm-sync instances refreshing at once would both put their tokens, and with a CRM
//! that rotates refresh tokens (Kommo kills the old one on use) the last writer could store a
//! token the CRM already killed, breaking the connection until someone re-authorises. A
//! conditional UpdateItem on a version makes the lost race visible, and the lease in the same
//! item lets only one instance refresh at a time. The table is encrypted with the stack's KMS
//! key like the secret, and only the functions that call the CRM read it.
//!
//! Credentials, not personal data: no TTL (replaced on refresh), and erasure's `FAMILIES` says
//! there is nothing of a person here.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{get_s, get_single, n, pk, s, try_update, update_single};
use wabridge_core::error::StoreError;
use wabridge_core::oauth::{TokenSet, TokenStore};

/// The family of the tokens' items.
pub const FAMILY: &str = "oauth";

#[derive(Clone, Debug)]
pub struct DynamoTokenStore {
    client: Client,
    table: String,
    connection: String,
}

impl DynamoTokenStore {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        connection: impl Into<String>,
    ) -> DynamoTokenStore {
        DynamoTokenStore {
            client,
            table: table.into(),
            connection: connection.into(),
        }
    }
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl TokenStore for DynamoTokenStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        let item = get_single(&self.client, &self.table, pk(FAMILY, &self.connection)).await?;
        Ok(item.and_then(|item| {
            let version = number(&item, "version").max(0) as u64;
            (version > 0).then(|| TokenSet {
                access_token: get_s(&item, "access_token").unwrap_or_default(),
                refresh_token: get_s(&item, "refresh_token"),
                refresh_at: number(&item, "refresh_at"),
                version,
            })
        }))
    }

    async fn swap(&self, expected: Option<u64>, next: &TokenSet) -> Result<bool, StoreError> {
        let mut update = update_single(&self.client, &self.table, FAMILY, &self.connection)
            .update_expression(
                "SET access_token = :at, refresh_at = :ra, version = :v, refresh_token = :rt",
            )
            .expression_attribute_values(":at", s(&next.access_token))
            .expression_attribute_values(":ra", n(next.refresh_at))
            .expression_attribute_values(":v", n(next.version as i64))
            .expression_attribute_values(
                ":rt",
                match &next.refresh_token {
                    Some(token) => s(token),
                    None => AttributeValue::Null(true),
                },
            );
        update = match expected {
            // Nothing written yet: the item may exist for its lease alone.
            None => update.condition_expression("attribute_not_exists(version) OR version = :zero"),
            Some(v) => update
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(v as i64)),
        };
        if expected.is_none() {
            update = update.expression_attribute_values(":zero", n(0));
        }
        try_update(update).await
    }

    async fn lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        try_update(
            update_single(&self.client, &self.table, FAMILY, &self.connection)
                .update_expression("SET lease_holder = :h, lease_until = :until")
                .condition_expression(
                    "attribute_not_exists(lease_holder) OR lease_holder = :h \
                     OR lease_until <= :now",
                )
                .expression_attribute_values(":h", s(holder))
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":now", n(now)),
        )
        .await
    }

    async fn release(&self, holder: &str) -> Result<(), StoreError> {
        try_update(
            update_single(&self.client, &self.table, FAMILY, &self.connection)
                .update_expression("REMOVE lease_holder, lease_until")
                .condition_expression("lease_holder = :h")
                .expression_attribute_values(":h", s(holder)),
        )
        .await
        .map(|_| ())
    }
}
