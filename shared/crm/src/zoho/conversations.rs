//! Conversations as Cases: one record of Zoho's Cases module per conversation, upserted
//! (`POST /crm/v8/Cases/upsert`) with `duplicate_check_fields: ["wabridge_Conversation_Id"]`, a
//! field set to "Do not allow duplicate values". Zoho settles the match in its database, so a
//! redelivery, a crash before our confirm or a new process updates the same Case: nothing to
//! search, nothing written twice. crm-sync writes an event's conversation before its activity
//! and never hands over a superseded revision (`Crm::conversations_first`), so the Case needs no
//! read-before-write guard; it shows the revision it was written from.
//!
//! Zoho requires `Status` on a new Case. It is written with the opening revision, when the
//! conversation closes and when its outcome has a status; otherwise left out, so an agent's
//! `On Hold` or `Escalated` stays. Should an upsert without it meet no Case (the opening
//! revision never reached Zoho), Zoho answers `MANDATORY_NOT_FOUND` and the upsert is made again
//! with the open status.
//!
//! A Note has one parent: a message's Note stays on the contact, the person's whole timeline
//! across conversations, and names its conversation in a line of its content (`records.rs`).

use crate::timeline::clip;
use reqwest::Method;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use wabridge_core::conversations::{ConversationRecord, Party};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;

use super::api::Budget;
use super::fields::{module_fields, Fields};
use super::ZohoCrm;

/// The Cases field holding the conversation id ("Do not allow duplicate values").
pub const CONVERSATION_FIELD: &str = "wabridge_Conversation_Id";
/// The Cases field holding the revision written (Number): people see which change they look at.
pub const REVISION_FIELD: &str = "wabridge_Revision";
/// Optional Cases fields, written when the org has them.
pub const OPTIONAL_CASE_FIELDS: [&str; 7] = [
    "wabridge_Agent",
    "wabridge_Origin",
    "wabridge_First_Response_Ms",
    "wabridge_Tags",
    "wabridge_Outcome",
    "wabridge_Close_Reason",
    "wabridge_SLA_Breached_At",
];
/// The `Case_Origin` of every conversation (add the value to the picklist).
pub const CASE_ORIGIN: &str = "WhatsApp";
/// The `Status` of a new Case, and of a closed one whose outcome has no status of its own.
pub const OPEN_STATUS: &str = "New";
pub const CLOSED_STATUS: &str = "Closed";
/// The line of a Note's content naming its conversation.
pub const NOTE_LINE: &str = "conversation: ";
const TEXT_MAX: usize = 255;

/// The Cases side of the adapter.
#[derive(Default)]
pub(crate) struct Cases {
    /// `[conversations]` of the mapping: owners and outcome statuses.
    pub settings: ConversationSettings,
    /// The org's Cases fields, read at the first conversation (an org that never writes one
    /// needs no Cases access).
    fields: OnceCell<Fields>,
    /// One write at a time per conversation in this process.
    locks: crate::cache::KeyLocks,
}

impl Cases {
    pub fn new(settings: ConversationSettings) -> Cases {
        Cases {
            settings,
            ..Cases::default()
        }
    }
}

/// The Case `Status` the conversation's state decides: its outcome's when mapped, else
/// [`CLOSED_STATUS`] once closed, [`OPEN_STATUS`] for the opening revision; `None` otherwise.
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
    match (r.closed_at, r.revision) {
        (Some(_), _) => Some(CLOSED_STATUS),
        (None, 1) => Some(OPEN_STATUS),
        _ => None,
    }
}

/// The Case's fields for `r` (without `Contact_Name`), those of [`OPTIONAL_CASE_FIELDS`] kept
/// when `has` them.
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
            TEXT_MAX
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
    f.insert("Case_Origin".into(), json!(CASE_ORIGIN));
    if let Some(status) = case_status(r, settings) {
        f.insert("Status".into(), json!(status));
    }
    if let Some(owner) = r.agent.as_ref().and_then(|a| settings.owners.get(a)) {
        f.insert("Owner".into(), json!({"id": owner}));
    }
    for (field, v) in crate::timeline::case_details(r, "", wabridge_core::clock::utc_seconds_offset)
    {
        if has(&field) {
            f.insert(field, v);
        }
    }
    f
}

impl ZohoCrm {
    async fn case_schema(&self) -> Result<&Fields, CrmError> {
        self.cases
            .fields
            .get_or_try_init(|| module_fields(&self.client, "Cases"))
            .await
    }

