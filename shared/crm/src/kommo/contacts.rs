//! One Contact per person. Kommo cannot upsert and its search index lags writes, so:
//! - the contact ids this process learnt come first, by identity value and by our contact id
//!   (the identity store's one contact per person: a message with the BSUID alone finds the
//!   contact its phone made);
//! - then search: `query=` is full-text over every field and matches parts of values (another
//!   person's longer number), so only a contact holding exactly the identity counts — in its
//!   `PHONE` field (compared by digits) or a custom field (the identity or BSUID field);
//! - one find-or-create at a time per person in a process (two deliveries of a new person
//!   would both miss the search and create it twice);
//! - a create whose answer was lost (timeout, 5xx, a crash) leaves the next attempt in doubt:
//!   a search miss then is trusted only [`super::DEFAULT_SEARCH_LAG`] after that attempt.

use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::{ContactRecord, Record};

use super::api::encode;
use super::fields::{field_value, Schema};
use super::{remember, KommoCrm};

/// A contact's name when the mapping gives none.
const NO_NAME: &str = "WhatsApp contact";

/// The digits of a phone number.
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether a contact from a search holds exactly `identity`.
fn holds(contact: &Value, identity: &str) -> bool {
    let phone = identity.starts_with('+').then(|| digits(identity));
    contact["custom_fields_values"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|field| {
            let is_phone = field["field_code"] == "PHONE";
            field["values"].as_array().into_iter().flatten().any(|v| {
                let Some(value) = v["value"].as_str() else {
                    return false;
                };
                value == identity
                    || (is_phone && phone.as_deref().is_some_and(|p| digits(value) == p))
            })
        })
}

impl KommoCrm {
    /// The identity value (phone or BSUID) the mapping put in the id field.
    fn identity(&self, fields: &Map<String, Value>) -> Result<String, CrmError> {
        fields
            .get(&self.settings.id_field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| {
                CrmError::Rejected(format!(
                    "contact has no `{}` (mapping)",
                    self.settings.id_field
                ))
            })
    }

    /// Contact id of `c` (identity `value`) known here, else found by search.
    async fn find_contact(&self, c: &ContactRecord, value: &str) -> Result<Option<u64>, CrmError> {
        let known = self.contacts.lock().unwrap().get(&c.id).copied();
        if let Some(id) = known.or_else(|| self.by_identity.lock().unwrap().get(value).copied()) {
            return Ok(Some(id));
        }
        let found = self.search(value).await?;
        if let Some(id) = found {
            self.learn(c, value, id);
        }
        Ok(found)
    }

