//! Kommo's side of `wabridge crm check`: the token works, and the contact and lead custom
//! fields the mapping names exist (`GET /api/v4/contacts/custom_fields`,
//! `/api/v4/leads/custom_fields`), with the lead fields of conversations.

use wabridge_core::mapping::Mapping;

use super::fields::Schema;
use super::KommoCrm;
use crate::check::CheckReport;
use crate::conversation_fields::{DETAIL_FIELDS, REQUIRED_FIELDS};
use crate::timeline::{touch_field_names, LEAD_FIELDS};

/// Contact fields of Kommo's own (the name, the `PHONE` system field), not custom fields.
const OWN_FIELDS: [&str; 2] = ["name", "phone"];

impl KommoCrm {
    /// Checks the credentials and the fields `mapping` needs.
    pub async fn check(&self, mapping: &Mapping) -> CheckReport {
        let mut report = CheckReport::default();
        let schema = match Schema::load(&self.client).await {
            Ok(schema) => schema,
            Err(e) => {
                report
                    .missing
                    .push(format!("reading the custom fields: {e}"));
                return report;
            }
        };
        report.ok.push("credentials accepted".into());
        let contact: Vec<&str> = mapping
            .contact
            .iter()
            .chain(&mapping.consent_fields)
            .map(|f| f.to.as_str())
            .filter(|n| !OWN_FIELDS.contains(n))
            .collect();
        let has_contact = |n: &str| schema.contact.id(n).is_some();
        report.fields("contact field", contact, has_contact, true);
        let touch = touch_field_names();
        report.fields(
            "contact field",
            touch.iter().map(String::as_str),
            has_contact,
            false,
        );
        let has_lead = |n: &str| schema.lead.id(n).is_some();
        if let Some(effect) = &mapping.effect_property {
            report.fields("lead field", [effect.as_str()], has_lead, true);
        }
        report.fields("lead field", LEAD_FIELDS, has_lead, false);
        // A conversation's lead: found again by the first, the rest written when they exist.
        report.fields("conversation lead field", REQUIRED_FIELDS, has_lead, true);
        report.fields("conversation lead field", DETAIL_FIELDS, has_lead, false);
        report
    }
}
