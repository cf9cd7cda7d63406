//! The history of `templates apply` in a deployment's table: one item per change in the
//! partition `tplapply#<waba-id>`, sorted by time (`<applied_at:013>#<name>#<language>#<action>`),
//! expiring with the audit trail. Meta's limits (100 creations an hour, 10 edits in 30 days)
//! keep the partition small, so a plan reads the last 30 days in one query.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{get_s, n, pk, s, EXPIRES_AT, PK, SK};
use crate::sdk::store_error;
use wabridge_core::audit::DEFAULT_AUDIT_RETENTION_DAYS;
use wabridge_core::error::StoreError;
use wabridge_core::template_files::apply::TemplateHistory;
use wabridge_core::template_files::plan::AppliedChange;

#[derive(Clone, Debug)]
pub struct DynamoTemplateHistory {
    client: Client,
    table: String,
    waba_id: String,
    retention: Duration,
}

impl DynamoTemplateHistory {
    pub fn new(client: Client, table: impl Into<String>, waba_id: impl Into<String>) -> Self {
        DynamoTemplateHistory {
            client,
            table: table.into(),
            waba_id: waba_id.into(),
            retention: Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
        }
    }

    /// The history of `table` over the CLI's AWS configuration (profiles, SSO,
    /// `AWS_ENDPOINT_URL`).
    #[cfg(feature = "credential-chain")]
    pub async fn from_env(table: impl Into<String>, waba_id: impl Into<String>) -> Self {
        let config = crate::sdk::chain_config().await;
        DynamoTemplateHistory::new(Client::new(config), table, waba_id)
    }

    /// Items expire after `retention`, the audit trail's (`WABRIDGE_AUDIT_RETENTION_DAYS`).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn partition(&self) -> String {
        pk("tplapply", &self.waba_id)
    }
}

#[async_trait]
impl TemplateHistory for DynamoTemplateHistory {
    async fn record(&self, c: &AppliedChange) -> Result<(), StoreError> {
        let sort = format!(
            "{:013}#{}#{}#{}",
            c.applied_at_ms, c.name, c.language, c.action
        );
        let expires_at = (c.applied_at_ms + self.retention.as_millis() as i64) / 1000;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(self.partition()))
            .item(SK, s(sort))
            .item("name", s(&c.name))
            .item("language", s(&c.language))
            .item("action", s(&c.action))
            .item("content_hash", s(&c.content_hash))
            .item("applied_by", s(&c.applied_by))
            .item("applied_at", n(c.applied_at_ms))
            .item(EXPIRES_AT, n(expires_at));
        if let Some(id) = &c.template_id {
            put = put.item("template_id", s(id));
        }
        put.send().await.map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn history(
        &self,
        name: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<AppliedChange>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":pk", s(self.partition()))
                .expression_attribute_values(":from", s(format!("{:013}", since_ms.max(0))))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                let change = AppliedChange {
                    name: get_s(item, "name").unwrap_or_default(),
                    language: get_s(item, "language").unwrap_or_default(),
                    action: get_s(item, "action").unwrap_or_default(),
                    template_id: get_s(item, "template_id"),
                    content_hash: get_s(item, "content_hash").unwrap_or_default(),
                    applied_by: get_s(item, "applied_by").unwrap_or_default(),
                    applied_at_ms: item
                        .get("applied_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                };
                if name.is_none_or(|n| n == change.name) {
                    out.push(change);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// A scan of the sends still `queued` (a delete is rare, and the table keeps no index by
    /// template).
    async fn queued_sends(&self, name: &str) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :send) AND #state = :queued")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":send", s(pk("send", "")))
                .expression_attribute_values(":queued", s("queued"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan", e))?;
            for item in page.items() {
                let request: Option<serde_json::Value> =
                    get_s(item, "request").and_then(|r| serde_json::from_str(&r).ok());
                let names_it = request.is_some_and(|r| {
                    r.get("type").and_then(|t| t.as_str()) == Some("template")
                        && r.get("name").and_then(|t| t.as_str()) == Some(name)
                });
                count += u64::from(names_it);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(count);
            }
        }
    }
}
