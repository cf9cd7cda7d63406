//! Conversations as Cases: one Case per conversation, upserted by the External ID
//! `wabridge_Conversation_Id__c` through sObject Collections (batched with other events' Cases).
//! Salesforce settles the match in its database, so a redelivery, a crash before our confirm or
//! a new process updates the same Case: nothing to search, nothing written twice. crm-sync
//! writes an event's conversation before its activity and never hands over a superseded
//! revision (`Crm::conversations_first`), so the Case needs no read-before-write guard; it
//! shows the revision it was written from.
//!
//! A conversation's Tasks link to its Case natively (`WhatId`): the Case id is remembered when
//! this process writes the Case, else read once per conversation and process by SOQL on the
//! External ID (the database, no index lag). A relationship reference by External ID
//! (`"What": {"attributes": {"type": "Case"}, …}`) would save the read, but Salesforce documents
//! it for plain lookups only, and a Case not written yet would make it refuse the Task.
//!
//! `SALESFORCE_OBJECT=Lead`: no Cases. A Case has no Lead lookup, and a Task whose `WhoId` is a
//! Lead cannot be related to a Case (`WhatId`), so the Case could be tied to nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::timeline::clip;
use reqwest::Method;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use wabridge_core::conversations::{ConversationRecord, Party};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;

use super::api::{encode, soql_literal};
use super::fields::{describe, Fields};
use super::{remember, PersonObject, SalesforceCrm};

/// The Case (External ID, Unique) and Task (plain Text) field holding the conversation id.
pub const CONVERSATION_FIELD: &str = "wabridge_Conversation_Id__c";
/// The Case field holding the revision written (Number): people see which change they look at.
pub const REVISION_FIELD: &str = "wabridge_Revision__c";
/// Optional Case fields, written when the org has them.
pub const OPTIONAL_CASE_FIELDS: [&str; 7] = [
    "wabridge_Agent__c",
    "wabridge_Origin__c",
    "wabridge_First_Response_Ms__c",
    "wabridge_Tags__c",
    "wabridge_Outcome__c",
    "wabridge_Close_Reason__c",
    "wabridge_SLA_Breached_At__c",
];
/// The Case `Origin` of every conversation (add the value to the Case Origin picklist).
pub const CASE_ORIGIN: &str = "WhatsApp";
/// The Case `Status` of a closed conversation whose outcome has no status of its own.
pub const CLOSED_STATUS: &str = "Closed";
const SUBJECT_MAX: usize = 255;

/// The Case side of the adapter.
#[derive(Default)]
pub(crate) struct Cases {
    /// `[conversations]` of the mapping: owners and outcome statuses.
    pub settings: ConversationSettings,
    /// The org's Case fields, described at the first conversation (an org that never writes
    /// one needs no Case access).
    fields: OnceCell<Fields>,
    /// Conversation id → Case id.
    ids: Mutex<HashMap<String, String>>,
}

impl Cases {
    pub fn new(settings: ConversationSettings) -> Cases {
        Cases {
            settings,
            ..Cases::default()
        }
    }

    /// Forgets Case `id` (deleted by an erasure, or gone in Salesforce).
    pub fn forget(&self, id: &str) {
        self.ids.lock().unwrap().retain(|_, v| v.as_str() != id);
    }
}

/// The Case `Status` the conversation's state decides: its outcome's when mapped, else
/// [`CLOSED_STATUS`] once closed; `None` while open (a new Case gets the org's default status,
/// and an agent's `Working` is not overwritten).
pub fn case_status<'a>(
    r: &ConversationRecord,
    settings: &'a ConversationSettings,
) -> Option<&'a str> {
    if let Some(status) = r
        .outcome
        .as_ref()
        .and_then(|o| settings.outcome_stages.get(o))
    {
        return Some(status);
    }
    r.closed_at.map(|_| CLOSED_STATUS)
}