    /// `GET /api/v4/contacts?query=`: the first contact holding exactly `identity` (a number
    /// is searched by its digits: Kommo keeps numbers as typed, `+52 55…` or `52155…`).
    pub(super) async fn search(&self, identity: &str) -> Result<Option<u64>, CrmError> {
        let term = if identity.starts_with('+') {
            digits(identity)
        } else {
            identity.to_string()
        };
        let path = format!("/api/v4/contacts?query={}&limit=50", encode(&term));
        // 204 (nothing found) reads as Null: no contacts.
        let answer = self.client.call(Method::GET, &path, None).await?;
        Ok(answer["_embedded"]["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| holds(c, identity))
            .and_then(|c| c["id"].as_u64()))
    }

    fn learn(&self, c: &ContactRecord, value: &str, id: u64) {
        remember(&self.by_identity, value.to_string(), id);
        remember(&self.contacts, c.id.clone(), id);
    }

    /// Forgets a contact Kommo no longer has.
    fn forget(&self, id: u64) {
        self.by_identity.lock().unwrap().retain(|_, v| *v != id);
        self.contacts.lock().unwrap().retain(|_, v| *v != id);
        self.written.lock().unwrap().remove(&id);
    }

    /// A contact body (`name`, `custom_fields_values`) from mapped fields; without the identity
    /// field when `identity` is false.
    fn contact_body(
        &self,
        schema: &Schema,
        fields: &Map<String, Value>,
        identity: bool,
    ) -> Result<Map<String, Value>, CrmError> {
        let mut body = Map::new();
        let mut custom = Vec::new();
        for (name, value) in fields {
            match name.as_str() {
                _ if value.is_null() => {}
                "name" => {
                    body.insert("name".into(), value.clone());
                }
                "phone" => custom.push(json!({"field_code": "PHONE",
                    "values": [{"value": value, "enum_code": "MOB"}]})),
                _ if !identity && *name == self.settings.id_field => {}
                _ => custom.push(field_value(
                    schema.contact.required("contact", name)?,
                    value,
                )),
            }
        }
        if !custom.is_empty() {
            body.insert("custom_fields_values".into(), Value::Array(custom));
        }
        Ok(body)
    }

    pub(super) async fn upsert_contact(&self, effect: &Effect) -> Result<(), CrmError> {
        let Record::Contact(c) = &effect.record else {
            return Err(CrmError::Rejected("not a contact record".into()));
        };
        self.contact_of(c, &effect.fields, effect, true)
            .await
            .map(drop)
    }

    /// The contact of the effect's contact record (found or created, not updated).
    pub(super) async fn effect_contact(&self, effect: &Effect) -> Result<u64, CrmError> {
        match &effect.contact {
            Some((Record::Contact(c), fields)) => self.contact_of(c, fields, effect, false).await,
            _ => Err(CrmError::Rejected(format!(
                "{} record without its contact",
                effect.record.kind()
            ))),
        }
    }

    /// The contact of record `c`: found (and, with `update`, its changed fields written) or
    /// created.
    async fn contact_of(
        &self,
        c: &ContactRecord,
        fields: &Map<String, Value>,
        effect: &Effect,
        update: bool,
    ) -> Result<u64, CrmError> {
        let value = self.identity(fields)?;
        let _one_at_a_time = self.locks.lock(&c.id).await;
        if let Some(id) = self.find_contact(c, &value).await? {
            if update {
                let schema = self.schema().await?;
                // A record without a phone must not overwrite the identity of the phone's contact.
                let keep = c.phone_e164.is_some() || c.bsuid.is_none();
                // `PHONE` is set at create: a PATCH would replace every number the business
                // added by hand.
                let mut fields = fields.clone();
                fields.remove("phone");
                let body = self.contact_body(schema, &fields, keep)?;
                self.write_contact(id, body).await?;
            }
            return Ok(id);
        }
        self.trust_miss(effect)?;
        let schema = self.schema().await?;
        let mut body = self.contact_body(schema, fields, true)?;
        body.entry("name").or_insert_with(|| NO_NAME.into());
        let created = self
            .client
            .call(
                Method::POST,
                "/api/v4/contacts",
                Some(&json!([Value::Object(body)])),
            )
            .await;
        match created {
            Ok(answer) => {
                let id = answer["_embedded"]["contacts"][0]["id"]
                    .as_u64()
                    .ok_or_else(|| CrmError::Transient("contact created without an id".into()))?;
                self.doubtful.lock().unwrap().remove(&effect.id);
                self.learn(c, &value, id);
                // What an update of the same fields would send (no `PHONE`): unchanged, no call.
                let mut same = fields.clone();
                same.remove("phone");
                let update = self.contact_body(schema, &same, true)?;
                remember(&self.written, id, Value::Object(update).to_string());
                Ok(id)
            }
            Err(e) => {
                if !e.definitely_not_applied() {
                    remember(&self.doubtful, effect.id.clone(), Instant::now());
                }
                Err(e)
            }
        }
    }

    /// `PATCH /api/v4/contacts/{id}` unless this process wrote the same body already.
    async fn write_contact(&self, id: u64, body: Map<String, Value>) -> Result<(), CrmError> {
        let text = Value::Object(body.clone()).to_string();
        let unchanged = self.written.lock().unwrap().get(&id) == Some(&text);
        if body.is_empty() || (unchanged && !self.client.refused()) {
            return Ok(());
        }
        self.patch_contact(id, &Value::Object(body)).await?;
        remember(&self.written, id, text);
        Ok(())
    }

    pub(super) async fn patch_contact(&self, id: u64, body: &Value) -> Result<(), CrmError> {
        match self
            .client
            .call(Method::PATCH, &format!("/api/v4/contacts/{id}"), Some(body))
            .await
        {
            Ok(_) => Ok(()),
            Err(CrmError::Rejected(m)) if m.starts_with("HTTP 404") => {
                // Deleted in Kommo since we learnt it: look it up again on the retry.
                self.forget(id);
                Err(CrmError::Transient(format!("contact {id} is gone: {m}")))
            }
            Err(e) => Err(e),
        }
    }

    /// A search miss for an in-doubt effect proves nothing until the index caught up with the
    /// uncertain attempt (its time unknown when made by another process: counted from now).
    fn trust_miss(&self, effect: &Effect) -> Result<(), CrmError> {
        self.trust_miss_of(&effect.id, effect.in_doubt, "contact")
    }

    /// The lag guard of an uncertain create remembered under `key` (an effect id, or a
    /// conversation id for its lead): with `in_doubt`, a search miss waits out the index lag.
    pub(super) fn trust_miss_of(
        &self,
        key: &str,
        in_doubt: bool,
        what: &str,
    ) -> Result<(), CrmError> {
        if !in_doubt {
            return Ok(());
        }
        let now = Instant::now();
        let trusted_at = {
            let mut doubtful = self.doubtful.lock().unwrap();
            *doubtful.entry(key.to_string()).or_insert(now) + self.settings.search_lag
        };
        if now >= trusted_at {
            self.doubtful.lock().unwrap().remove(key);
            return Ok(());
        }
        tracing::info!(key = %key, "kommo: in-doubt {what} not found yet; searching again once the index caught up");
        Err(CrmError::RateLimited(Some(trusted_at - now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_contact_holding_the_identity_counts() {
        let longer = json!({"id": 1, "custom_fields_values": [{"field_code": "PHONE",
            "values": [{"value": "+52 1 55 1234 56789"}]}]});
        let spaced = json!({"id": 2, "custom_fields_values": [{"field_code": "PHONE",
            "values": [{"value": "+52 55 1234 5678"}]}]});
        let bsuid = json!({"id": 3, "custom_fields_values": [{"field_id": 9,
            "values": [{"value": "MX.abc"}]}]});
        assert!(!holds(&longer, "+525512345678"));
        assert!(holds(&spaced, "+525512345678"));
        assert!(holds(&bsuid, "MX.abc"));
        assert!(!holds(&bsuid, "MX.ab"));
        // Digits alone match only in the PHONE field.
        let other = json!({"custom_fields_values": [{"field_id": 7, "values": [{"value": "525512345678"}]}]});
        assert!(!holds(&other, "+525512345678"));
    }
}
