//! Conversations as Kommo Leads: one lead per conversation, linked to the contact. Kommo's own
//! conversation object ("talks") exists only for chats arriving through a Chats API channel
//! Kommo registers for an integration; without one, a lead is where Kommo keeps a piece of work
//! with a person: a responsible user, a pipeline status, tags and custom fields.
//!
//! Exactly once without an upsert: the lead's `wabridge_conversation_id` field holds the
//! conversation id. The lead ids this process wrote or found come first; then
//! `GET /api/v4/leads?query=` (full-text and lagging: only a lead whose field holds exactly the
//! id counts; 204 when nothing). A create whose answer was lost makes every later write of that
//! conversation in this process, and the in-doubt retry in any process, trust a miss only
//! [`super::DEFAULT_SEARCH_LAG`] after it (the contacts' lag guard). One find-or-create at a time
//! per conversation in a process. Every call is paced like the others (7 a second).
//!
//! What the lead shows: the name (at create), the contact (`_embedded.contacts` at create; a
//! lead first written without one, by an outcome set through the API, is linked by the next
//! message's write), the responsible user (`[conversations.owners]`, when the agent changes),
//! the status of a mapped outcome (`[conversations.outcome_stages]`: `won` = 142, `lost` = 143,
//! or a status id), a conversion's value as the price, the conversation's tags (`tags_to_add`,
//! with `WhatsApp`: adding never removes the tags people or other integrations set; the
//! `wabridge_tags` field holds the exact set), and the `wabridge_*` fields
//! ([`crate::conversation_fields`]). A close without a mapped outcome leaves the status alone.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Value};
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;

use super::api::encode;
use super::fields::{field_value, Schema};
use super::{remember, KommoCrm};
use crate::conversation_fields::{
    conversation_fields, numeric_owners, title, CONVERSATION_FIELD, REVISION_FIELD,
};
use crate::ConfigError;

/// Kommo's system statuses of every pipeline: closed won and closed lost.
pub const WON_STATUS: u64 = 142;
pub const LOST_STATUS: u64 = 143;

/// The mapping's `[conversations]`, checked for Kommo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeadSettings {
    /// Agent → Kommo user id.
    pub owners: BTreeMap<String, u64>,
    /// Outcome → status id.
    pub statuses: BTreeMap<String, u64>,
}

impl LeadSettings {
    pub fn from_mapping(c: &ConversationSettings) -> Result<LeadSettings, ConfigError> {
        let mut statuses = BTreeMap::new();
        for (outcome, value) in &c.outcome_stages {
            let status = match value.trim() {
                "won" => WON_STATUS,
                "lost" => LOST_STATUS,
                other => other.parse().map_err(|_| ConfigError::Invalid {
                    name: "[conversations.outcome_stages]",
                    reason: format!(
                        "`{outcome}` = `{value}`: Kommo takes `won`, `lost` or a status id (a number)"
                    ),
                })?,
            };
            statuses.insert(outcome.clone(), status);
        }
        Ok(LeadSettings {
            owners: numeric_owners(c, "Kommo")?,
            statuses,
        })
    }
}

/// A conversation's lead as this process knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownLead {
    pub id: u64,
    /// The revision this process wrote (0: found, not written).
    pub revision: u64,
    /// The agent whose responsible user this process wrote.
    pub agent: Option<String>,
    /// The contacts linked to it.
    pub contacts: Vec<u64>,
}

impl KommoCrm {
    /// Writes the conversation's lead: found (and updated) or created.
    pub(super) async fn conversation_lead(
        &self,
        effect: &Effect,
        r: &ConversationRecord,
    ) -> Result<(), CrmError> {
        let schema = self.schema().await?;
        let fields = lead_fields(schema, r)?;
        // An outcome or close set through the API names no contact.
        let contact = match &effect.contact {
            Some(_) => Some(self.effect_contact(effect).await?),
            None => None,
        };
        let _one_at_a_time = self.lead_locks.lock(&r.id).await;
        let known = self.leads.lock().unwrap().get(&r.id).cloned();
        if known
            .as_ref()
            .is_some_and(|k| k.revision >= r.revision && !self.client.refused())
        {
            return Ok(());
        }
        let found = match known {
            Some(k) => Some(k),
            None => self.find_lead(schema, &r.id).await?,
        };
        let written_agent = found.as_ref().and_then(|k| k.agent.clone());
        let mut body = json!({"custom_fields_values": fields});
        if let Some(status) = r
            .outcome
            .as_ref()
            .and_then(|o| self.lead_settings.statuses.get(o))
        {
            body["status_id"] = json!(status);
        }
        if let Some(v) = r.outcome_value {
            // Kommo's price is a whole number in the account's currency.
            body["price"] = json!(v.round().max(0.0) as u64);
        }
        if let Some(agent) = r
            .agent
            .as_deref()
            .filter(|a| Some(*a) != written_agent.as_deref())
        {
            match self.lead_settings.owners.get(agent) {
                Some(user) => body["responsible_user_id"] = json!(user),
                None => {
                    tracing::info!(conversation = %r.id, agent = %agent, "kommo: the agent has no user in the mapping's [conversations.owners]; responsible user left as it is")
                }
            }
        }
        let mut tags: Vec<Value> = r.tags.iter().map(|t| json!({"name": t})).collect();
        let lead = match found {
            Some(mut lead) => {
                if !tags.is_empty() {
                    body["tags_to_add"] = Value::Array(tags);
                }
                self.patch_lead(&r.id, lead.id, &body).await?;
                if let Some(c) = contact.filter(|c| !lead.contacts.contains(c)) {
                    self.link_contact(lead.id, c).await?;
                    lead.contacts.push(c);
                }
                lead
            }
            None => {
                let doubted = effect.in_doubt || self.doubtful.lock().unwrap().contains_key(&r.id);
                self.trust_miss_of(&r.id, doubted, "conversation lead")?;
                tags.insert(0, json!({"name": "WhatsApp"}));
                body["tags_to_add"] = Value::Array(tags);
                body["name"] = json!(title(r, self.who(effect).as_deref()));
                if let Some(c) = contact {
                    body["_embedded"] = json!({"contacts": [{"id": c}]});
                }
                let id = self.create_lead(&r.id, &body).await?;
                KnownLead {
                    id,
                    revision: 0,
                    agent: None,
                    contacts: contact.into_iter().collect(),
                }
            }
        };
        let known = KnownLead {
            revision: r.revision,
            agent: r.agent.clone().or(written_agent),
            ..lead
        };
        remember(&self.leads, r.id.clone(), known);
        Ok(())
    }

