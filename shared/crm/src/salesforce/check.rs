//! Salesforce's side of `wabridge crm check`: the client-credentials grant works (a token, then
//! the describe calls), and the fields the mapping names exist on the person object, Task,
//! Opportunity and (Contact mode) Case, the upserts' keys among them flagged External ID.

use wabridge_core::mapping::Mapping;

use super::conversations::{CONVERSATION_FIELD, OPTIONAL_CASE_FIELDS, REVISION_FIELD};
use super::fields::{custom_name, describe, Fields, Schema};
use super::{PersonObject, SalesforceCrm};
use crate::check::CheckReport;
use crate::timeline::{touch_field_names, LEAD_FIELDS};

impl SalesforceCrm {
    /// Checks the credentials and the fields `mapping` needs.
    pub async fn check(&self, mapping: &Mapping) -> CheckReport {
        let mut report = CheckReport::default();
        let schema = match Schema::load(&self.client, self.settings.object).await {
            Ok(schema) => schema,
            Err(e) => {
                report.missing.push(format!("describing the objects: {e}"));
                return report;
            }
        };
        report.ok.push("credentials accepted".into());
        let person = format!("{} field", self.settings.object.name());
        let wanted: Vec<&str> = mapping
            .contact
            .iter()
            .chain(&mapping.consent_fields)
            .map(|f| f.to.as_str())
            .collect();
        report.fields(&person, wanted, |n| schema.person.has(n), true);
        let touch: Vec<String> = touch_field_names().iter().map(|n| custom_name(n)).collect();
        report.fields(
            &person,
            touch.iter().map(String::as_str),
            |n| schema.person.has(n),
            false,
        );
        let effect = self.settings.effect_field.as_str();
        report.fields("Task field", [effect], |n| schema.task.has(n), true);
        if self.settings.object == PersonObject::Contact {
            report.fields(
                "Opportunity field",
                [effect],
                |n| schema.opportunity.has(n),
                true,
            );
            let lead: Vec<String> = LEAD_FIELDS.iter().map(|n| custom_name(n)).collect();
            report.fields(
                "Opportunity field",
                lead.iter().map(String::as_str),
                |n| schema.opportunity.has(n),
                false,
            );
        }
        report.fields(
            "Task field",
            [CONVERSATION_FIELD],
            |n| schema.task.has(n),
            false,
        );
        let cases = match self.settings.object {
            PersonObject::Contact => match describe(&self.client, "Case").await {
                Ok(fields) => fields,
                Err(e) => {
                    report.missing.push(format!("describing Case: {e}"));
                    Fields::default()
                }
            },
            PersonObject::Lead => Fields::default(),
        };
        if !cases.object.is_empty() {
            report.fields(
                "Case field",
                [CONVERSATION_FIELD, REVISION_FIELD],
                |n| cases.has(n),
                true,
            );
            report.fields("Case field", OPTIONAL_CASE_FIELDS, |n| cases.has(n), false);
        }
        // Upserts name an External ID field; Salesforce refuses any other.
        let conversation = CONVERSATION_FIELD.to_string();
        let keys = [
            (&schema.person, Some(&self.settings.id_field)),
            (&schema.person, self.settings.bsuid_field.as_ref()),
            (&schema.task, Some(&self.settings.effect_field)),
            (&schema.opportunity, Some(&self.settings.effect_field)),
            (&cases, Some(&conversation)),
        ];
        for (fields, name) in keys {
            if fields.object.is_empty() {
                continue;
            }
            if let Some(name) = name.filter(|n| fields.has(n) && !fields.external_id(n)) {
                report.missing.push(format!(
                    "{} field `{name}` flagged External ID (and Unique)",
                    fields.object
                ));
            }
        }
        report
    }
}
