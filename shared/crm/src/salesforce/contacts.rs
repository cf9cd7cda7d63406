//! One Contact (or Lead) per person, by upsert on External IDs:
//! - a record with a phone is upserted on the identity field (`WhatsApp_Id__c`: the E.164
//!   number), carrying the BSUID field when known. Should another record already hold that BSUID
//!   (a person first known by the BSUID alone), Salesforce refuses the new record's BSUID as a
//!   `DUPLICATE_VALUE` of the unique field, and the upsert is made on the BSUID instead: that
//!   record gains the phone as its identity;
//! - a record with the BSUID alone (the user hid the number) is upserted on the BSUID field and
//!   carries no identity value, so the contact of the person's phone is found and keeps its
//!   identity; when Salesforce creates one instead (a person known only by the BSUID), the
//!   identity field is written next;
//! - Salesforce settles the match in its database: no search index to lag, no create to doubt.
//!   One upsert at a time per person in a process, and an unchanged contact costs no call.

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::records::{ContactRecord, Record};

use super::api::{encode, soql_literal};
use super::collections::Upserted;
use super::{remember, PersonObject, SalesforceCrm};

/// A person's last name when the mapping gives none (Salesforce requires `LastName`).
const NO_NAME: &str = "WhatsApp contact";
/// A Lead's company when the mapping gives none (Salesforce requires `Company` on Leads).
const NO_COMPANY: &str = "WhatsApp";
/// Records per erasure query and delete (sObject Collections delete takes 200 ids).
const ERASE_CHUNK: usize = 200;

/// Field values as Salesforce's text fields take them.
fn as_text(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Null => v.clone(),
        other => Value::String(other.to_string()),
    }
}

impl SalesforceCrm {
    pub(super) async fn upsert_contact(&self, effect: &Effect) -> Result<(), CrmError> {
        let Record::Contact(c) = &effect.record else {
            return Err(CrmError::Rejected("not a contact record".into()));
        };
        self.contact_of(c, &effect.fields, &Map::new(), true)
            .await
            .map(drop)
    }

    /// The Salesforce id of the effect's contact (upserted when this process does not know it).
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
        let kept: Map<String, Value> = extra
            .iter()
            .filter(|(name, _)| !optional || schema.person.has(name))
            .map(|(name, value)| (name.clone(), as_text(value)))
            .collect();
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

    /// The upsert body of contact `c` and the External ID field to upsert it on.
    fn contact_body(
        &self,
        c: &ContactRecord,
        fields: &Map<String, Value>,
        extra: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, String), CrmError> {
        let id_field = &self.settings.id_field;
        let mut body = Map::new();
        for (name, value) in fields.iter().chain(extra) {
            body.insert(name.clone(), as_text(value));
        }
        body.entry("LastName").or_insert_with(|| NO_NAME.into());
        if self.settings.object == PersonObject::Lead {
            body.entry("Company").or_insert_with(|| NO_COMPANY.into());
        }
        let has = |body: &Map<String, Value>, f: &str| {
            body.get(f)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        };
        let bsuid_alone = c.phone_e164.is_none() && c.bsuid.is_some();
        match self.settings.bsuid_field.as_ref() {
            Some(b) if bsuid_alone && has(&body, b) => {
                // The phone's contact, if any, keeps its identity.
                body.remove(id_field);
                Ok((body, b.clone()))
            }
            _ if has(&body, id_field) => Ok((body, id_field.clone())),
            _ => Err(CrmError::Rejected(format!(
                "contact has no `{id_field}` (mapping)"
            ))),
        }
    }

