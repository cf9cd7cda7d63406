//! One Contact per person, by Zoho's upsert (`POST /crm/v8/Contacts/upsert`):
//! - a record with a phone is upserted on the unique identity field (the E.164 number), then
//!   the unique BSUID field: a person first known by the BSUID alone gains the phone on the
//!   contact the BSUID made;
//! - a record with the BSUID alone (the user hid the number) is upserted on the BSUID field only
//!   and carries no identity value, so the contact of the person's phone is found and keeps
//!   its identity; when Zoho inserts instead (a person known only by the BSUID), the identity
//!   field is written next;
//! - Zoho settles the match in its database: no search index to lag, no create to doubt. One
//!   upsert at a time per person in a process, and an unchanged contact costs no call.

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::records::{ContactRecord, Record};

use super::api::{equals, Budget};
use super::{remember, ZohoCrm};

/// A contact's last name when the mapping gives none (Zoho requires `Last_Name`).
const NO_NAME: &str = "WhatsApp contact";

/// Field values as Zoho's text fields take them.
fn as_text(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Null => v.clone(),
        other => Value::String(other.to_string()),
    }
}

impl ZohoCrm {
    pub(super) async fn upsert_contact(&self, effect: &Effect) -> Result<(), CrmError> {
        let Record::Contact(c) = &effect.record else {
            return Err(CrmError::Rejected("not a contact record".into()));
        };
        self.contact_of(c, &effect.fields, &Map::new(), true)
            .await
            .map(drop)
    }

    /// The Zoho id of the effect's contact (upserted when this process does not know it).
    pub(super) async fn effect_contact(&self, effect: &Effect) -> Result<String, CrmError> {
        let (c, fields) = self.contact_parts(effect)?;
        self.contact_of(c, fields, &Map::new(), false).await
    }

    /// Writes `extra` fields on the effect's contact, in its upsert; with `optional`, fields the
    /// org has not created are left out instead of waiting for them.
    pub(super) async fn update_contact(
        &self,
        effect: &Effect,
        extra: &Map<String, Value>,
        optional: bool,
    ) -> Result<(), CrmError> {
        let (c, fields) = self.contact_parts(effect)?;
        let schema = self.schema().await?;
        let mut kept = Map::new();
        for (name, value) in extra {
            if optional && !schema.contacts.has(name) {
                continue;
            }
            schema.contacts.required("Contacts", name)?;
            kept.insert(name.clone(), as_text(value));
        }
        self.contact_of(c, fields, &kept, true).await.map(drop)
    }

