//! Conversations as Pipedrive Deals: one deal per conversation, on the person. Pipedrive's
//! Channels API (its only conversation object) was removed in February 2026, and an Activity
//! has no custom fields to find it again by; a deal carries an owner, a status or stage for
//! the outcome, custom fields, and notes link to it natively (`deal_id`).
//!
//! Exactly once without an upsert: the deal's `wabridge_conversation_id` field holds the
//! conversation id. The deal ids this process wrote or found come first; then the deals search
//! (`GET /api/v2/deals/search`, exact match on custom fields), whose index lags writes. A
//! create whose answer was lost (a timeout, a 5xx, a crash before the ledger's confirm) makes
//! every later write of that conversation in this process, and the in-doubt retry in any
//! process, trust a search miss only [`super::DEFAULT_SEARCH_LAG`] after it (the persons' lag
//! guard). One find-or-create at a time per conversation in a process.
//!
//! Revisions: crm-sync writes conversations first and never hands over a revision its store
//! has superseded ([`wabridge_core::crm::Crm::conversations_first`]); a revision this process
//! already wrote costs no call.
//!
//! What the deal shows: the title (at create: who the conversation is with), the person, the
//! owner (`[conversations.owners]`, written when the agent changes), the outcome's status or
//! stage (`[conversations.outcome_stages]`: `won`, `lost`, `open` or a stage id), a
//! conversion's value and currency, and the `wabridge_*` fields
//! ([`crate::conversation_fields`]). A close without a mapped outcome leaves the status alone
//! (a conversation going idle is not a lost sale): `wabridge_close_reason` and
//! `wabridge_closed_at` show it.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Map, Value};
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;

use super::api::{encode, Budget};
use super::fields::Schema;
use super::{remember, PipedriveCrm};
use crate::conversation_fields::{
    conversation_fields, numeric_owners, title, CONVERSATION_FIELD, REVISION_FIELD,
};
use crate::ConfigError;

/// What an outcome does to the deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DealOutcome {
    /// `won`, `lost` or `open`.
    Status(&'static str),
    /// A stage id (the deal stays open, in that stage).
    Stage(u64),
}

/// The mapping's `[conversations]`, checked for Pipedrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DealSettings {
    /// Agent → Pipedrive user id.
    pub owners: BTreeMap<String, u64>,
    pub outcomes: BTreeMap<String, DealOutcome>,
}

impl DealSettings {
    pub fn from_mapping(c: &ConversationSettings) -> Result<DealSettings, ConfigError> {
        let mut outcomes = BTreeMap::new();
        for (outcome, value) in &c.outcome_stages {
            let parsed = match value.trim() {
                "won" => DealOutcome::Status("won"),
                "lost" => DealOutcome::Status("lost"),
                "open" => DealOutcome::Status("open"),
                other => DealOutcome::Stage(other.parse().map_err(|_| ConfigError::Invalid {
                    name: "[conversations.outcome_stages]",
                    reason: format!(
                        "`{outcome}` = `{value}`: Pipedrive takes `won`, `lost`, `open` or a stage id (a number)"
                    ),
                })?),
            };
            outcomes.insert(outcome.clone(), parsed);
        }
        Ok(DealSettings {
            owners: numeric_owners(c, "Pipedrive")?,
            outcomes,
        })
    }
}

/// A conversation's deal as this process knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownDeal {
    pub id: u64,
    /// The revision this process wrote (0: found, not written).
    pub revision: u64,
    /// The agent whose owner this process wrote.
    pub agent: Option<String>,
}

/// The deal's own keys for `r`: the outcome's status or stage, a conversion's value, and the
/// owner when the agent is not the one already written. Also the agent without an owner.
pub(crate) fn deal_keys(
    r: &ConversationRecord,
    settings: &DealSettings,
    written_agent: Option<&str>,
) -> (Map<String, Value>, Option<String>) {
    let mut body = Map::new();
    match r.outcome.as_ref().and_then(|o| settings.outcomes.get(o)) {
        Some(DealOutcome::Status(s)) => {
            body.insert("status".into(), json!(s));
        }
        Some(DealOutcome::Stage(id)) => {
            body.insert("status".into(), json!("open"));
            body.insert("stage_id".into(), json!(id));
        }
        None => {}
    }
    if let Some(v) = r.outcome_value {
        body.insert("value".into(), json!(v));
        if let Some(c) = &r.outcome_currency {
            body.insert("currency".into(), json!(c));
        }
    }
    let mut unowned = None;
    if let Some(agent) = r.agent.as_deref().filter(|a| Some(*a) != written_agent) {
        match settings.owners.get(agent) {
            Some(owner) => {
                body.insert("owner_id".into(), json!(owner));
            }
            None => unowned = Some(agent.to_string()),
        }
    }
    (body, unowned)
}

