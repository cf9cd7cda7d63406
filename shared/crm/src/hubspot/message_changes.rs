//! Edits and deletions of WhatsApp messages in HubSpot: the message's Communication is found by
//! its effect id (`m:<wamid>#activity` in the mapping's `effect_property`, the id every
//! created communication carries) and its body is updated
//! (`POST /crm/v3/objects/communications/batch/update`): an edit puts the new text and when it
//! was edited; a deletion clears the body (mapping `[revoke] content = "clear"`) or marks it
//! deleted (`"keep"`).
//!
//! When the communication is not found (the edit arrived before the message, HubSpot's search
//! index has not caught up yet, or the mapping has no `effect_property`), the change is logged
//! as a Communication of its own on the contact ("WhatsApp message wamid.… edited: …"), so it is
//! never lost; it is created once (its effect id, searched when in doubt).

use serde_json::{json, Value};

use super::{HubSpotCrm, COMMUNICATION_TO_CONTACT};
use wabridge_core::changes::{ChangeKind, MessageChangeRecord, RevokedContent};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::ledger::effect_id;

/// What a deleted message's body becomes in HubSpot.
pub const DELETED_MARK: &str = "(deleted by the sender)";

impl HubSpotCrm {
    pub(super) async fn apply_change(
        &self,
        effect: &Effect,
        change: &MessageChangeRecord,
    ) -> Result<(), CrmError> {
        let original = match &self.effect_property {
            Some(prop) => {
                let id = effect_id(&format!("m:{}", change.message_id), "activity");
                self.client.find_by("communications", prop, &id).await?
            }
            None => None,
        };
        let Some(original) = original else {
            return self.log_change(effect, change).await;
        };
        let body = match change.change {
            Some(ChangeKind::Edited) => edited_body(change),
            Some(ChangeKind::Deleted) => match change.content.unwrap_or_default() {
                RevokedContent::Clear => DELETED_MARK.to_string(),
                RevokedContent::Keep => {
                    let path = format!(
                        "/crm/v3/objects/communications/{original}?properties=hs_communication_body"
                    );
                    let old = self.client.get(&path).await?.unwrap_or(Value::Null);
                    let old = old["properties"]["hs_communication_body"]
                        .as_str()
                        .unwrap_or_default();
                    if old.ends_with(DELETED_MARK) {
                        return Ok(()); // a repeat
                    }
                    format!("{old}\n\n{DELETED_MARK}").trim_start().to_string()
                }
            },
            None => return Ok(()),
        };
        let update = json!({"inputs": [{
            "id": original,
            "properties": {"hs_communication_body": body}
        }]});
        self.client
            .post("/crm/v3/objects/communications/batch/update", &update)
            .await
            .map(drop)
    }

    /// The change as a communication of its own (its message is not in HubSpot, or not found).
    async fn log_change(
        &self,
        effect: &Effect,
        change: &MessageChangeRecord,
    ) -> Result<(), CrmError> {
        if self.already_created("communications", effect).await? {
            return Ok(());
        }
        let contact = self.contact_hs_id(effect).await?;
        let text = match change.change {
            Some(ChangeKind::Edited) => format!(
                "WhatsApp message {} edited: {}",
                change.message_id,
                edited_body(change)
            ),
            _ => format!("WhatsApp message {} {DELETED_MARK}", change.message_id),
        };
        let mut properties = serde_json::Map::new();
        properties.insert("hs_communication_channel_type".into(), "WHATS_APP".into());
        properties.insert("hs_communication_logged_from".into(), "CRM".into());
        properties.insert("hs_communication_body".into(), text.into());
        properties.insert(
            "hs_timestamp".into(),
            change.at.unwrap_or_default().to_string().into(),
        );
        if let Some(prop) = &self.effect_property {
            properties.insert(prop.clone(), effect.id.clone().into());
        }
        let input = super::api::CreateInput {
            properties,
            associations: json!([{
                "to": {"id": contact},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": COMMUNICATION_TO_CONTACT}]
            }]),
        };
        self.create(&self.communications, effect, input)
            .await
            .map(drop)
    }
}

/// An edit's body: the new text (or its type) and when it was edited.
fn edited_body(change: &MessageChangeRecord) -> String {
    let text = change
        .text
        .clone()
        .or_else(|| change.kind.clone())
        .unwrap_or_default();
    match change.at {
        Some(at) => format!("{text}\n\n(edited {})", wabridge_core::clock::rfc3339(at)),
        None => format!("{text}\n\n(edited)"),
    }
}
