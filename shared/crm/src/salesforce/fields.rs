//! The org's fields of the person object, Task and Opportunity
//! (`GET /sobjects/{Object}/describe`), read once per process: a field the mapping needs and
//! the org lacks makes events wait (Salesforce would refuse every record with `INVALID_FIELD`),
//! optional ones are left out.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Map, Value};
use wabridge_core::crm::CrmError;

use super::api::Client;
use super::PersonObject;

/// One object's fields: API name → whether it is an External ID.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    pub object: String,
    fields: HashMap<String, bool>,
}

impl Fields {
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    pub fn external_id(&self, name: &str) -> bool {
        self.fields.get(name).copied().unwrap_or(false)
    }

    /// A field the mapping needs: missing, it is the org's set-up, not the record's fault;
    /// the event waits until someone creates it.
    pub fn required(&self, name: &str) -> Result<(), CrmError> {
        if self.has(name) {
            return Ok(());
        }
        Err(CrmError::Unauthorized(format!(
            "Salesforce has no {} field `{name}` (or the integration user cannot see it): create it (docs/crm/salesforce.md)",
            self.object
        )))
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Schema {
    /// Contact or Lead.
    pub person: Fields,
    pub task: Fields,
    /// Read in Contact mode only.
    pub opportunity: Fields,
}

impl Schema {
    pub async fn load(client: &Client, person: PersonObject) -> Result<Schema, CrmError> {
        let opportunity = match person {
            PersonObject::Contact => describe(client, "Opportunity").await?,
            PersonObject::Lead => Fields::default(),
        };
        Ok(Schema {
            person: describe(client, person.name()).await?,
            task: describe(client, "Task").await?,
            opportunity,
        })
    }
}

pub(crate) async fn describe(client: &Client, object: &str) -> Result<Fields, CrmError> {
    let body = client
        .call(Method::GET, &format!("/sobjects/{object}/describe"), None)
        .await?;
    let fields = body["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f["name"].as_str()?;
            Some((name.to_string(), f["externalId"] == true))
        })
        .collect();
    Ok(Fields {
        object: object.to_string(),
        fields,
    })
}

/// Field names as Salesforce's custom fields (`wabridge_first_ctwa_clid__c`).
pub(crate) fn custom(fields: Map<String, Value>) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(name, value)| (custom_name(&name), value))
        .collect()
}

pub(crate) fn custom_name(name: &str) -> String {
    format!("{name}__c")
}