impl PipedriveCrm {
    /// Writes the conversation's deal: found (and updated) or created.
    pub(super) async fn conversation_deal(
        &self,
        effect: &Effect,
        r: &ConversationRecord,
    ) -> Result<(), CrmError> {
        let schema = self.schema().await?;
        let custom = self.deal_custom(schema, r)?;
        // An outcome or close set through the API names no person: the deal has it already,
        // or gets it with the next message's revision.
        let person = match &effect.contact {
            Some(_) => Some(self.effect_person(effect).await?),
            None => None,
        };
        let _one_at_a_time = self.deal_locks.lock(&r.id).await;
        let known = self.deals.lock().unwrap().get(&r.id).cloned();
        if known
            .as_ref()
            .is_some_and(|k| k.revision >= r.revision && !self.client.refused())
        {
            return Ok(());
        }
        let found = match &known {
            Some(k) => Some(k.id),
            None => self.find_deal(&r.id).await?,
        };
        let written_agent = known.as_ref().and_then(|k| k.agent.clone());
        let (mut body, unowned) = deal_keys(r, &self.deal_settings, written_agent.as_deref());
        if let Some(agent) = unowned {
            tracing::info!(conversation = %r.id, agent = %agent, "pipedrive: the agent has no owner in the mapping's [conversations.owners]; deal owner left as it is");
        }
        body.insert("custom_fields".into(), Value::Object(custom));
        if let Some(p) = person {
            body.insert("person_id".into(), json!(p));
        }
        let id = match found {
            Some(id) => {
                self.patch_deal(&r.id, id, &Value::Object(body)).await?;
                id
            }
            None => {
                let doubted = effect.in_doubt || self.doubtful.lock().unwrap().contains_key(&r.id);
                self.trust_miss_of(&r.id, doubted, "conversation deal")?;
                body.insert("title".into(), json!(title(r, self.who(effect).as_deref())));
                self.create_deal(&r.id, &Value::Object(body)).await?
            }
        };
        remember(
            &self.deals,
            r.id.clone(),
            KnownDeal {
                id,
                revision: r.revision,
                agent: r.agent.clone().or(written_agent),
            },
        );
        Ok(())
    }

    /// The deal of `conversation_id` for a note to link to: known here, else searched (a miss
    /// leaves the note on the person alone). `None` when the company has no conversation field.
    pub(super) async fn deal_of(&self, conversation_id: &str) -> Result<Option<u64>, CrmError> {
        if let Some(k) = self.deals.lock().unwrap().get(conversation_id) {
            return Ok(Some(k.id));
        }
        if self.schema().await?.deal.code(CONVERSATION_FIELD).is_none() {
            return Ok(None);
        }
        let found = self.find_deal(conversation_id).await?;
        if let Some(id) = found {
            let known = KnownDeal {
                id,
                revision: 0,
                agent: None,
            };
            remember(&self.deals, conversation_id.to_string(), known);
        }
        Ok(found)
    }

    /// The conversation fields by code: the required ones must exist, the others are written
    /// when the company created them.
    fn deal_custom(
        &self,
        schema: &Schema,
        r: &ConversationRecord,
    ) -> Result<Map<String, Value>, CrmError> {
        let mut custom = Map::new();
        for (name, value) in conversation_fields(r) {
            let code = match schema.deal.code(name) {
                Some(code) => code,
                None if [CONVERSATION_FIELD, REVISION_FIELD].contains(&name) => {
                    schema.deal.required("deal", name)?
                }
                None => continue,
            };
            custom.insert(code.to_string(), json!(value));
        }
        Ok(custom)
    }

    /// Who the conversation is with, for the title: the contact's name, else its identity.
    fn who(&self, effect: &Effect) -> Option<String> {
        let (_, fields) = effect.contact.as_ref()?;
        ["name", self.settings.id_field.as_str()]
            .iter()
            .find_map(|k| fields.get(*k).and_then(Value::as_str).map(String::from))
    }

