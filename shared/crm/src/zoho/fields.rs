//! The org's Contacts and Deals fields by API name (`GET /crm/v8/settings/fields?module=`),
//! read once per process: a field the mapping needs and the org lacks makes events wait
//! (instead of Zoho dropping or refusing the value), optional ones are left out.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;
use wabridge_core::crm::CrmError;

use super::api::{Budget, Client};

/// One module's fields: API name → whether Zoho keeps its values unique.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(HashMap<String, bool>);

impl Fields {
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn unique(&self, name: &str) -> bool {
        self.0.get(name).copied().unwrap_or(false)
    }

    /// A field the mapping needs: missing, it is the org's set-up, not the record's fault;
    /// the event waits (like a missing scope) until someone creates it.
    pub fn required(&self, module: &str, name: &str) -> Result<(), CrmError> {
        if self.has(name) {
            return Ok(());
        }
        Err(CrmError::Unauthorized(format!(
            "Zoho has no {module} field `{name}`: create it (docs/crm/zoho.md)"
        )))
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Schema {
    pub contacts: Fields,
    pub deals: Fields,
}

impl Schema {
    pub async fn load(client: &Client) -> Result<Schema, CrmError> {
        Ok(Schema {
            contacts: module_fields(client, "Contacts").await?,
            deals: module_fields(client, "Deals").await?,
        })
    }
}

pub(super) async fn module_fields(client: &Client, module: &str) -> Result<Fields, CrmError> {
    let body = client
        .call(
            Method::GET,
            &format!("/settings/fields?module={module}"),
            None,
            Budget::General,
        )
        .await?;
    let fields = body["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f["api_name"].as_str()?;
            Some((name.to_string(), is_unique(f)))
        })
        .collect();
    Ok(Fields(fields))
}

/// Zoho marks "Do not allow duplicate values" as `unique: {"casesensitive": …}` on the field
/// (an empty object or absent when duplicates are allowed).
fn is_unique(field: &Value) -> bool {
    field["unique"].as_object().is_some_and(|u| !u.is_empty())
}
