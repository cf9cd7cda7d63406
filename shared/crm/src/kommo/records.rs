//! Notes (messages and statuses, batched across events), contact field updates (consent,
//! attribution) and leads.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::attribution::LeadRecord;
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::{ActivityRecord, Direction};

use super::api::Client;
use super::fields::field_value;
use super::KommoCrm;
use crate::batch::{BatchAnswer, BatchOp};
use crate::conversation_fields::note_line;
use crate::timeline::{status_text, LEAD_FIELDS};

/// The line that ties a note to its effect: found again by an in-doubt retry.
fn marker(effect: &Effect) -> String {
    format!("wabridge: {}", effect.id)
}

/// One `POST /api/v4/contacts/notes` for the notes of concurrent events: `(contact id, text)`.
pub(crate) struct NoteOp {
    pub client: Arc<Client>,
}

#[async_trait]
impl BatchOp for NoteOp {
    type Input = (u64, String);
    type Output = ();

    /// The batch is taken when the pacer has a turn: it holds every note that arrived while
    /// the account's 7 requests a second held the call back.
    async fn gate(&self) {
        self.client.ready().await
    }

    async fn run(&self, inputs: &[(u64, String)]) -> BatchAnswer<()> {
        let body: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, (contact, text))| {
                json!({"entity_id": contact, "note_type": "common", "params": {"text": text},
                       "request_id": i.to_string()})
            })
            .collect();
        match self
            .client
            .call(
                Method::POST,
                "/api/v4/contacts/notes",
                Some(&Value::Array(body)),
            )
            .await
        {
            Ok(answer) => {
                let made = answer["_embedded"]["notes"].as_array().map_or(0, Vec::len);
                if made == inputs.len() {
                    BatchAnswer::Each(inputs.iter().map(|_| Ok(())).collect())
                } else {
                    // Unexpected: which ones landed is unknown, so all stay in doubt.
                    BatchAnswer::Whole(CrmError::Transient(format!(
                        "Kommo made {made} of {} notes",
                        inputs.len()
                    )))
                }
            }
            Err(e) => BatchAnswer::Whole(e),
        }
    }
}

impl KommoCrm {
    /// A note on the contact; in doubt, the contact's notes are read first.
    pub(super) async fn note(&self, effect: &Effect, a: &ActivityRecord) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let marker = marker(effect);
        if effect.in_doubt && self.note_landed(contact, &marker).await? {
            return Ok(());
        }
        let text = if a.direction == Some(Direction::Outbound) {
            status_text(a)
        } else {
            effect
                .fields
                .get("content")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| a.text.clone())
                .unwrap_or_else(|| format!("WhatsApp {}", a.kind))
        };
        // A note has one parent: it stays on the contact, naming its conversation (the
        // conversation's lead is found by that id; docs/crm/kommo.md#conversations says why).
        let text = match &a.conversation_id {
            Some(conversation) => format!("{text}\n{}", note_line(conversation)),
            None => text,
        };
        self.notes
            .submit((contact, format!("{text}\n{marker}")))
            .await
    }

    /// Whether the contact's newest notes hold `marker`. Notes are listed from the database,
    /// not the search index: no lag to wait out.
    async fn note_landed(&self, contact: u64, marker: &str) -> Result<bool, CrmError> {
        let path = format!(
            "/api/v4/contacts/{contact}/notes?filter%5Bnote_type%5D=common&order%5Bid%5D=desc&limit=250"
        );
        let answer = self.client.call(Method::GET, &path, None).await?;
        Ok(answer["_embedded"]["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| {
                n["params"]["text"]
                    .as_str()
                    .is_some_and(|t| t.lines().any(|l| l == marker))
            }))
    }

    /// Writes `fields` (names → ids) onto the effect's contact; with `optional`, fields the
    /// account has not created are left out instead of waiting for them.
    pub(super) async fn update_contact(
        &self,
        effect: &Effect,
        fields: &Map<String, Value>,
        optional: bool,
    ) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let schema = self.schema().await?;
        let mut custom = Vec::new();
        for (name, value) in fields {
            let id = match schema.contact.id(name) {
                Some(id) => id,
                None if optional => continue,
                None => schema.contact.required("contact", name)?,
            };
            if !value.is_null() {
                custom.push(field_value(id, value));
            }
        }
        if custom.is_empty() {
            return Ok(());
        }
        self.patch_contact(contact, &json!({"custom_fields_values": custom}))
            .await
    }

    /// A lead linked to the contact; in doubt, the contact's leads are read first (by the
    /// effect field).
    pub(super) async fn lead(&self, effect: &Effect, lead: &LeadRecord) -> Result<(), CrmError> {
        let contact = self.effect_contact(effect).await?;
        let schema = self.schema().await?;
        let effect_id = match &self.settings.effect_field {
            Some(f) => Some(schema.lead.required("lead", f)?),
            None => None,
        };
        if let (true, Some(field)) = (effect.in_doubt, effect_id) {
            if self.lead_landed(contact, field, &effect.id).await? {
                return Ok(());
            }
        }
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
        let mut custom = Vec::new();
        for (name, value) in LEAD_FIELDS.iter().zip(values) {
            if let (Some(id), Some(v)) = (schema.lead.id(name), value) {
                custom.push(field_value(id, &json!(v)));
            }
        }
        if let Some(id) = effect_id {
            custom.push(field_value(id, &json!(effect.id)));
        }
        let campaign = lead
            .utm_campaign
            .as_deref()
            .or(lead.utm_source.as_deref())
            .unwrap_or("direct");
        let body = json!([{
            "name": format!("WhatsApp lead: {campaign}"),
            "custom_fields_values": custom,
            "_embedded": {"contacts": [{"id": contact}], "tags": [{"name": "WhatsApp"}]},
        }]);
        self.client
            .call(Method::POST, "/api/v4/leads", Some(&body))
            .await
            .map(drop)
    }

    /// Whether a lead of the contact holds `effect` in lead field `field`: the contact's linked
    /// leads (`?with=leads`), then those leads with their fields.
    async fn lead_landed(&self, contact: u64, field: u64, effect: &str) -> Result<bool, CrmError> {
        let linked = self
            .client
            .call(
                Method::GET,
                &format!("/api/v4/contacts/{contact}?with=leads"),
                None,
            )
            .await?;
        let ids: Vec<u64> = linked["_embedded"]["leads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["id"].as_u64())
            .collect();
        if ids.is_empty() {
            return Ok(false);
        }
        // The newest leads last: a person has few, and the in-doubt one is recent.
        let query: Vec<String> = ids
            .iter()
            .rev()
            .take(250)
            .map(|id| format!("filter%5Bid%5D%5B%5D={id}"))
            .collect();
        let leads = self
            .client
            .call(
                Method::GET,
                &format!("/api/v4/leads?limit=250&{}", query.join("&")),
                None,
            )
            .await?;
        Ok(leads["_embedded"]["leads"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| {
                l["custom_fields_values"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|f| {
                f["field_id"] == field
                    && f["values"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|v| v["value"] == effect))
            }))
    }
}
