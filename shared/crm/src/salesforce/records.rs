//! Tasks (messages and statuses) and Opportunities (leads), each upserted on the effect id
//! External ID field: a retry in doubt, or a redelivery, updates the record the first attempt
//! made, so there is nothing to search for and nothing written twice.

use crate::timeline::clip;
use serde_json::{json, Map, Value};
use wabridge_core::attribution::LeadRecord;
use wabridge_core::clock;
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::{ActivityRecord, Direction};

use super::conversations::CONVERSATION_FIELD;
use super::fields::custom_name;
use super::SalesforceCrm;
use crate::timeline::{status_text, LEAD_FIELDS};

/// A Task's status: the message happened, there is nothing to do.
const TASK_STATUS: &str = "Completed";
/// A new Opportunity's stage: the first stage of Salesforce's default sales process.
pub const OPPORTUNITY_STAGE: &str = "Prospecting";
/// A new Opportunity's close date, this long after the lead (Salesforce requires one).
const CLOSE_AFTER_DAYS: i64 = 30;
/// Salesforce's longest Task `Description` (32 KB) and `Subject`.
const DESCRIPTION_MAX: usize = 32_000;
const SUBJECT_MAX: usize = 255;
const DAY_MS: i64 = 86_400_000;
/// Record errors of a reference to a record that no longer exists.
const PERSON_GONE: &[&str] = &["ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"];

impl SalesforceCrm {
    /// A completed Task on the contact, upserted on the effect id.
    pub(super) async fn task(&self, effect: &Effect, a: &ActivityRecord) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let schema = self.schema().await?;
        schema.task.required(&self.settings.effect_field)?;
        let (subject, text) = if a.direction == Some(Direction::Outbound) {
            let text = status_text(a);
            (text.clone(), text)
        } else {
            let text = effect
                .fields
                .get("Description")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| a.text.clone())
                .unwrap_or_else(|| format!("WhatsApp {}", a.kind));
            (format!("WhatsApp: {text}"), text)
        };
        let mut record = Map::new();
        record.insert("Subject".into(), json!(clip(&subject, SUBJECT_MAX)));
        record.insert("Description".into(), json!(clip(&text, DESCRIPTION_MAX)));
        record.insert("Status".into(), json!(TASK_STATUS));
        record.insert("WhoId".into(), json!(contact));
        if let Some(at) = a.at {
            record.insert("ActivityDate".into(), json!(clock::utc_date(at)));
        }
        record.insert(self.settings.effect_field.clone(), json!(effect.id));
        let mut case = None;
        if let Some(conversation) = &a.conversation_id {
            // Shown on the Task; the link itself is `WhatId`, to the conversation's Case.
            if schema.task.has(CONVERSATION_FIELD) {
                record.insert(CONVERSATION_FIELD.into(), json!(conversation));
            }
            case = self.case_of(conversation).await?;
            if let Some(case) = &case {
                record.insert("WhatId".into(), json!(case));
            }
        }
        let result = self
            .batcher("Task", &self.settings.effect_field)
            .submit(record)
            .await;
        if let (Some(case), Err(CrmError::Rejected(why))) = (&case, &result) {
            if PERSON_GONE.iter().any(|code| why.contains(code)) {
                // Either the contact or the Case is gone: both are read again.
                self.cases.forget(case);
            }
        }
        self.unless_person_gone(&contact, result)
    }

    /// An Opportunity on the contact, upserted on the effect id.
    pub(super) async fn opportunity(
        &self,
        effect: &Effect,
        lead: &LeadRecord,
    ) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let schema = self.schema().await?;
        let fields = &schema.opportunity;
        fields.required(&self.settings.effect_field)?;
        let values = [
            &lead.utm_source,
            &lead.utm_medium,
            &lead.utm_campaign,
            &lead.utm_content,
            &lead.utm_term,
            &lead.ctwa_clid,
            &Some(lead.record_key()),
            &lead.ref_code,
        ];
        let mut record = Map::new();
        for (name, value) in LEAD_FIELDS.iter().zip(values) {
            let name = custom_name(name);
            if let (true, Some(v)) = (fields.has(&name), value) {
                record.insert(name, json!(v));
            }
        }
        let campaign = lead
            .utm_campaign
            .as_deref()
            .or(lead.utm_source.as_deref())
            .unwrap_or("direct");
        record.insert("Name".into(), json!(format!("WhatsApp lead: {campaign}")));
        record.insert("StageName".into(), json!(OPPORTUNITY_STAGE));
        record.insert(
            "CloseDate".into(),
            json!(clock::utc_date(lead.created_at + CLOSE_AFTER_DAYS * DAY_MS)),
        );
        // The contact the opportunity is for (API 46.0+; its primary contact role).
        record.insert("ContactId".into(), json!(contact));
        record.insert(self.settings.effect_field.clone(), json!(effect.id));
        let result = self
            .batcher("Opportunity", &self.settings.effect_field)
            .submit(record)
            .await;
        self.unless_person_gone(&contact, result)
    }

    /// A record refused because the person it points at is gone (deleted or merged in
    /// Salesforce since this process cached its id): the id is forgotten and the event retried,
    /// which upserts the person again, instead of dead-lettering a record that was fine.
    pub(super) fn unless_person_gone<T>(
        &self,
        person: &str,
        result: Result<T, CrmError>,
    ) -> Result<(), CrmError> {
        match result {
            Err(CrmError::Rejected(why)) if PERSON_GONE.iter().any(|code| why.contains(code)) => {
                self.forget_person(person);
                Err(CrmError::Transient(format!(
                    "the person's record is gone in Salesforce; it is upserted again ({})",
                    why.chars().take(120).collect::<String>()
                )))
            }
            other => other.map(drop),
        }
    }
}
