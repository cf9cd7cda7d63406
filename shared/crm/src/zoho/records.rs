//! Notes (messages and statuses) and deals (leads), each written in a batch with the
//! concurrent events' (`writes.rs`).

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::attribution::LeadRecord;
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::{ActivityRecord, Direction};

use super::api::Budget;
use super::conversations::NOTE_LINE;
use super::ZohoCrm;
use crate::timeline::{status_text, LEAD_FIELDS};

/// The line that ties a note to its effect: found again by an in-doubt retry.
fn marker(effect: &Effect) -> String {
    format!("wabridge: {}", effect.id)
}

/// The note's title: what Zoho shows in the contact's Notes list.
const NOTE_TITLE: &str = "WhatsApp";
/// A new deal's stage: the first stage of Zoho's standard pipeline.
pub const DEAL_STAGE: &str = "Qualification";
/// Notes of a contact read by an in-doubt retry (the newest; Zoho's largest page).
const NOTES_PAGE: usize = 200;

impl ZohoCrm {
    /// A note on the contact; in doubt, the contact's newest notes are read first.
    pub(super) async fn note(&self, effect: &Effect, a: &ActivityRecord) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let marker = marker(effect);
        if effect.in_doubt {
            // A related list, read from the database, not the search index: no lag to wait out.
            let path = format!(
                "/Contacts/{contact}/Notes?fields=Note_Content&per_page={NOTES_PAGE}&sort_by=Created_Time&sort_order=desc"
            );
            let notes = self
                .client
                .call(Method::GET, &path, None, Budget::General)
                .await?;
            let landed = notes["data"].as_array().into_iter().flatten().any(|n| {
                n["Note_Content"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(&marker))
            });
            if landed {
                return Ok(());
            }
        }
        let text = if a.direction == Some(Direction::Outbound) {
            status_text(a)
        } else {
            effect
                .fields
                .get("Note_Content")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| a.text.clone())
                .unwrap_or_else(|| format!("WhatsApp {}", a.kind))
        };
        // A Note has one parent, the contact: it names its conversation (whose Case is on the
        // same contact) in a line of its own.
        let conversation = a
            .conversation_id
            .as_ref()
            .map(|c| format!("{NOTE_LINE}{c}\n"))
            .unwrap_or_default();
        let mut note = Map::new();
        note.insert("Note_Title".into(), json!(NOTE_TITLE));
        note.insert(
            "Note_Content".into(),
            json!(format!("{text}\n\n{conversation}{marker}")),
        );
        note.insert(
            "Parent_Id".into(),
            json!({"module": {"api_name": "Contacts"}, "id": contact}),
        );
        self.insert("Notes", note).await.map(drop)
    }

    /// A deal on the contact, upserted on the unique effect field: a redelivery, in doubt or
    /// not, updates the same deal.
    pub(super) async fn deal(&self, effect: &Effect, lead: &LeadRecord) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let schema = self.schema().await?;
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
            if let (true, Some(v)) = (schema.deals.has(name), value) {
                record.insert(name.to_string(), json!(v));
            }
        }
        let campaign = lead
            .utm_campaign
            .as_deref()
            .or(lead.utm_source.as_deref())
            .unwrap_or("direct");
        record.insert(
            "Deal_Name".into(),
            json!(format!("WhatsApp lead: {campaign}")),
        );
        record.insert("Stage".into(), json!(DEAL_STAGE));
        record.insert("Contact_Name".into(), json!({"id": contact}));
        match &self.settings.effect_field {
            Some(field) => {
                schema.deals.required("Deals", field)?;
                record.insert(field.clone(), json!(effect.id));
                self.upsert("Deals", record, std::slice::from_ref(field))
                    .await
                    .map(drop)
            }
            None => {
                // No unique field to settle a redelivery on: a plain create.
                self.insert("Deals", record).await.map(drop)
            }
        }
    }
}