/// The Case's fields for `r` (without `ContactId`), those of [`OPTIONAL_CASE_FIELDS`] kept when
/// `has` them.
pub fn case_fields(
    r: &ConversationRecord,
    settings: &ConversationSettings,
    has: impl Fn(&str) -> bool,
) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert(CONVERSATION_FIELD.into(), json!(r.id));
    f.insert(REVISION_FIELD.into(), json!(r.revision));
    let number = r.display_number.as_deref().unwrap_or(&r.number);
    f.insert(
        "Subject".into(),
        json!(clip(
            &format!("WhatsApp conversation on {number}"),
            SUBJECT_MAX
        )),
    );
    let opened_by = match r.opened_by {
        Some(Party::Customer) => "the contact",
        Some(Party::Business) => "the business",
        None => "unknown",
    };
    f.insert(
        "Description".into(),
        json!(format!(
            "WhatsApp conversation {} (opened by {opened_by}): {} messages from the contact, {} from the business.",
            r.id, r.inbound_count, r.outbound_count
        )),
    );
    f.insert("Origin".into(), json!(CASE_ORIGIN));
    if let Some(status) = case_status(r, settings) {
        f.insert("Status".into(), json!(status));
    }
    if let Some(owner) = r.agent.as_ref().and_then(|a| settings.owners.get(a)) {
        f.insert("OwnerId".into(), json!(owner));
    }
    for (field, v) in crate::timeline::case_details(r, "__c", wabridge_core::clock::utc_millis) {
        if has(&field) {
            f.insert(field, v);
        }
    }
    f
}

impl SalesforceCrm {
    async fn case_schema(&self) -> Result<&Fields, CrmError> {
        self.cases
            .fields
            .get_or_try_init(|| describe(&self.client, "Case"))
            .await
    }

    /// Upserts the conversation's Case on its conversation id, on the effect's contact.
    pub(super) async fn conversation(
        &self,
        effect: &Effect,
        r: &ConversationRecord,
    ) -> Result<(), CrmError> {
        if self.settings.object == PersonObject::Lead {
            self.skip(
                effect,
                "a Case cannot point at a Lead (SALESFORCE_OBJECT=Lead)",
            );
            return Ok(());
        }
        let fields = self.case_schema().await?;
        fields.required(CONVERSATION_FIELD)?;
        fields.required(REVISION_FIELD)?;
        if let Some(agent) = r
            .agent
            .as_ref()
            .filter(|a| !self.cases.settings.owners.contains_key(*a))
        {
            tracing::info!(conversation = %r.id, agent = %agent, "salesforce: the agent has no owner in the mapping's [conversations.owners]; Case owner left to Salesforce");
        }
        let mut record = case_fields(r, &self.cases.settings, |n| fields.has(n));
        // An outcome set through the API names no contact: its Case got one from a message.
        let contact = match effect.contact {
            Some(_) => Some(self.effect_contact(effect).await?),
            None => None,
        };
        if let Some(contact) = &contact {
            record.insert("ContactId".into(), json!(contact));
        }
        // One write at a time per conversation: two revisions in one collection call would be
        // refused as a duplicate External ID.
        let _one_at_a_time = self.locks.lock(&r.id).await;
        let result = self
            .batcher("Case", CONVERSATION_FIELD)
            .submit(record)
            .await;
        if let Ok(upserted) = &result {
            remember(&self.cases.ids, r.id.clone(), upserted.id.clone());
        }
        match contact {
            Some(contact) => self.unless_person_gone(&contact, result),
            None => result.map(drop),
        }
    }

    /// The Case of conversation `id`: remembered, else read (SOQL on the External ID); `None`
    /// when it has none (yet) or in Lead mode.
    pub(super) async fn case_of(&self, id: &str) -> Result<Option<String>, CrmError> {
        if self.settings.object == PersonObject::Lead {
            return Ok(None);
        }
        if let Some(known) = self.cases.ids.lock().unwrap().get(id).cloned() {
            return Ok(Some(known));
        }
        let soql = format!(
            "SELECT Id FROM Case WHERE {CONVERSATION_FIELD} IN ({})",
            soql_literal(id)
        );
        let found = self
            .client
            .call(Method::GET, &format!("/query?q={}", encode(&soql)), None)
            .await?;
        let case = found["records"][0]["Id"].as_str().map(String::from);
        if let Some(case) = &case {
            remember(&self.cases.ids, id.to_string(), case.clone());
        }
        Ok(case)
    }

