//! HubSpot shapes for attribution records, for the HubSpot CRM adapter to send (CRM v3):
//! - a lead becomes a deal associated to the contact: `POST /crm/v3/objects/deals` with
//!   `properties` and `associations: [{to: {id}, types: [{associationCategory: "HUBSPOT_DEFINED",
//!   associationTypeId: 3}]}]` (3 = deal → contact);
//! - a first / last touch becomes contact properties (`wabridge_first_utm_source`, …,
//!   `wabridge_last_ctwa_clid`) sent with the contact upsert (`batch/upsert`), so they can be
//!   reported on in HubSpot. Property values are strings; nulls are left out.
//!
//! The property names are custom properties the portal needs (created once, see
//! docs/attribution.md); HubSpot's own `hs_analytics_source` is read-only.

use serde_json::{json, Map, Value};

use wabridge_core::attribution::records::LeadRecord;

/// `associationTypeId` of deal → contact (HUBSPOT_DEFINED).
pub const DEAL_TO_CONTACT: u32 = 3;

/// Where new deals land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealSettings {
    pub pipeline: String,
    pub stage: String,
}

impl Default for DealSettings {
    fn default() -> Self {
        DealSettings {
            pipeline: "default".into(),
            stage: "appointmentscheduled".into(),
        }
    }
}

impl DealSettings {
    /// From `HUBSPOT_DEAL_PIPELINE` and `HUBSPOT_DEAL_STAGE` (HubSpot's defaults otherwise).
    pub fn from_settings<F: Fn(&str) -> Option<String>>(
        settings: &wabridge_core::config::Settings<F>,
    ) -> Self {
        let default = DealSettings::default();
        DealSettings {
            pipeline: settings
                .optional(wabridge_core::config::HUBSPOT_DEAL_PIPELINE)
                .unwrap_or(default.pipeline),
            stage: settings
                .optional(wabridge_core::config::HUBSPOT_DEAL_STAGE)
                .unwrap_or(default.stage),
        }
    }
}

fn put(props: &mut Map<String, Value>, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        props.insert(name.to_string(), json!(v));
    }
}

/// Body of `POST /crm/v3/objects/deals` for a lead of the HubSpot contact `hubspot_contact_id`.
pub fn deal_body(lead: &LeadRecord, hubspot_contact_id: &str, settings: &DealSettings) -> Value {
    let mut props = Map::new();
    let campaign = lead
        .utm_campaign
        .as_deref()
        .or(lead.utm_source.as_deref())
        .unwrap_or("direct");
    props.insert(
        "dealname".into(),
        json!(format!("WhatsApp lead: {campaign}")),
    );
    props.insert("pipeline".into(), json!(settings.pipeline));
    props.insert("dealstage".into(), json!(settings.stage));
    props.insert("wabridge_lead_id".into(), json!(lead.record_key()));
    put(&mut props, "utm_source", &lead.utm_source);
    put(&mut props, "utm_medium", &lead.utm_medium);
    put(&mut props, "utm_campaign", &lead.utm_campaign);
    put(&mut props, "utm_content", &lead.utm_content);
    put(&mut props, "utm_term", &lead.utm_term);
    put(&mut props, "ctwa_clid", &lead.ctwa_clid);
    put(&mut props, "wabridge_ref_code", &lead.ref_code);
    json!({
        "properties": props,
        "associations": [{
            "to": {"id": hubspot_contact_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": DEAL_TO_CONTACT}]
        }]
    })
}

pub use crate::timeline::contact_properties;

#[cfg(test)]
mod tests {
    use super::*;
    use wabridge_core::attribution::records::{AttributionRecord, TouchKind};
    use wabridge_core::attribution::utm::{Touch, TouchOrigin, Utm};

    fn lead() -> LeadRecord {
        LeadRecord {
            v: Default::default(),
            event_id: "evt-1".into(),
            contact_id: "c1".into(),
            reason: "attributed".into(),
            utm_source: Some("facebook".into()),
            utm_medium: Some("paid_social".into()),
            utm_campaign: Some("summer".into()),
            utm_content: None,
            utm_term: None,
            ctwa_clid: Some("clid".into()),
            ref_code: None,
            touch_in_conversation: true,
            created_at: 1,
            conversation_id: None,
        }
    }

    #[test]
    fn deal_is_associated_to_the_contact_with_utm_properties() {
        let b = deal_body(&lead(), "501", &DealSettings::default());
        assert_eq!(b["properties"]["dealname"], "WhatsApp lead: summer");
        assert_eq!(b["properties"]["utm_source"], "facebook");
        assert_eq!(b["properties"]["ctwa_clid"], "clid");
        assert_eq!(b["properties"]["wabridge_lead_id"], "lead:evt-1");
        assert!(
            b["properties"].get("utm_content").is_none(),
            "nulls are left out"
        );
        assert_eq!(b["associations"][0]["to"]["id"], "501");
        assert_eq!(
            b["associations"][0]["types"][0]["associationCategory"],
            "HUBSPOT_DEFINED"
        );
        assert_eq!(b["associations"][0]["types"][0]["associationTypeId"], 3);
    }

    #[test]
    fn touches_become_prefixed_string_properties() {
        let t = Touch {
            origin: TouchOrigin::Link,
            utm: Utm {
                utm_source: Some("newsletter".into()),
                ..Default::default()
            },
            ctwa_clid: None,
            ref_code: Some("AB23CD".into()),
            gclid: None,
            fbclid: None,
            landing_page: None,
            referral: None,
            at: 42,
        };
        let p = contact_properties(&AttributionRecord::new("e", "c", TouchKind::Last, &t));
        assert_eq!(p["wabridge_last_utm_source"], "newsletter");
        assert_eq!(p["wabridge_last_ref_code"], "AB23CD");
        assert_eq!(p["wabridge_last_at"], "42");
        assert!(!p.contains_key("wabridge_last_utm_medium"));
    }
}
