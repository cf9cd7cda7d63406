//! The template registry over DynamoDB: `template#<name>#<language>`; the status update is
//! conditional on its event time (an older delivery never replaces a newer status).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use super::{n, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::templates::{TemplateInfo, TemplateStatus, TemplateStore};

#[derive(Clone, Debug)]
pub struct DynamoTemplates {
    client: Client,
    table: String,
}

impl DynamoTemplates {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoTemplates {
        DynamoTemplates {
            client,
            table: table.into(),
        }
    }
    fn key(name: &str, language: &str) -> String {
        pk("template", &format!("{name}#{language}"))
    }
}

#[async_trait]
impl TemplateStore for DynamoTemplates {
    async fn get(&self, name: &str, language: &str) -> Result<Option<TemplateInfo>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(Self::key(name, language)))
            .key(SK, s(SINGLE_SK))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item.map(|item| {
            let st = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            let num = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
            };
            TemplateInfo {
                name: name.to_string(),
                language: language.to_string(),
                status: st("status").map(|s| TemplateStatus::new(&s)),
                reason: st("reason"),
                status_at: num("status_at").unwrap_or(0),
                category: st("category"),
                body_parameters: num("body_parameters").map(|n| n as u32),
            }
        }))
    }

    async fn put_status(
        &self,
        name: &str,
        language: &str,
        status: &TemplateStatus,
        reason: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(Self::key(name, language)))
            .key(SK, s(SINGLE_SK))
            .condition_expression("attribute_not_exists(status_at) OR status_at <= :at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":at", n(at_ms));
        req = match reason {
            Some(r) => req
                .update_expression("SET #status = :st, status_at = :at, reason = :r")
                .expression_attribute_values(":r", s(r)),
            None => req.update_expression("SET #status = :st, status_at = :at REMOVE reason"),
        };
        match req.send().await.map_err(|e| store_error("UpdateItem", e)) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn put_definition(
        &self,
        name: &str,
        language: &str,
        category: Option<&str>,
        body_parameters: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(Self::key(name, language)))
            .key(SK, s(SINGLE_SK));
        match category {
            Some(c) => {
                sets.push("category = :c");
                req = req.expression_attribute_values(":c", s(c));
            }
            None => removes.push("category"),
        }
        match body_parameters {
            Some(p) => {
                sets.push("body_parameters = :p");
                req = req.expression_attribute_values(":p", n(i64::from(p)));
            }
            None => removes.push("body_parameters"),
        }
        let mut expr = String::new();
        if !sets.is_empty() {
            expr.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        req.update_expression(expr.trim())
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }
}
