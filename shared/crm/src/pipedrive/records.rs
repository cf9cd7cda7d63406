//! Notes (messages and statuses, linked to their conversation's deal), person field updates
//! (consent, attribution), deals (leads) and erasure.

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::attribution::LeadRecord;
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::records::{ActivityRecord, Direction};

use super::api::{encode, Budget};
use super::fields::as_text;
use super::PipedriveCrm;
use crate::conversation_fields::note_line;
use crate::timeline::{status_text, LEAD_FIELDS};

/// The line that ties a note to its effect: found again by an in-doubt retry.
fn marker(effect: &Effect) -> String {
    format!("wabridge: {}", effect.id)
}

/// Note content is HTML (Pipedrive sanitises it): the text escaped, one paragraph per line.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .lines()
        .map(|l| format!("<p>{l}</p>"))
        .collect()
}

impl PipedriveCrm {
    /// A note on the person; in doubt, the person's notes are read first.
    pub(super) async fn note(&self, effect: &Effect, a: &ActivityRecord) -> Result<(), CrmError> {
        let person = self.effect_person(effect).await?;
        let marker = marker(effect);
        if effect.in_doubt {
            // Notes are listed from the database, not the search index: no lag to wait out.
            let path = format!(
                "/v1/notes?person_id={person}&start=0&limit=100&sort={}",
                encode("add_time DESC")
            );
            let notes = self
                .client
                .call(Method::GET, &path, None, Budget::General)
                .await?;
            let landed = notes.as_array().into_iter().flatten().any(|n| {
                n["content"]
                    .as_str()
                    .is_some_and(|c| c.contains(&html(&marker)))
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
                .get("content")
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| a.text.clone())
                .unwrap_or_else(|| format!("WhatsApp {}", a.kind))
        };
        let mut body = json!({"person_id": person});
        let mut text = text;
        if let Some(conversation) = &a.conversation_id {
            // Its deal was written just before (conversations first): the note links to it.
            if let Some(deal) = self.deal_of(conversation).await? {
                body["deal_id"] = json!(deal);
            }
            text = format!("{text}\n{}", note_line(conversation));
        }
        body["content"] = json!(html(&format!("{text}\n{marker}")));
        self.client
            .call(Method::POST, "/v1/notes", Some(&body), Budget::General)
            .await
            .map(drop)
    }

    /// Writes `fields` (names → codes) onto the effect's person; with `optional`, fields the
    /// company has not created are left out instead of waiting for them.
    pub(super) async fn update_person(
        &self,
        effect: &Effect,
        fields: &Map<String, Value>,
        optional: bool,
    ) -> Result<(), CrmError> {
        let person = self.effect_person(effect).await?;
        let schema = self.schema().await?;
        let mut custom = Map::new();
        for (name, value) in fields {
            let code = match schema.person.code(name) {
                Some(code) => code,
                None if optional => continue,
                None => schema.person.required("person", name)?,
            };
            custom.insert(code.to_string(), as_text(value));
        }
        if custom.is_empty() {
            return Ok(());
        }
        self.patch_person(person, &json!({"custom_fields": custom}))
            .await
    }

    /// A deal on the person; in doubt, the person's deals are read first (by the effect field).
    pub(super) async fn deal(&self, effect: &Effect, lead: &LeadRecord) -> Result<(), CrmError> {
        let person = self.effect_person(effect).await?;
        let schema = self.schema().await?;
        let effect_code = match &self.settings.effect_field {
            Some(f) => Some(schema.deal.required("deal", f)?.to_string()),
            None => None,
        };
        if let (true, Some(code)) = (effect.in_doubt, &effect_code) {
            let path = format!(
                "/api/v2/deals?person_id={person}&limit=100&custom_fields={}",
                encode(code)
            );
            let deals = self
                .client
                .call(Method::GET, &path, None, Budget::General)
                .await?;
            let landed = deals
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["custom_fields"][code] == effect.id.as_str());
            if landed {
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
        let mut custom = Map::new();
        for (name, value) in LEAD_FIELDS.iter().zip(values) {
            if let (Some(code), Some(v)) = (schema.deal.code(name), value) {
                custom.insert(code.to_string(), json!(v));
            }
        }
        if let Some(code) = effect_code {
            custom.insert(code, json!(effect.id));
        }
        let campaign = lead
            .utm_campaign
            .as_deref()
            .or(lead.utm_source.as_deref())
            .unwrap_or("direct");
        let body = json!({
            "title": format!("WhatsApp lead: {campaign}"),
            "person_id": person,
            "custom_fields": custom,
        });
        self.client
            .call(Method::POST, "/api/v2/deals", Some(&body), Budget::General)
            .await
            .map(drop)
    }

    /// Deletes every person found under the person's numbers and BSUIDs.
    pub(super) async fn erase(&self, e: &ErasureItem) -> Result<(), CrmError> {
        for value in e.phones.iter().chain(&e.bsuids) {
            // One search per identity: a deleted person may linger in the lagging index.
            if let Some(id) = self.search(value).await? {
                self.erase_conversation_deals(id).await?;
                match self
                    .client
                    .call(
                        Method::DELETE,
                        &format!("/api/v2/persons/{id}"),
                        None,
                        Budget::General,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(CrmError::Rejected(m)) if m.starts_with("HTTP 404") => {}
                    Err(e) => return Err(e),
                }
                self.forget(id);
            }
        }
        Ok(())
    }
}
