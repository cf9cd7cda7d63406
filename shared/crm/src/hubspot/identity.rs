//! One HubSpot contact per person when a message carries the BSUID alone.
//!
//! A person who wrote with phone and BSUID is kept under the phone (the id property). When a
//! later message carries the BSUID alone (the user hid the number), its contact record has no
//! phone, and upserting by its id-property value (the BSUID) would make a second contact. The
//! adapter looks for the person's contact first: by our contact id in this process, else by the
//! BSUID property (the mapping's `from = "bsuid"` field) through search. Search lags behind
//! writes, so a miss falls back to the BSUID (a contact of its own, as without the property).

use serde_json::{Map, Value};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::Record;

use super::HubSpotCrm;

/// Persons remembered (our contact id → id-property value); the cache restarts when full.
const PERSONS_MAX: usize = 100_000;

impl HubSpotCrm {
    /// Property holding the BSUID, searched when a message carries the BSUID alone.
    pub fn with_bsuid_property(mut self, property: Option<&str>) -> Self {
        self.bsuid_property = property.map(String::from);
        self
    }

    /// The id-property value the contact of `record` is kept under.
    pub(super) async fn person_value(
        &self,
        record: &Record,
        fields: &Map<String, Value>,
    ) -> Result<String, CrmError> {
        let value = self.id_value(fields)?;
        let Record::Contact(c) = record else {
            return Ok(value);
        };
        if c.phone_e164.is_some() {
            self.remember_person(&c.id, &value);
            return Ok(value);
        }
        let Some(bsuid) = &c.bsuid else {
            return Ok(value);
        };
        if let Some(known) = self.persons.lock().unwrap().get(&c.id) {
            return Ok(known.clone());
        }
        let Some(property) = &self.bsuid_property else {
            return Ok(value);
        };
        match self
            .client
            .find_property("contacts", property, bsuid, &self.id_property)
            .await?
        {
            Some(found) => {
                self.remember_person(&c.id, &found);
                Ok(found)
            }
            None => Ok(value),
        }
    }

    /// The id-property value of the effect's contact.
    pub(super) async fn effect_contact_id(&self, effect: &Effect) -> Result<String, CrmError> {
        let Some((record, fields)) = &effect.contact else {
            return Err(CrmError::Rejected(format!(
                "{} record without its contact",
                effect.record.kind()
            )));
        };
        self.person_value(record, fields).await
    }

    fn remember_person(&self, contact: &str, value: &str) {
        let mut persons = self.persons.lock().unwrap();
        if persons.len() >= PERSONS_MAX {
            persons.clear();
        }
        persons.insert(contact.to_string(), value.to_string());
    }
}
