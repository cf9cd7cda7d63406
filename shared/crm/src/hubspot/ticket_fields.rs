//! What a conversation record says on its HubSpot Ticket: the pipeline and stage, the owner,
//! and the custom `wabridge_*` properties (docs/crm/hubspot.md lists them to create).
//!
//! The ticket is the business's working object too, so wabridge writes the stage and the owner
//! only when its own view of them changes: the stage when the ticket is created, when the
//! conversation closes and when it gets an outcome; the owner when the conversation's agent
//! changes. An agent who moves the ticket along the pipeline or reassigns it keeps that choice
//! until then.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use wabridge_core::config;
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::mapping::tickets::HubSpotTickets;
use wabridge_core::mapping::Mapping;

/// The ticket property holding the conversation id: unique values, so the ticket is upserted
/// by it and read back by it (both consistent, unlike search).
pub const CONVERSATION_PROPERTY: &str = "wabridge_conversation_id";
/// The highest revision written: an older revision arriving late never overwrites it.
pub const REVISION_PROPERTY: &str = "wabridge_revision";
/// The agent last written: the owner is written again only when this changes.
pub const AGENT_PROPERTY: &str = "wabridge_agent";
/// Every custom ticket property wabridge writes (create them in the portal).
pub const CUSTOM_PROPERTIES: [&str; 10] = [
    CONVERSATION_PROPERTY,
    REVISION_PROPERTY,
    AGENT_PROPERTY,
    "wabridge_origin",
    "wabridge_opened_by",
    "wabridge_first_response_ms",
    "wabridge_outcome",
    "wabridge_close_reason",
    "wabridge_sla_breached_at",
    "wabridge_tags",
];

/// HubSpot's support pipeline and its "New" and "Closed" stages in a new portal.
pub const DEFAULT_PIPELINE: &str = "0";
pub const DEFAULT_OPEN_STAGE: &str = "1";
pub const DEFAULT_CLOSED_STAGE: &str = "4";

/// Where conversations go in HubSpot: `HUBSPOT_TICKET_*` settings and the mapping's `[hubspot]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSettings {
    pub pipeline: String,
    pub open_stage: String,
    pub closed_stage: String,
    /// Agent id → owner id.
    pub owners: BTreeMap<String, String>,
    /// Outcome → stage id.
    pub outcome_stages: BTreeMap<String, String>,
}

impl Default for TicketSettings {
    fn default() -> Self {
        TicketSettings {
            pipeline: DEFAULT_PIPELINE.into(),
            open_stage: DEFAULT_OPEN_STAGE.into(),
            closed_stage: DEFAULT_CLOSED_STAGE.into(),
            owners: BTreeMap::new(),
            outcome_stages: BTreeMap::new(),
        }
    }
}

impl TicketSettings {
    /// The defaults with the mapping's owners and outcome stages.
    pub fn from_mapping(hubspot: &HubSpotTickets) -> Self {
        TicketSettings {
            owners: hubspot.owners.clone(),
            outcome_stages: hubspot.ticket_stages.clone(),
            ..TicketSettings::default()
        }
    }

    /// From `HUBSPOT_TICKET_PIPELINE`, `HUBSPOT_TICKET_OPEN_STAGE`, `HUBSPOT_TICKET_CLOSED_STAGE`
    /// (HubSpot's defaults when unset) and the mapping's `[hubspot]`.
    pub fn from_settings<F: Fn(&str) -> Option<String>>(
        mapping: &Mapping,
        settings: &config::Settings<F>,
    ) -> Self {
        let or = |name, default: &str| {
            settings
                .optional(name)
                .unwrap_or_else(|| default.to_string())
        };
        TicketSettings {
            pipeline: or(config::HUBSPOT_TICKET_PIPELINE, DEFAULT_PIPELINE),
            open_stage: or(config::HUBSPOT_TICKET_OPEN_STAGE, DEFAULT_OPEN_STAGE),
            closed_stage: or(config::HUBSPOT_TICKET_CLOSED_STAGE, DEFAULT_CLOSED_STAGE),
            ..TicketSettings::from_mapping(&mapping.hubspot)
        }
    }

    /// The stage the conversation's state asks for: its outcome's when mapped, else closed or
    /// open.
    pub fn stage(&self, r: &ConversationRecord) -> &str {
        if let Some(stage) = r.outcome.as_ref().and_then(|o| self.outcome_stages.get(o)) {
            return stage;
        }
        if r.is_open() {
            &self.open_stage
        } else {
            &self.closed_stage
        }
    }