    /// `GET /api/v2/deals/search`: the deal whose custom field holds exactly `conversation_id`
    /// (the oldest, should two processes have made one each).
    async fn find_deal(&self, conversation_id: &str) -> Result<Option<u64>, CrmError> {
        let path = format!(
            "/api/v2/deals/search?term={}&fields=custom_fields&exact_match=true&limit=10",
            encode(conversation_id)
        );
        let data = self
            .client
            .call(Method::GET, &path, None, Budget::Search)
            .await?;
        Ok(data["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| &i["item"])
            .filter(|item| {
                item["custom_fields"]
                    .as_array()
                    .is_some_and(|values| values.iter().any(|v| v == conversation_id))
            })
            .filter_map(|item| item["id"].as_u64())
            .min())
    }

    async fn create_deal(&self, conversation_id: &str, body: &Value) -> Result<u64, CrmError> {
        match self
            .client
            .call(Method::POST, "/api/v2/deals", Some(body), Budget::General)
            .await
        {
            Ok(data) => {
                self.doubtful.lock().unwrap().remove(conversation_id);
                data["id"]
                    .as_u64()
                    .ok_or_else(|| CrmError::Transient("deal created without an id".into()))
            }
            Err(e) => {
                if !e.definitely_not_applied() {
                    remember(&self.doubtful, conversation_id.to_string(), Instant::now());
                }
                Err(e)
            }
        }
    }

    async fn patch_deal(
        &self,
        conversation_id: &str,
        id: u64,
        body: &Value,
    ) -> Result<(), CrmError> {
        match self
            .client
            .call(
                Method::PATCH,
                &format!("/api/v2/deals/{id}"),
                Some(body),
                Budget::General,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(CrmError::Rejected(m))
                if m.starts_with("HTTP 404") || m.starts_with("HTTP 410") =>
            {
                // Deleted in Pipedrive since: the retry looks for it again (and makes a new one).
                self.deals.lock().unwrap().remove(conversation_id);
                Err(CrmError::Transient(format!("deal {id} is gone: {m}")))
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the person's conversation deals (their titles name the person), for erasure.
    pub(super) async fn erase_conversation_deals(&self, person: u64) -> Result<(), CrmError> {
        let Some(code) = self.schema().await?.deal.code(CONVERSATION_FIELD) else {
            return Ok(());
        };
        let mut cursor: Option<String> = None;
        let mut ids = Vec::new();
        // A bound on pages guards against a loop: 20 pages of 500 deals.
        for _ in 0..20 {
            let mut path = format!(
                "/api/v2/deals?person_id={person}&limit=500&custom_fields={}",
                encode(code)
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", encode(c)));
            }
            let (data, more) = self
                .client
                .call_page(Method::GET, &path, Budget::General)
                .await?;
            ids.extend(
                data.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| {
                        d["custom_fields"][code]
                            .as_str()
                            .is_some_and(|c| !c.is_empty())
                    })
                    .filter_map(|d| d["id"].as_u64()),
            );
            cursor = more["next_cursor"].as_str().map(String::from);
            if cursor.is_none() {
                break;
            }
        }
        for id in ids {
            let path = format!("/api/v2/deals/{id}");
            match self
                .client
                .call(Method::DELETE, &path, None, Budget::General)
                .await
            {
                Ok(_) => {}
                Err(CrmError::Rejected(m)) if m.starts_with("HTTP 404") => {}
                Err(e) => return Err(e),
            }
            self.deals.lock().unwrap().retain(|_, k| k.id != id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DealSettings {
        let mut c = ConversationSettings::default();
        c.owners.insert("ana".into(), "7001".into());
        c.outcome_stages.insert("converted".into(), "won".into());
        c.outcome_stages.insert("resolved".into(), "12".into());
        DealSettings::from_mapping(&c).unwrap()
    }

    #[test]
    fn outcomes_set_the_status_or_stage_and_agents_the_owner_once() {
        let mut r = ConversationRecord {
            id: "cnv_1".into(),
            agent: Some("ana".into()),
            outcome: Some("converted".into()),
            outcome_value: Some(1250.5),
            outcome_currency: Some("MXN".into()),
            ..Default::default()
        };
        let (body, unowned) = deal_keys(&r, &settings(), None);
        assert_eq!(
            Value::Object(body),
            json!({"status": "won", "value": 1250.5, "currency": "MXN", "owner_id": 7001})
        );
        assert_eq!(unowned, None);
        // The owner is not written again for the same agent (people may have reassigned it).
        r.outcome = Some("resolved".into());
        r.outcome_value = None;
        let (body, _) = deal_keys(&r, &settings(), Some("ana"));
        assert_eq!(
            Value::Object(body),
            json!({"status": "open", "stage_id": 12})
        );
        // An unmapped outcome and an agent without an owner leave both alone.
        r.outcome = Some("spam".into());
        r.agent = Some("bruno".into());
        let (body, unowned) = deal_keys(&r, &settings(), Some("ana"));
        assert!(body.is_empty(), "{body:?}");
        assert_eq!(unowned.as_deref(), Some("bruno"));
    }

    #[test]
    fn an_outcome_that_is_neither_a_status_nor_a_stage_is_refused_naming_it() {
        let mut c = ConversationSettings::default();
        c.outcome_stages.insert("converted".into(), "ganado".into());
        let e = DealSettings::from_mapping(&c).unwrap_err().to_string();
        assert!(
            e.contains("[conversations.outcome_stages]") && e.contains("`converted` = `ganado`"),
            "{e}"
        );
    }
}
