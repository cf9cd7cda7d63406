//! Pipedrive's custom fields are keyed by generated codes (a 40-character hash per field and
//! company), not by the names people give them. The mapping names fields as they are named in
//! Pipedrive (or by their code); the adapter reads the company's schema once
//! (`GET /api/v2/personFields`, `GET /api/v2/dealFields`, cursor-paged) and sends codes.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;
use wabridge_core::crm::CrmError;

use super::api::{encode, Budget, Client};

/// Name or code → code, for one entity's fields.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldKeys(HashMap<String, String>);

impl FieldKeys {
    pub fn code(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The code of a field the mapping needs. A missing field is the company's set-up, not the
    /// record's fault: the event waits (like a missing scope) until someone creates it.
    pub fn required(&self, entity: &str, name: &str) -> Result<&str, CrmError> {
        self.code(name).ok_or_else(|| {
            CrmError::Unauthorized(format!(
                "Pipedrive has no {entity} field `{name}`: create it (docs/crm/pipedrive.md)"
            ))
        })
    }
}

/// The company's person and deal fields.
#[derive(Debug, Default, Clone)]
pub(crate) struct Schema {
    pub person: FieldKeys,
    pub deal: FieldKeys,
}

impl Schema {
    pub async fn load(client: &Client) -> Result<Schema, CrmError> {
        Ok(Schema {
            person: entity_fields(client, "personFields").await?,
            deal: entity_fields(client, "dealFields").await?,
        })
    }
}

async fn entity_fields(client: &Client, path: &str) -> Result<FieldKeys, CrmError> {
    let mut keys = HashMap::new();
    let mut cursor: Option<String> = None;
    // A company has at most a few hundred fields: a bound on pages guards against a loop.
    for _ in 0..20 {
        let mut url = format!("/api/v2/{path}?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", encode(c)));
        }
        let page = client.call_page(Method::GET, &url, Budget::General).await?;
        for field in page.0.as_array().into_iter().flatten() {
            let Some(code) = field["field_code"].as_str() else {
                continue;
            };
            keys.insert(code.to_string(), code.to_string());
            if let Some(name) = field["field_name"].as_str() {
                keys.entry(name.to_string())
                    .or_insert_with(|| code.to_string());
            }
        }
        cursor = page.1["next_cursor"].as_str().map(String::from);
        if cursor.is_none() {
            return Ok(FieldKeys(keys));
        }
    }
    Err(CrmError::Transient(format!("{path}: too many pages")))
}

/// Keeps the JSON value as Pipedrive takes it for a text field.
pub(crate) fn as_text(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Null => v.clone(),
        other => Value::String(other.to_string()),
    }
}