    /// Upserts the conversation's Case on its conversation id, on the effect's contact.
    pub(super) async fn conversation(
        &self,
        effect: &Effect,
        r: &ConversationRecord,
    ) -> Result<(), CrmError> {
        let fields = self.case_schema().await?;
        fields.required("Cases", CONVERSATION_FIELD)?;
        fields.required("Cases", REVISION_FIELD)?;
        if let Some(agent) = r
            .agent
            .as_ref()
            .filter(|a| !self.cases.settings.owners.contains_key(*a))
        {
            tracing::info!(conversation = %r.id, agent = %agent, "zoho: the agent has no owner in the mapping's [conversations.owners]; Case owner left to Zoho");
        }
        let mut record = case_fields(r, &self.cases.settings, |n| fields.has(n));
        // An outcome set through the API names no contact: its Case got one from a message.
        if effect.contact.is_some() {
            let contact = self.effect_contact(effect).await?;
            record.insert("Contact_Name".into(), json!({"id": contact}));
        }
        let _one_at_a_time = self.cases.locks.lock(&r.id).await;
        match self.upsert_case(&record).await {
            // No Case yet and no status in the body: a new Case needs one.
            Err(CrmError::Rejected(why))
                if why.contains("MANDATORY_NOT_FOUND") && !record.contains_key("Status") =>
            {
                record.insert("Status".into(), json!(OPEN_STATUS));
                self.upsert_case(&record).await
            }
            // Another process inserted it at the same instant: this write updates it.
            Err(CrmError::Rejected(why)) if why.contains("DUPLICATE_DATA") => {
                self.upsert_case(&record).await
            }
            other => other,
        }
    }

    async fn upsert_case(&self, record: &Map<String, Value>) -> Result<(), CrmError> {
        let body = json!({"data": [record], "duplicate_check_fields": [CONVERSATION_FIELD]});
        self.client
            .call(Method::POST, "/Cases/upsert", Some(&body), Budget::General)
            .await
            .map(drop)
    }

    /// Deletes the Cases of Zoho contact `contact` (its related list, read from the database).
    pub(super) async fn erase_cases(&self, contact: &str) -> Result<(), CrmError> {
        let path = format!("/Contacts/{contact}/Cases?fields=id&per_page=200");
        // A contact without Cases: 204 (`Null`).
        let found = self
            .client
            .call(Method::GET, &path, None, Budget::General)
            .await?;
        for case in found["data"].as_array().into_iter().flatten() {
            let Some(id) = case["id"].as_str() else {
                continue;
            };
            match self
                .client
                .call(
                    Method::DELETE,
                    &format!("/Cases/{id}"),
                    None,
                    Budget::General,
                )
                .await
            {
                Ok(_) => {}
                // Deleted already (a redelivery).
                Err(CrmError::Rejected(m)) if m.contains("INVALID_DATA") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
            opened_by: Some(Party::Customer),
            origin: Some(Origin::Organic),
            first_response_ms: Some(90_000),
            agent: Some("ana".into()),
            tags: vec!["menu".into(), "ventas".into()],
            sla_breached_at: Some(1_763_780_900_000),
            revision: 1,
            ..Default::default()
        }
    }

    fn settings() -> ConversationSettings {
        ConversationSettings {
            owners: [("ana".to_string(), "5725767000000411001".to_string())].into(),
            outcome_stages: [("converted".to_string(), "Closed".to_string())].into(),
        }
    }

    #[test]
    fn the_opening_revision_carries_the_mandatory_fields_and_later_ones_leave_the_status() {
        let f = case_fields(&record(), &settings(), |_| true);
        assert_eq!(f[CONVERSATION_FIELD], "cnv_1");
        assert_eq!(f[REVISION_FIELD], 1);
        assert_eq!(f["Status"], "New");
        assert_eq!(f["Case_Origin"], "WhatsApp");
        assert_eq!(f["Subject"], "WhatsApp conversation on 106540352242922");
        assert_eq!(f["Owner"], json!({"id": "5725767000000411001"}));
        assert_eq!(f["wabridge_Tags"], "menu;ventas");
        assert_eq!(f["wabridge_SLA_Breached_At"], "2025-11-22T03:08:20+00:00");
        let mut later = record();
        later.revision = 2;
        assert!(case_fields(&later, &settings(), |_| true)
            .get("Status")
            .is_none());
        later.closed_at = Some(1);
        later.close_reason = Some(CloseReason::Explicit);
        let f = case_fields(&later, &settings(), |_| false);
        assert_eq!(f["Status"], "Closed");
        assert!(f.get("wabridge_Close_Reason").is_none(), "{f:?}");
        later.closed_at = None;
        later.outcome = Some("converted".into());
        assert_eq!(
            case_fields(&later, &settings(), |_| true)["Status"],
            "Closed"
        );
    }
}