    /// Who the conversation is with, for the name: the contact's name, else its identity.
    fn who(&self, effect: &Effect) -> Option<String> {
        let (_, fields) = effect.contact.as_ref()?;
        ["name", self.settings.id_field.as_str()]
            .iter()
            .find_map(|k| fields.get(*k).and_then(Value::as_str).map(String::from))
    }

    /// `GET /api/v4/leads?query=`: the lead whose conversation field holds exactly
    /// `conversation_id` (the oldest, should two processes have made one each), with its
    /// linked contacts.
    async fn find_lead(
        &self,
        schema: &Schema,
        conversation_id: &str,
    ) -> Result<Option<KnownLead>, CrmError> {
        let field = schema.lead.required("lead", CONVERSATION_FIELD)?;
        let path = format!(
            "/api/v4/leads?query={}&with=contacts&limit=50",
            encode(conversation_id)
        );
        // 204 (nothing found) reads as Null: no leads.
        let answer = self.client.call(Method::GET, &path, None).await?;
        let lead = answer["_embedded"]["leads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| {
                l["custom_fields_values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| {
                        f["field_id"] == field
                            && f["values"]
                                .as_array()
                                .is_some_and(|v| v.iter().any(|v| v["value"] == conversation_id))
                    })
            })
            .filter(|l| l["id"].is_u64())
            .min_by_key(|l| l["id"].as_u64());
        Ok(lead.map(|l| KnownLead {
            id: l["id"].as_u64().unwrap_or_default(),
            revision: 0,
            agent: None,
            contacts: l["_embedded"]["contacts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_u64())
                .collect(),
        }))
    }

    async fn create_lead(&self, conversation_id: &str, body: &Value) -> Result<u64, CrmError> {
        let created = self
            .client
            .call(Method::POST, "/api/v4/leads", Some(&json!([body])))
            .await;
        match created {
            Ok(answer) => {
                self.doubtful.lock().unwrap().remove(conversation_id);
                answer["_embedded"]["leads"][0]["id"]
                    .as_u64()
                    .ok_or_else(|| CrmError::Transient("lead created without an id".into()))
            }
            Err(e) => {
                if !e.definitely_not_applied() {
                    remember(&self.doubtful, conversation_id.to_string(), Instant::now());
                }
                Err(e)
            }
        }
    }

    async fn patch_lead(
        &self,
        conversation_id: &str,
        id: u64,
        body: &Value,
    ) -> Result<(), CrmError> {
        match self
            .client
            .call(Method::PATCH, &format!("/api/v4/leads/{id}"), Some(body))
            .await
        {
            Ok(_) => Ok(()),
            Err(CrmError::Rejected(m)) if m.starts_with("HTTP 404") => {
                // Deleted in Kommo since: the retry looks for it again (and makes a new one).
                self.leads.lock().unwrap().remove(conversation_id);
                Err(CrmError::Transient(format!("lead {id} is gone: {m}")))
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v4/leads/{id}/link`: ties the contact to a lead made without one.
    async fn link_contact(&self, lead: u64, contact: u64) -> Result<(), CrmError> {
        let body = json!([{"to_entity_id": contact, "to_entity_type": "contacts"}]);
        self.client
            .call(
                Method::POST,
                &format!("/api/v4/leads/{lead}/link"),
                Some(&body),
            )
            .await
            .map(drop)
    }
}

/// The conversation fields as `custom_fields_values`: the required ones must exist, the others
/// are written when the account created them.
fn lead_fields(schema: &Schema, r: &ConversationRecord) -> Result<Vec<Value>, CrmError> {
    let mut values = Vec::new();
    for (name, value) in conversation_fields(r) {
        let id = match schema.lead.id(name) {
            Some(id) => id,
            None if [CONVERSATION_FIELD, REVISION_FIELD].contains(&name) => {
                schema.lead.required("lead", name)?
            }
            None => continue,
        };
        values.push(field_value(id, &json!(value)));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_name_won_lost_or_a_status_id() {
        let mut c = ConversationSettings::default();
        c.owners.insert("ana".into(), "8001".into());
        c.outcome_stages.insert("converted".into(), "won".into());
        c.outcome_stages.insert("lost".into(), "lost".into());
        c.outcome_stages.insert("resolved".into(), "61234".into());
        let s = LeadSettings::from_mapping(&c).unwrap();
        assert_eq!(s.statuses["converted"], 142);
        assert_eq!(s.statuses["lost"], 143);
        assert_eq!(s.statuses["resolved"], 61234);
        assert_eq!(s.owners["ana"], 8001);
        c.outcome_stages.insert("spam".into(), "Spam".into());
        let e = LeadSettings::from_mapping(&c).unwrap_err().to_string();
        assert!(
            e.contains("[conversations.outcome_stages]") && e.contains("`spam` = `Spam`"),
            "{e}"
        );
    }
}
