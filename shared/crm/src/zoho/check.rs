//! Zoho's side of `wabridge crm check`: the OAuth client and refresh token work (a refresh at
//! the accounts server, then the fields metadata), and the Contacts, Deals and Cases fields the
//! adapter writes exist, the upserts' keys among them set to "Do not allow duplicate values".

use wabridge_core::mapping::Mapping;

use super::conversations::{CONVERSATION_FIELD, OPTIONAL_CASE_FIELDS, REVISION_FIELD};
use super::fields::{module_fields, Fields, Schema};
use super::ZohoCrm;
use crate::check::CheckReport;
use crate::timeline::{touch_field_names, LEAD_FIELDS};

impl ZohoCrm {
    /// Checks the credentials and the fields `mapping` needs.
    pub async fn check(&self, mapping: &Mapping) -> CheckReport {
        let mut report = CheckReport::default();
        let schema = match Schema::load(&self.client).await {
            Ok(schema) => schema,
            Err(e) => {
                report
                    .missing
                    .push(format!("reading the fields metadata: {e}"));
                return report;
            }
        };
        report.ok.push("credentials accepted".into());
        let contact: Vec<&str> = mapping
            .contact
            .iter()
            .chain(&mapping.consent_fields)
            .map(|f| f.to.as_str())
            .collect();
        report.fields("Contacts field", contact, |n| schema.contacts.has(n), true);
        let touch = touch_field_names();
        report.fields(
            "Contacts field",
            touch.iter().map(String::as_str),
            |n| schema.contacts.has(n),
            false,
        );
        if let Some(effect) = &mapping.effect_property {
            report.fields(
                "Deals field",
                [effect.as_str()],
                |n| schema.deals.has(n),
                true,
            );
        }
        report.fields("Deals field", LEAD_FIELDS, |n| schema.deals.has(n), false);
        let cases = match module_fields(&self.client, "Cases").await {
            Ok(fields) => fields,
            Err(e) => {
                report
                    .missing
                    .push(format!("reading the Cases fields: {e}"));
                Fields::default()
            }
        };
        report.fields(
            "Cases field",
            [CONVERSATION_FIELD, REVISION_FIELD],
            |n| cases.has(n),
            true,
        );
        report.fields("Cases field", OPTIONAL_CASE_FIELDS, |n| cases.has(n), false);
        // The upsert's duplicate-check fields must be unique in Zoho, or it refuses them.
        let conversation = CONVERSATION_FIELD.to_string();
        let keys = [
            ("Contacts", &schema.contacts, Some(&self.settings.id_field)),
            (
                "Contacts",
                &schema.contacts,
                self.settings.bsuid_field.as_ref(),
            ),
            ("Deals", &schema.deals, self.settings.effect_field.as_ref()),
            ("Cases", &cases, Some(&conversation)),
        ];
        for (module, fields, name) in keys {
            if let Some(name) = name.filter(|n| fields.has(n) && !fields.unique(n)) {
                report.missing.push(format!(
                    "{module} field `{name}` set to \"Do not allow duplicate values\""
                ));
            }
        }
        report
    }
}