    /// Every stage id the settings name (for `crm check`).
    pub fn stages(&self) -> Vec<&str> {
        let mut all: Vec<&str> = [self.open_stage.as_str(), self.closed_stage.as_str()]
            .into_iter()
            .chain(self.outcome_stages.values().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// What the ticket already holds, as far as wabridge knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The ticket exists.
    pub exists: bool,
    pub agent: Option<String>,
}

/// The ticket's properties for `r` (strings, as HubSpot takes them), and the agent that has no
/// owner in the mapping when the owner would have been written.
pub fn ticket_properties(
    r: &ConversationRecord,
    settings: &TicketSettings,
    written: &Written,
) -> (Map<String, Value>, Option<String>) {
    let mut p = Map::new();
    let mut put = |k: &str, v: String| {
        p.insert(k.to_string(), Value::String(v));
    };
    put(CONVERSATION_PROPERTY, r.id.clone());
    put(REVISION_PROPERTY, r.revision.to_string());
    let number = r.display_number.as_deref().unwrap_or(&r.number);
    put("subject", format!("WhatsApp conversation on {number}"));
    put(
        "content",
        format!(
            "WhatsApp conversation {}: {} messages from the contact, {} from the business.",
            r.id, r.inbound_count, r.outbound_count
        ),
    );
    if let Some(o) = r.origin {
        put("wabridge_origin", o.as_str().into());
    }
    if let Some(by) = r.opened_by {
        put("wabridge_opened_by", by.as_str().into());
    }
    if let Some(ms) = r.first_response_ms {
        put("wabridge_first_response_ms", ms.to_string());
    }
    if let Some(o) = &r.outcome {
        put("wabridge_outcome", o.clone());
    }
    if let Some(reason) = r.close_reason {
        put("wabridge_close_reason", reason.as_str().into());
    }
    // Text, `;`-separated as HubSpot writes multiple values: a checkbox property would refuse
    // (400) a tag added to the catalogue before its option was added in the portal.
    put("wabridge_tags", r.tags.join(";"));
    if let Some(at) = r.sla_breached_at {
        // A datetime property: HubSpot takes epoch milliseconds.
        put("wabridge_sla_breached_at", at.to_string());
    }
    let decided = r.closed_at.is_some()
        || r.outcome
            .as_ref()
            .is_some_and(|o| settings.outcome_stages.contains_key(o));
    if !written.exists || decided {
        put("hs_pipeline", settings.pipeline.clone());
        put("hs_pipeline_stage", settings.stage(r).to_string());
    }
    let mut unowned = None;
    if let Some(agent) = &r.agent {
        put(AGENT_PROPERTY, agent.clone());
        if written.agent.as_deref() != Some(agent.as_str()) {
            match settings.owners.get(agent) {
                Some(owner) => put("hubspot_owner_id", owner.clone()),
                None => unowned = Some(agent.clone()),
            }
        }
    }
    (p, unowned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wabridge_core::conversations::CloseReason;
    use wabridge_core::conversations::{Origin, Party};

    fn record() -> ConversationRecord {
        ConversationRecord {
            id: "cnv_1".into(),
            contact_id: "c1".into(),
            number: "106540352242922".into(),
            display_number: Some("+52 55 1234 0000".into()),
            opened_at: 1_000,
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

    fn settings() -> TicketSettings {
        TicketSettings {
            owners: [("ana".to_string(), "7001".to_string())].into(),
            outcome_stages: [("converted".to_string(), "closedwon".to_string())].into(),
            ..TicketSettings::default()
        }
    }

    #[test]
    fn a_new_ticket_gets_pipeline_open_stage_owner_and_the_conversation_properties() {
        let (p, unowned) = ticket_properties(&record(), &settings(), &Written::default());
        assert_eq!(p["hs_pipeline"], "0");
        assert_eq!(p["hs_pipeline_stage"], "1");
        assert_eq!(p["hubspot_owner_id"], "7001");
        assert_eq!(p[CONVERSATION_PROPERTY], "cnv_1");
        assert_eq!(p[REVISION_PROPERTY], "3");
        assert_eq!(p["wabridge_origin"], "ctwa_ad");
        assert_eq!(p["wabridge_opened_by"], "customer");
        assert_eq!(p["wabridge_first_response_ms"], "90000");
        assert_eq!(p["wabridge_tags"], "menu;ventas");
        assert_eq!(p["wabridge_sla_breached_at"], "1763780900000");
        assert_eq!(p["subject"], "WhatsApp conversation on +52 55 1234 0000");
        assert_eq!(unowned, None);
        assert!(p.values().all(Value::is_string));
    }

    #[test]
    fn an_existing_open_ticket_keeps_the_stage_and_owner_people_chose() {
        let written = Written {
            exists: true,
            agent: Some("ana".into()),
        };
        let (p, _) = ticket_properties(&record(), &settings(), &written);
        assert!(p.get("hs_pipeline_stage").is_none(), "{p:?}");
        assert!(p.get("hubspot_owner_id").is_none(), "{p:?}");
        // Closing moves it to the closed stage; an outcome with a stage wins over that.
        let mut closed = record();
        closed.closed_at = Some(5_000);
        closed.close_reason = Some(CloseReason::Idle);
        let (p, _) = ticket_properties(&closed, &settings(), &written);
        assert_eq!(p["hs_pipeline_stage"], "4");
        assert_eq!(p["wabridge_close_reason"], "idle");
        closed.outcome = Some("converted".into());
        let (p, _) = ticket_properties(&closed, &settings(), &written);
        assert_eq!(p["hs_pipeline_stage"], "closedwon");
        assert_eq!(p["wabridge_outcome"], "converted");
        // An outcome without a stage leaves an open ticket where it is.
        let mut open = record();
        open.outcome = Some("resolved".into());
        let (p, _) = ticket_properties(&open, &settings(), &written);
        assert!(p.get("hs_pipeline_stage").is_none(), "{p:?}");
    }

    #[test]
    fn an_agent_without_an_owner_leaves_it_unset_and_is_named() {
        let mut r = record();
        r.agent = Some("bruno".into());
        let written = Written {
            exists: true,
            agent: Some("ana".into()),
        };
        let (p, unowned) = ticket_properties(&r, &settings(), &written);
        assert!(p.get("hubspot_owner_id").is_none());
        assert_eq!(p[AGENT_PROPERTY], "bruno");
        assert_eq!(unowned.as_deref(), Some("bruno"));
    }
}
