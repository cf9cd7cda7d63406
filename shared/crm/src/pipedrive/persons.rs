//! One Person per person. Pipedrive cannot upsert and its search index lags writes, so:
//! - the person ids this process learnt come first, by identity value and by our contact id
//!   (the identity store's one contact per person: a message with the BSUID alone finds the
//!   person its phone made);
//! - then search: the identity in the person's phone and custom fields, exact match (the BSUID
//!   field is a custom field, so a BSUID alone finds the phone's person in a new process too);
//! - one find-or-create at a time per person in a process (two deliveries of a new person
//!   would both miss the search and create it twice);
//! - a create whose answer was lost (timeout, 5xx, a crash) leaves the next attempt in doubt:
//!   a search miss then is trusted only [`super::DEFAULT_SEARCH_LAG`] after that attempt.

use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::{ContactRecord, Record};

use super::api::{encode, Budget};
use super::fields::{as_text, Schema};
use super::{remember, PipedriveCrm};

/// A person's name when the mapping gives none (Pipedrive requires one).
const NO_NAME: &str = "WhatsApp contact";

impl PipedriveCrm {
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

    /// Person id of `c` (identity `value`) known here, else found by search.
    pub(super) async fn find_person(
        &self,
        c: &ContactRecord,
        value: &str,
    ) -> Result<Option<u64>, CrmError> {
        let known = self.contacts.lock().unwrap().get(&c.id).copied();
        if let Some(id) = known.or_else(|| self.persons.lock().unwrap().get(value).copied()) {
            return Ok(Some(id));
        }
        let found = self.search(value).await?;
        if let Some(id) = found {
            self.learn(c, value, id);
        }
        Ok(found)
    }

    /// `GET /api/v2/persons/search`: the first person whose phone or a custom field is exactly
    /// `term`.
    pub(super) async fn search(&self, term: &str) -> Result<Option<u64>, CrmError> {
        let path = format!(
            "/api/v2/persons/search?term={}&fields=phone,custom_fields&exact_match=true&limit=10",
            encode(term)
        );
        let data = self
            .client
            .call(Method::GET, &path, None, Budget::Search)
            .await?;
        Ok(data["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|i| i["item"]["id"].as_u64()))
    }

    fn learn(&self, c: &ContactRecord, value: &str, id: u64) {
        remember(&self.persons, value.to_string(), id);
        remember(&self.contacts, c.id.clone(), id);
    }

    /// Forgets a person Pipedrive no longer has.
    pub(super) fn forget(&self, id: u64) {
        self.persons.lock().unwrap().retain(|_, v| *v != id);
        self.contacts.lock().unwrap().retain(|_, v| *v != id);
        self.written.lock().unwrap().remove(&id);
    }

    /// A person body (`name`, `phones`, `custom_fields`) from mapped fields; without the
    /// identity field when `identity` is false.
    fn person_body(
        &self,
        schema: &Schema,
        fields: &Map<String, Value>,
        identity: bool,
    ) -> Result<Map<String, Value>, CrmError> {
        let mut body = Map::new();
        let mut custom = Map::new();
        for (name, value) in fields {
            match name.as_str() {
                "name" => {
                    body.insert("name".into(), as_text(value));
                }
                "phone" => {
                    body.insert(
                        "phones".into(),
                        json!([{"value": as_text(value), "primary": true, "label": "mobile"}]),
                    );
                }
                _ if !identity && *name == self.settings.id_field => {}
                _ => {
                    let code = schema.person.required("person", name)?;
                    custom.insert(code.to_string(), as_text(value));
                }
            }
        }
        if !custom.is_empty() {
            body.insert("custom_fields".into(), Value::Object(custom));
        }
        Ok(body)
    }

    pub(super) async fn upsert_contact(&self, effect: &Effect) -> Result<(), CrmError> {
        let Record::Contact(c) = &effect.record else {
            return Err(CrmError::Rejected("not a contact record".into()));
        };
        self.person_of(c, &effect.fields, effect, true)
            .await
            .map(drop)
    }

    /// The person of the effect's contact (found or created, not updated).
    pub(super) async fn effect_person(&self, effect: &Effect) -> Result<u64, CrmError> {
        match &effect.contact {
            Some((Record::Contact(c), fields)) => self.person_of(c, fields, effect, false).await,
            _ => Err(CrmError::Rejected(format!(
                "{} record without its contact",
                effect.record.kind()
            ))),
        }
    }

    /// The person of contact record `c`: found (and, with `update`, its changed fields
    /// written) or created.
    async fn person_of(
        &self,
        c: &ContactRecord,
        fields: &Map<String, Value>,
        effect: &Effect,
        update: bool,
    ) -> Result<u64, CrmError> {
        let value = self.identity(fields)?;
        let _one_at_a_time = self.person_locks.lock(&c.id).await;
        let schema = self.schema().await?;
        if let Some(id) = self.find_person(c, &value).await? {
            if update {
                // A record without a phone must not overwrite the identity of the phone's person.
                let keep = c.phone_e164.is_some() || c.bsuid.is_none();
                let body = self.person_body(schema, fields, keep)?;
                self.write_person(id, body).await?;
            }
            return Ok(id);
        }
        self.trust_miss(effect)?;
        let mut body = self.person_body(schema, fields, true)?;
        body.entry("name").or_insert_with(|| NO_NAME.into());
        let created = self
            .client
            .call(
                Method::POST,
                "/api/v2/persons",
                Some(&Value::Object(body.clone())),
                Budget::General,
            )
            .await;
        match created {
            Ok(data) => {
                let id = data["id"]
                    .as_u64()
                    .ok_or_else(|| CrmError::Transient("person created without an id".into()))?;
                self.doubtful.lock().unwrap().remove(&effect.id);
                self.learn(c, &value, id);
                remember(&self.written, id, Value::Object(body).to_string());
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

    /// `PATCH /api/v2/persons/{id}` unless this process wrote the same body already.
    async fn write_person(&self, id: u64, body: Map<String, Value>) -> Result<(), CrmError> {
        let text = Value::Object(body.clone()).to_string();
        let unchanged = self.written.lock().unwrap().get(&id) == Some(&text);
        if body.is_empty() || (unchanged && !self.client.refused()) {
            return Ok(());
        }
        self.patch_person(id, &Value::Object(body)).await?;
        remember(&self.written, id, text);
        Ok(())
    }

    pub(super) async fn patch_person(&self, id: u64, body: &Value) -> Result<(), CrmError> {
        match self
            .client
            .call(
                Method::PATCH,
                &format!("/api/v2/persons/{id}"),
                Some(body),
                Budget::General,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(CrmError::Rejected(m))
                if m.starts_with("HTTP 404") || m.starts_with("HTTP 410") =>
            {
                // Deleted in Pipedrive since we learnt it: look it up again on the retry.
                self.forget(id);
                Err(CrmError::Transient(format!("person {id} is gone: {m}")))
            }
            Err(e) => Err(e),
        }
    }

    /// A search miss for an in-doubt effect proves nothing until the index caught up with the
    /// uncertain attempt (its time unknown when made by another process: counted from now).
    fn trust_miss(&self, effect: &Effect) -> Result<(), CrmError> {
        self.trust_miss_of(&effect.id, effect.in_doubt, "person")
    }

    /// The lag guard of an uncertain create remembered under `key` (an effect id, or a
    /// conversation id for its deal): with `in_doubt`, a search miss waits out the index lag.
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
        tracing::info!(key = %key, "pipedrive: in-doubt {what} not found yet; searching again once the index caught up");
        Err(CrmError::RateLimited(Some(trusted_at - now)))
    }
}
