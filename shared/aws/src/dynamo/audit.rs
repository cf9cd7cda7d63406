//! The audit trail over DynamoDB (`wabridge_core::audit`): one item per line under a partition
//! per UTC day, `audit#<yyyy-mm-dd>`, sort key `<at, 13 digits>#<random>`; `expires_at` (TTL)
//! ends it after the retention. Reading a period queries each day's partition in turn.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{get_s, n, pk, s, EXPIRES_AT, PK, SK};
use crate::sdk::store_error;
use wabridge_core::audit::{AuditEntry, AuditLog, DEFAULT_AUDIT_RETENTION_DAYS};
use wabridge_core::error::StoreError;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Debug)]
pub struct DynamoAudit {
    client: Client,
    table: String,
    retention: Duration,
}

/// The UTC day of `at_ms` as `yyyy-mm-dd`.
fn day(at_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl DynamoAudit {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoAudit {
        DynamoAudit {
            client,
            table: table.into(),
            retention: Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
        }
    }

    /// The trail of `table` over the CLI's AWS configuration (profiles, SSO, `AWS_ENDPOINT_URL`).
    #[cfg(feature = "credential-chain")]
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = crate::sdk::chain_config().await;
        DynamoAudit::new(Client::new(config), table)
    }

    pub fn with_retention(mut self, retention: Duration) -> DynamoAudit {
        self.retention = retention;
        self
    }
}

#[async_trait]
impl AuditLog for DynamoAudit {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let sort = format!(
            "{:013}#{}",
            entry.at,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let expires_at = (entry.at + self.retention.as_millis() as i64) / 1000;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk("audit", &day(entry.at))))
            .item(SK, s(sort))
            .item("at", n(entry.at))
            .item("actor", s(&entry.actor))
            .item("action", s(&entry.action))
            .item(EXPIRES_AT, n(expires_at));
        if let Some(subject) = &entry.subject {
            put = put.item("subject", s(subject));
        }
        put.send().await.map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn since(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut found = Vec::new();
        let now = wabridge_core::clock::now_ms();
        let mut at = since_ms - since_ms.rem_euclid(DAY_MS);
        while at <= now && found.len() < limit {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk >= :from")
                    .expression_attribute_values(":pk", s(pk("audit", &day(at))))
                    .expression_attribute_values(":from", s(format!("{since_ms:013}")))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| store_error("Query", e))?;
                for item in page.items() {
                    if found.len() >= limit {
                        break;
                    }
                    found.push(AuditEntry {
                        at: item
                            .get("at")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                        actor: get_s(item, "actor").unwrap_or_default(),
                        action: get_s(item, "action").unwrap_or_default(),
                        subject: get_s(item, "subject"),
                    });
                }
                start = page.last_evaluated_key;
                if start.is_none() || found.len() >= limit {
                    break;
                }
            }
            at += DAY_MS;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_utc_dates() {
        assert_eq!(super::day(0), "1970-01-01");
        assert_eq!(super::day(1_796_342_399_000), "2026-12-03");
        assert_eq!(super::day(1_796_342_400_000), "2026-12-04");
    }
}