    /// The Case ids of Salesforce contacts `contacts` (SOQL on `ContactId`).
    pub(super) async fn cases_of(&self, contacts: &[&str]) -> Result<Vec<String>, CrmError> {
        if self.settings.object == PersonObject::Lead || contacts.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = contacts.iter().map(|c| soql_literal(c)).collect();
        let soql = format!(
            "SELECT Id FROM Case WHERE ContactId IN ({})",
            list.join(",")
        );
        let found = self
            .client
            .call(Method::GET, &format!("/query?q={}", encode(&soql)), None)
            .await?;
        Ok(found["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["Id"].as_str().map(String::from))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wabridge_core::conversations::{CloseReason, Origin};

    fn record() -> ConversationRecord {
        ConversationRecord {
            id: "cnv_1".into(),
            number: "106540352242922".into(),
            display_number: Some("+52 55 1234 0000".into()),
            opened_by: Some(Party::Customer),
            origin: Some(Origin::CtwaAd),
            first_response_ms: Some(90_000),
            inbound_count: 2,
            outbound_count: 1,
            agent: Some("ana".into()),
            tags: vec!["menu".into(), "ventas".into()],
            sla_breached_at: Some(1_763_780_900_000),
            revision: 3,
            ..Default::default()
        }
    }

    fn settings() -> ConversationSettings {
        ConversationSettings {
            owners: [("ana".to_string(), "0055e000001AbCdAAA".to_string())].into(),
            outcome_stages: [("converted".to_string(), "Converted".to_string())].into(),
        }
    }

    #[test]
    fn an_open_case_shows_the_conversation_and_leaves_the_status_to_people() {
        let f = case_fields(&record(), &settings(), |_| true);
        assert_eq!(f[CONVERSATION_FIELD], "cnv_1");
        assert_eq!(f[REVISION_FIELD], 3);
        assert_eq!(f["Origin"], "WhatsApp");
        assert_eq!(f["OwnerId"], "0055e000001AbCdAAA");
        assert_eq!(f["Subject"], "WhatsApp conversation on +52 55 1234 0000");
        assert_eq!(f["wabridge_Origin__c"], "ctwa_ad");
        assert_eq!(f["wabridge_First_Response_Ms__c"], 90_000);
        assert_eq!(f["wabridge_Tags__c"], "menu;ventas");
        assert_eq!(f["wabridge_SLA_Breached_At__c"], "2025-11-22T03:08:20.000Z");
        assert!(f.get("Status").is_none(), "{f:?}");
        // Fields the org lacks are left out; the key and the revision never are.
        let f = case_fields(&record(), &settings(), |_| false);
        assert!(f.get("wabridge_Tags__c").is_none());
        assert_eq!(f[REVISION_FIELD], 3);
    }

    #[test]
    fn closing_and_mapped_outcomes_set_the_status_and_unmapped_agents_no_owner() {
        let mut r = record();
        r.closed_at = Some(5_000);
        r.close_reason = Some(CloseReason::Idle);
        let f = case_fields(&r, &settings(), |_| true);
        assert_eq!(f["Status"], "Closed");
        assert_eq!(f["wabridge_Close_Reason__c"], "idle");
        r.outcome = Some("converted".into());
        assert_eq!(
            case_fields(&r, &settings(), |_| true)["Status"],
            "Converted"
        );
        let mut open = record();
        open.outcome = Some("lost".into());
        open.agent = Some("bruno".into());
        let f = case_fields(&open, &settings(), |_| true);
        assert!(
            f.get("Status").is_none() && f.get("OwnerId").is_none(),
            "{f:?}"
        );
        assert_eq!(f["wabridge_Outcome__c"], "lost");
        assert_eq!(f["wabridge_Agent__c"], "bruno");
    }
}
