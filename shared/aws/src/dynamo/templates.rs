//! The template registries over DynamoDB: `template#<name>#<language>` for the implicit
//! number's registry (the items written before registries were per WABA keep this key), and
//! `template#<waba>#<name>#<language>` for a WABA's (names and languages hold no `#`, so the
//! two never meet); the status update is conditional on its event time (an older delivery never
//! replaces a newer status). Beside them, `templatelangs#[<waba>#]<name>` holds the set of a
//! name's languages, so the language picker of `POST /sends` reads a name's languages without a
//! scan; `templatesync#<waba or ->` when the registry was last synced completely.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{get_single, n, pk, s, update_single, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::templates::{TemplateInfo, TemplatePatch, TemplateStatus, TemplateStore};

/// One WABA's template registry.
#[derive(Clone, Debug)]
pub struct DynamoTemplates {
    client: Client,
    table: String,
    /// `""` (the implicit number's registry) or `<waba>#`: the prefix of every id.
    prefix: String,
}

impl DynamoTemplates {
    /// The implicit number's registry.
    pub fn new(client: Client, table: impl Into<String>) -> DynamoTemplates {
        DynamoTemplates::for_waba(client, table, wabridge_core::templates::IMPLICIT_WABA)
    }

    /// The registry of WABA `waba`.
    pub fn for_waba(client: Client, table: impl Into<String>, waba: &str) -> DynamoTemplates {
        DynamoTemplates {
            client,
            table: table.into(),
            prefix: if waba.is_empty() {
                String::new()
            } else {
                format!("{waba}#")
            },
        }
    }

    /// Every WABA's registry in `table`.
    pub fn registries(
        client: Client,
        table: impl Into<String>,
    ) -> wabridge_core::templates::TemplateRegistries {
        let table = table.into();
        wabridge_core::templates::TemplateRegistries::new(move |waba| {
            std::sync::Arc::new(DynamoTemplates::for_waba(
                client.clone(),
                table.clone(),
                waba,
            ))
        })
    }

    fn id(&self, name: &str, language: &str) -> String {
        format!("{}{name}#{language}", self.prefix)
    }

    fn key(&self, name: &str, language: &str) -> String {
        pk("template", &self.id(name, language))
    }

    fn sync_id(&self) -> String {
        match self.prefix.strip_suffix('#') {
            Some(waba) => waba.to_string(),
            None => SINGLE_SK.to_string(),
        }
    }

    /// Sets each field given a value; one without is removed when `remove_unset`, else kept.
    /// Then indexes the language.
    async fn write_fields(
        &self,
        name: &str,
        language: &str,
        fields: &[(&str, Option<AttributeValue>)],
        remove_unset: bool,
    ) -> Result<(), StoreError> {
        let mut req = update_single(
            &self.client,
            &self.table,
            "template",
            &self.id(name, language),
        );
        let (mut sets, mut removes) = (Vec::new(), Vec::new());
        for (i, (field, value)) in fields.iter().enumerate() {
            match value {
                Some(v) => {
                    sets.push(format!("{field} = :v{i}"));
                    req = req.expression_attribute_values(format!(":v{i}"), v.clone());
                }
                None if remove_unset => removes.push(*field),
                None => {}
            }
        }
        let mut expr = Vec::new();
        if !sets.is_empty() {
            expr.push(format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expr.push(format!("REMOVE {}", removes.join(", ")));
        }
        if !expr.is_empty() {
            req.update_expression(expr.join(" "))
                .send()
                .await
                .map_err(|e| store_error("UpdateItem", e))?;
        }
        self.index_language(name, language).await
    }

    /// Adds `language` to the name's language set (idempotent).
    async fn index_language(&self, name: &str, language: &str) -> Result<(), StoreError> {
        let id = format!("{}{name}", self.prefix);
        update_single(&self.client, &self.table, "templatelangs", &id)
            .update_expression("ADD languages :l")
            .expression_attribute_values(":l", AttributeValue::Ss(vec![language.to_string()]))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl TemplateStore for DynamoTemplates {
    async fn get(&self, name: &str, language: &str) -> Result<Option<TemplateInfo>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(self.key(name, language)))
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
                quality: st("quality"),
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
            .key(PK, s(self.key(name, language)))
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
        let written = match req.send().await.map_err(|e| store_error("UpdateItem", e)) {
            Ok(_) => true,
            Err(StoreError::Conflict(_)) => false,
            Err(e) => return Err(e),
        };
        self.index_language(name, language).await?;
        Ok(written)
    }

    async fn patch(
        &self,
        name: &str,
        language: &str,
        patch: &TemplatePatch,
    ) -> Result<(), StoreError> {
        let fields = [
            ("category", patch.category.as_deref().map(s)),
            (
                "body_parameters",
                patch.body_parameters.map(|p| n(i64::from(p))),
            ),
            ("quality", patch.quality.as_deref().map(s)),
        ];
        self.write_fields(name, language, &fields, false).await
    }

    async fn languages(&self, name: &str) -> Result<Vec<TemplateInfo>, StoreError> {
        let id = format!("{}{name}", self.prefix);
        let index = get_single(&self.client, &self.table, pk("templatelangs", &id)).await?;
        let mut languages: Vec<String> = index
            .and_then(|i| i.get("languages").and_then(|v| v.as_ss().ok()).cloned())
            .unwrap_or_default();
        languages.sort();
        let mut out = Vec::with_capacity(languages.len());
        for language in languages {
            if let Some(info) = self.get(name, &language).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn put_definition(
        &self,
        name: &str,
        language: &str,
        category: Option<&str>,
        body_parameters: Option<u32>,
    ) -> Result<(), StoreError> {
        let fields = [
            ("category", category.map(s)),
            ("body_parameters", body_parameters.map(|p| n(i64::from(p)))),
        ];
        self.write_fields(name, language, &fields, true).await
    }

    async fn synced_at(&self) -> Result<Option<i64>, StoreError> {
        let item = get_single(
            &self.client,
            &self.table,
            pk("templatesync", &self.sync_id()),
        )
        .await?;
        Ok(item.and_then(|i| i.get("synced_at")?.as_n().ok()?.parse().ok()))
    }

    async fn mark_synced(&self, at_ms: i64) -> Result<(), StoreError> {
        update_single(&self.client, &self.table, "templatesync", &self.sync_id())
            .update_expression("SET synced_at = :at")
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }
}