    fn contact_parts<'a>(
        &self,
        effect: &'a Effect,
    ) -> Result<(&'a ContactRecord, &'a Map<String, Value>), CrmError> {
        match &effect.contact {
            Some((Record::Contact(c), fields)) => Ok((c, fields)),
            _ => Err(CrmError::Rejected(format!(
                "{} record without its contact",
                effect.record.kind()
            ))),
        }
    }

    /// The upsert body of contact `c` and its duplicate-check fields, in order.
    fn contact_body(
        &self,
        c: &ContactRecord,
        fields: &Map<String, Value>,
        extra: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, Vec<String>), CrmError> {
        let id_field = &self.settings.id_field;
        let bsuid_field = self.settings.bsuid_field.as_ref();
        let mut body = Map::new();
        for (name, value) in fields.iter().chain(extra) {
            body.insert(name.clone(), as_text(value));
        }
        body.entry("Last_Name").or_insert_with(|| NO_NAME.into());
        let has = |body: &Map<String, Value>, f: &str| {
            body.get(f)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        };
        let bsuid_alone = c.phone_e164.is_none() && c.bsuid.is_some();
        let checks = match bsuid_field {
            Some(b) if bsuid_alone && has(&body, b) => {
                // The phone's contact, if any, keeps its identity.
                body.remove(id_field);
                vec![b.clone()]
            }
            _ if has(&body, id_field) => {
                let mut checks = vec![id_field.clone()];
                checks.extend(bsuid_field.filter(|b| has(&body, b)).cloned());
                checks
            }
            _ => {
                return Err(CrmError::Rejected(format!(
                    "contact has no `{id_field}` (mapping)"
                )))
            }
        };
        Ok((body, checks))
    }

    /// The Zoho id of contact record `c`: known here, else upserted. With `update`, the body is
    /// upserted whenever it differs from the last one this process wrote.
    async fn contact_of(
        &self,
        c: &ContactRecord,
        fields: &Map<String, Value>,
        extra: &Map<String, Value>,
        update: bool,
    ) -> Result<String, CrmError> {
        let _one_at_a_time = self.locks.lock(&c.id).await;
        let (body, checks) = self.contact_body(c, fields, extra)?;
        let text = Value::Object(body.clone()).to_string();
        let known = self.contacts.lock().unwrap().get(&c.id).cloned();
        if let Some(id) = known {
            let unchanged = self.written.lock().unwrap().get(&id) == Some(&text);
            if !update || (unchanged && !self.client.refused()) {
                return Ok(id);
            }
        }
        let schema = self.schema().await?;
        for name in body.keys().filter(|n| *n != "Last_Name") {
            schema.contacts.required("Contacts", name)?;
        }
        let (id, inserted) = self.upsert("Contacts", body.clone(), &checks).await?;
        if inserted && !body.contains_key(&self.settings.id_field) {
            // A person known only by the BSUID: the BSUID is their identity too.
            if let Some(bsuid) = &c.bsuid {
                let mut identity = Map::new();
                identity.insert(self.settings.id_field.clone(), json!(bsuid));
                let put = json!({"data": [identity]});
                self.client
                    .call(
                        Method::PUT,
                        &format!("/Contacts/{id}"),
                        Some(&put),
                        Budget::General,
                    )
                    .await?;
            }
        }
        remember(&self.contacts, c.id.clone(), id.clone());
        remember(&self.written, id.clone(), text);
        Ok(id)
    }

    /// `POST /crm/v8/{module}/upsert` of one record, in a batch with the concurrent upserts
    /// of other events on the same `checks`: its id, and whether Zoho inserted it.
    pub(super) async fn upsert(
        &self,
        module: &str,
        record: Map<String, Value>,
        checks: &[String],
    ) -> Result<(String, bool), CrmError> {
        let written = self
            .batcher(&format!("/{module}/upsert"), checks)
            .submit(record)
            .await?;
        Ok((written.id, written.inserted))
    }

    /// `POST /crm/v8/{module}` of one record, in a batch with the concurrent inserts of other
    /// events: its id.
    pub(super) async fn insert(
        &self,
        module: &str,
        record: Map<String, Value>,
    ) -> Result<String, CrmError> {
        let written = self
            .batcher(&format!("/{module}"), &[])
            .submit(record)
            .await?;
        Ok(written.id)
    }

    /// Deletes every contact found under the person's numbers and BSUIDs, its Cases first.
    pub(super) async fn erase(&self, e: &ErasureItem) -> Result<(), CrmError> {
        let mut searches: Vec<(&str, &String)> = e
            .phones
            .iter()
            .map(|p| (self.settings.id_field.as_str(), p))
            .collect();
        for bsuid in &e.bsuids {
            searches.push((self.settings.id_field.as_str(), bsuid));
            if let Some(field) = &self.settings.bsuid_field {
                searches.push((field.as_str(), bsuid));
            }
        }
        for (field, value) in searches {
            let path = format!(
                "/Contacts/search?criteria={}&fields=id&per_page=10",
                equals(field, value)
            );
            // Zoho answers a search without matches with 204 (`Null` here).
            let found = self
                .client
                .call(Method::GET, &path, None, Budget::Heavy)
                .await?;
            for id in found["data"].as_array().into_iter().flatten() {
                let Some(id) = id["id"].as_str() else {
                    continue;
                };
                self.erase_cases(id).await?;
                match self
                    .client
                    .call(
                        Method::DELETE,
                        &format!("/Contacts/{id}"),
                        None,
                        Budget::General,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(CrmError::Rejected(m)) if m.contains("INVALID_DATA") => {}
                    Err(e) => return Err(e),
                }
                self.contacts
                    .lock()
                    .unwrap()
                    .retain(|_, v| v.as_str() != id);
                self.written.lock().unwrap().remove(id);
            }
        }
        Ok(())
    }
}
