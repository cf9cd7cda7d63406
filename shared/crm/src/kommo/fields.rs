//! Kommo's custom fields are written by their numeric `field_id` (account-specific) or their
//! `field_code` (system fields: `PHONE`, `EMAIL`). The mapping names fields as they are named
//! in Kommo (or by their code, or their id); the adapter reads the account's schema once
//! (`GET /api/v4/contacts/custom_fields`, `GET /api/v4/leads/custom_fields`, paged) and sends ids.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};
use wabridge_core::crm::CrmError;

use super::api::Client;

/// Name, code or id → id, for one entity's fields.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldIds(HashMap<String, u64>);

impl FieldIds {
    pub fn id(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }

    /// The id of a field the mapping needs. A missing field is the account's set-up, not the
    /// record's fault: the event waits (like a missing scope) until someone creates it.
    pub fn required(&self, entity: &str, name: &str) -> Result<u64, CrmError> {
        self.id(name).ok_or_else(|| {
            CrmError::Unauthorized(format!(
                "Kommo has no {entity} field `{name}`: create it (docs/crm/kommo.md)"
            ))
        })
    }
}

/// The account's contact and lead fields.
#[derive(Debug, Default, Clone)]
pub(crate) struct Schema {
    pub contact: FieldIds,
    pub lead: FieldIds,
}

impl Schema {
    pub async fn load(client: &Client) -> Result<Schema, CrmError> {
        Ok(Schema {
            contact: entity_fields(client, "contacts").await?,
            lead: entity_fields(client, "leads").await?,
        })
    }
}

async fn entity_fields(client: &Client, entity: &str) -> Result<FieldIds, CrmError> {
    let mut ids = HashMap::new();
    // An account has at most a few hundred fields: a bound on pages guards against a loop.
    for page in 1..=20 {
        let url = format!("/api/v4/{entity}/custom_fields?limit=250&page={page}");
        let answer = client.call(Method::GET, &url, None).await?;
        let fields = answer["_embedded"]["custom_fields"].as_array();
        for field in fields.into_iter().flatten() {
            let Some(id) = field["id"].as_u64() else {
                continue;
            };
            ids.insert(id.to_string(), id);
            for key in ["code", "name"] {
                if let Some(k) = field[key].as_str().filter(|k| !k.is_empty()) {
                    ids.entry(k.to_string()).or_insert(id);
                }
            }
        }
        // 204 (no fields) or no next page: done.
        if answer["_links"]["next"].is_null() {
            return Ok(FieldIds(ids));
        }
    }
    Err(CrmError::Transient(format!(
        "{entity}/custom_fields: too many pages"
    )))
}

/// A text custom field's value as Kommo takes it: `{"field_id", "values":[{"value"}]}`.
pub(crate) fn field_value(id: u64, v: &Value) -> Value {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({"field_id": id, "values": [{"value": text}]})
}
