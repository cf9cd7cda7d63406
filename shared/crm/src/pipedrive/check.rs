//! Pipedrive's side of `wabridge crm check`: the token works, and the person and deal fields
//! the mapping names exist (`GET /api/v2/personFields`, `/api/v2/dealFields`), and the deal
//! fields of conversations.

use wabridge_core::mapping::Mapping;

use super::fields::Schema;
use super::PipedriveCrm;
use crate::check::CheckReport;
use crate::conversation_fields::{DETAIL_FIELDS, REQUIRED_FIELDS};
use crate::timeline::{touch_field_names, LEAD_FIELDS};

/// Person fields of Pipedrive's own, not custom fields.
const OWN_FIELDS: [&str; 2] = ["name", "phone"];

impl PipedriveCrm {
    /// Checks the credentials and the fields `mapping` needs.
    pub async fn check(&self, mapping: &Mapping) -> CheckReport {
        let mut report = CheckReport::default();
        let schema = match Schema::load(&self.client).await {
            Ok(schema) => schema,
            Err(e) => {
                report
                    .missing
                    .push(format!("reading the field schema: {e}"));
                return report;
            }
        };
        report.ok.push("credentials accepted".into());
        let person: Vec<&str> = mapping
            .contact
            .iter()
            .chain(&mapping.consent_fields)
            .map(|f| f.to.as_str())
            .filter(|n| !OWN_FIELDS.contains(n))
            .collect();
        report.fields(
            "person field",
            person,
            |n| schema.person.code(n).is_some(),
            true,
        );
        let touch = touch_field_names();
        report.fields(
            "person field",
            touch.iter().map(String::as_str),
            |n| schema.person.code(n).is_some(),
            false,
        );
        if let Some(effect) = &mapping.effect_property {
            report.fields(
                "deal field",
                [effect.as_str()],
                |n| schema.deal.code(n).is_some(),
                true,
            );
        }
        report.fields(
            "deal field",
            LEAD_FIELDS,
            |n| schema.deal.code(n).is_some(),
            false,
        );
        // A conversation's deal: found again by the first, the rest written when they exist.
        report.fields(
            "conversation deal field",
            REQUIRED_FIELDS,
            |n| schema.deal.code(n).is_some(),
            true,
        );
        report.fields(
            "conversation deal field",
            DETAIL_FIELDS,
            |n| schema.deal.code(n).is_some(),
            false,
        );
        report
    }
}