    /// The Salesforce id of contact record `c`: known here, else upserted. With `update`, the
    /// body is upserted whenever it differs from the last one this process wrote.
    async fn contact_of(
        &self,
        c: &ContactRecord,
        fields: &Map<String, Value>,
        extra: &Map<String, Value>,
        update: bool,
    ) -> Result<String, CrmError> {
        let _one_at_a_time = self.locks.lock(&c.id).await;
        let (body, key) = self.contact_body(c, fields, extra)?;
        let text = Value::Object(body.clone()).to_string();
        let known = self.contacts.lock().unwrap().get(&c.id).cloned();
        if let Some(id) = known {
            let unchanged = self.written.lock().unwrap().get(&id) == Some(&text);
            if !update || (unchanged && !self.client.refused()) {
                return Ok(id);
            }
        }
        let schema = self.schema().await?;
        for name in body.keys() {
            schema.person.required(name)?;
        }
        let object = self.settings.object.name();
        let upserted = match self.batcher(object, &key).submit(body.clone()).await {
            Err(CrmError::Rejected(why)) if why.contains("DUPLICATE_VALUE") => {
                // Another record holds this BSUID: the person's record is that one.
                match self.settings.bsuid_field.as_ref() {
                    Some(b) if *b != key && body.contains_key(b) => {
                        self.batcher(object, b).submit(body.clone()).await?
                    }
                    _ => return Err(CrmError::Rejected(why)),
                }
            }
            other => other?,
        };
        let Upserted { id, created } = upserted;
        if created && !body.contains_key(&self.settings.id_field) {
            // A person known only by the BSUID: the BSUID is their identity too.
            if let Some(bsuid) = &c.bsuid {
                let mut identity = Map::new();
                identity.insert(self.settings.id_field.clone(), json!(bsuid));
                let identity = Value::Object(identity);
                self.client
                    .call(
                        Method::PATCH,
                        &format!("/sobjects/{object}/{id}"),
                        Some(&identity),
                    )
                    .await?;
            }
        }
        remember(&self.contacts, c.id.clone(), id.clone());
        remember(&self.written, id.clone(), text);
        Ok(id)
    }

    /// Drops Salesforce record `id` from this process's caches.
    pub(super) fn forget_person(&self, id: &str) {
        self.contacts
            .lock()
            .unwrap()
            .retain(|_, v| v.as_str() != id);
        self.written.lock().unwrap().remove(id);
    }

    /// Deletes records `ids` (at most [`ERASE_CHUNK`]); one already deleted is fine.
    async fn delete<S: AsRef<str>>(&self, ids: &[S]) -> Result<(), CrmError> {
        let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
        let path = format!(
            "/composite/sobjects?ids={}&allOrNone=false",
            encode(&ids.join(","))
        );
        let results = self.client.call(Method::DELETE, &path, None).await?;
        for r in results.as_array().into_iter().flatten() {
            let code = r["errors"][0]["statusCode"].as_str().unwrap_or_default();
            if r["success"] != true && code != "ENTITY_IS_DELETED" {
                return Err(crate::classify_status(400, None, &r["errors"].to_string()));
            }
        }
        Ok(())
    }

    /// Deletes every contact found under the person's numbers and BSUIDs (SOQL on the External
    /// IDs: read from the database, no index lag), and their Cases (conversations).
    pub(super) async fn erase(&self, e: &ErasureItem) -> Result<(), CrmError> {
        let object = self.settings.object.name();
        let mut values: Vec<String> = e.phones.iter().chain(&e.bsuids).cloned().collect();
        values.sort();
        values.dedup();
        for chunk in values.chunks(ERASE_CHUNK) {
            let list: Vec<String> = chunk.iter().map(|v| soql_literal(v)).collect();
            let list = list.join(",");
            let mut soql = format!(
                "SELECT Id FROM {object} WHERE {} IN ({list})",
                self.settings.id_field
            );
            if let Some(b) = &self.settings.bsuid_field {
                soql.push_str(&format!(" OR {b} IN ({list})"));
            }
            let found = self
                .client
                .call(Method::GET, &format!("/query?q={}", encode(&soql)), None)
                .await?;
            let ids: Vec<&str> = found["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["Id"].as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            // Their Cases first: Salesforce refuses to delete a contact that has Cases.
            let cases = self.cases_of(&ids).await?;
            for chunk in cases.chunks(ERASE_CHUNK) {
                self.delete(chunk).await?;
                for case in chunk {
                    self.cases.forget(case);
                }
            }
            self.delete(&ids).await?;
            for id in ids {
                self.forget_person(id);
            }
        }
        Ok(())
    }
}
