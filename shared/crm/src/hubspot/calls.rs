//! WhatsApp calls in HubSpot: one Call engagement per call, associated to the contact and to
//! its conversation's ticket (when the conversation has one).
//!
//! A call reaches crm-sync as several events (connect, statuses, terminate) in any order; only
//! the terminate event's `call` record (`ended`) creates the engagement, so it is created once
//! (its effect id, searched when in doubt like communications). The others are skipped and
//! counted. What a terminate alone cannot know (a `REJECTED` status of a business call seen
//! only on its status event) is merged by the stores that keep records (local, webhook
//! receivers); HubSpot shows such a call as not answered.

use serde_json::{json, Map, Value};

use super::ticket_links::inline;
use super::HubSpotCrm;
use wabridge_core::calls::{CallOutcome, CallRecord};
use wabridge_core::crm::{CrmError, Effect};
use wabridge_core::records::Direction;

/// Call → contact (HubSpot-defined association type id).
pub const CALL_TO_CONTACT: u32 = 194;

impl HubSpotCrm {
    /// Creates the call's engagement from its terminate event; skips the call's other events.
    pub(super) async fn log_call(
        &self,
        effect: &Effect,
        call: &CallRecord,
    ) -> Result<(), CrmError> {
        if !call.ended {
            self.skip(
                effect,
                "a call's engagement is created from its terminate event",
            );
            return Ok(());
        }
        if self.already_created("calls", effect).await? {
            return Ok(());
        }
        let contact = self.contact_hs_id(effect).await?;
        let mut properties = call_properties(call);
        if let Some(prop) = &self.effect_property {
            properties.insert(prop.clone(), effect.id.clone().into());
        }
        let mut associations = vec![inline(&contact, CALL_TO_CONTACT)];
        // On its conversation's ticket too, when the conversation has one.
        if let Some(conversation) = &call.conversation_id {
            if let Some((ticket, type_id)) = self.tickets.link_for("calls", conversation).await? {
                associations.push(inline(&ticket, type_id));
            }
        }
        let body = json!({"properties": properties, "associations": associations});
        match self.client.post("/crm/v3/objects/calls", &body).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.note_doubt(effect, &e);
                Err(e)
            }
        }
    }
}

/// The engagement's properties (strings, as HubSpot takes them).
pub fn call_properties(call: &CallRecord) -> Map<String, Value> {
    let inbound = call.direction == Some(Direction::Inbound);
    let status = match call.outcome {
        Some(CallOutcome::Answered) => "COMPLETED",
        Some(CallOutcome::Rejected) => "BUSY",
        Some(CallOutcome::Missed) if inbound => "MISSED",
        Some(CallOutcome::Missed) | None => "NO_ANSWER",
    };
    let at = call
        .placed_at
        .or(call.started_at)
        .or(call.ended_at)
        .unwrap_or_default();
    let mut p = Map::new();
    p.insert("hs_timestamp".into(), at.to_string().into());
    p.insert(
        "hs_call_title".into(),
        format!(
            "WhatsApp call ({})",
            if inbound {
                "from the contact"
            } else {
                "to the contact"
            }
        )
        .into(),
    );
    p.insert(
        "hs_call_direction".into(),
        if inbound { "INBOUND" } else { "OUTBOUND" }.into(),
    );
    p.insert("hs_call_status".into(), status.into());
    if let Some(d) = call.duration_s {
        p.insert("hs_call_duration".into(), (d * 1000).to_string().into());
    }
    p.insert(
        "hs_call_body".into(),
        format!("WhatsApp call {}", call.call_id).into(),
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_map_to_hubspot_statuses() {
        let mut call = CallRecord {
            call_id: "wacid.1".into(),
            direction: Some(Direction::Inbound),
            placed_at: Some(1_000),
            duration_s: Some(65),
            outcome: Some(CallOutcome::Answered),
            ended: true,
            ..Default::default()
        };
        let p = call_properties(&call);
        assert_eq!(p["hs_call_status"], "COMPLETED");
        assert_eq!(p["hs_call_direction"], "INBOUND");
        assert_eq!(p["hs_call_duration"], "65000");
        assert_eq!(p["hs_timestamp"], "1000");
        call.outcome = Some(CallOutcome::Missed);
        assert_eq!(call_properties(&call)["hs_call_status"], "MISSED");
        call.direction = Some(Direction::Outbound);
        assert_eq!(call_properties(&call)["hs_call_status"], "NO_ANSWER");
        call.outcome = Some(CallOutcome::Rejected);
        assert_eq!(call_properties(&call)["hs_call_status"], "BUSY");
    }
}
