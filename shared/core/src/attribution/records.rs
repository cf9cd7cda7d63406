//! The canonical records attribution produces, in the conventions of [`crate::records`]
//! (`"kind"` tag, `v`, Unix ms): `attribution` (first and last touch of a contact) and `lead`.
//!
//! Contract of `wabridge records --json`: attribution lines carry `kind`, `contact_id`, `touch`
//! (`first` | `last`), `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, `ctwa_clid`,
//! `ref_code` (null when absent, never missing); lead lines carry `kind` and `contact_id` and the
//! same attribution fields.

use serde::{Deserialize, Serialize};

use super::utm::{Touch, TouchOrigin};
use crate::records::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchKind {
    First,
    Last,
}

impl TouchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TouchKind::First => "first",
            TouchKind::Last => "last",
        }
    }
}

/// A contact's first or last touch. One record per contact and touch kind: a later one with the
/// same [`AttributionRecord::record_key`] replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionRecord {
    #[serde(default)]
    pub v: Version,
    /// The inbound message that carried the touch.
    pub event_id: String,
    pub contact_id: String,
    pub touch: TouchKind,
    pub origin: TouchOrigin,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub ctwa_clid: Option<String>,
    pub ref_code: Option<String>,
    pub gclid: Option<String>,
    pub fbclid: Option<String>,
    pub landing_page: Option<String>,
    /// Meta's raw `referral` object for ad touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<serde_json::Value>,
    /// When the touch happened (Unix ms).
    pub at: i64,
}

impl AttributionRecord {
    pub fn new(event_id: &str, contact_id: &str, touch: TouchKind, t: &Touch) -> Self {
        AttributionRecord {
            v: Version::default(),
            event_id: event_id.to_string(),
            contact_id: contact_id.to_string(),
            touch,
            origin: t.origin,
            utm_source: t.utm.utm_source.clone(),
            utm_medium: t.utm.utm_medium.clone(),
            utm_campaign: t.utm.utm_campaign.clone(),
            utm_content: t.utm.utm_content.clone(),
            utm_term: t.utm.utm_term.clone(),
            ctwa_clid: t.ctwa_clid.clone(),
            ref_code: t.ref_code.clone(),
            gclid: t.gclid.clone(),
            fbclid: t.fbclid.clone(),
            landing_page: t.landing_page.clone(),
            referral: t.referral.clone(),
            at: t.at,
        }
    }

    pub fn record_key(&self) -> String {
        format!("attribution:{}:{}", self.contact_id, self.touch.as_str())
    }
}

/// A lead (HubSpot: a deal associated to the contact) carrying the attribution of the
/// conversation that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadRecord {
    #[serde(default)]
    pub v: Version,
    /// The inbound message that created it; also its identity (`lead:<event_id>`).
    pub event_id: String,
    pub contact_id: String,
    /// Which policy created it: `first_conversation` or `attributed`.
    pub reason: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub ctwa_clid: Option<String>,
    pub ref_code: Option<String>,
    /// Whether the credit comes from a touch in this conversation (`true`) or from the contact's
    /// last touch within the attribution window (`false`); meaningless when unattributed.
    pub touch_in_conversation: bool,
    pub created_at: i64,
    /// The conversation the message that created it opened or joined (`cnv_…`), set by
    /// crm-sync when conversations are on.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

impl LeadRecord {
    pub fn record_key(&self) -> String {
        format!("lead:{}", self.event_id)
    }
}

/// What attribution hands to the CRM sync: serialises with `"kind": "attribution" | "lead"`,
/// exactly as the `local` store and the `webhook` adapter carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttributionOutput {
    Attribution(AttributionRecord),
    Lead(LeadRecord),
}

impl AttributionOutput {
    pub fn record_key(&self) -> String {
        match self {
            AttributionOutput::Attribution(a) => a.record_key(),
            AttributionOutput::Lead(l) => l.record_key(),
        }
    }

    pub fn contact_id(&self) -> &str {
        match self {
            AttributionOutput::Attribution(a) => &a.contact_id,
            AttributionOutput::Lead(l) => &l.contact_id,
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("records serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::utm::Utm;

    #[test]
    fn contract_fields_are_present_even_when_null() {
        let t = Touch {
            origin: TouchOrigin::Referral,
            utm: Utm {
                utm_source: Some("facebook".into()),
                utm_medium: Some("paid_social".into()),
                ..Default::default()
            },
            ctwa_clid: Some("clid".into()),
            ref_code: None,
            gclid: None,
            fbclid: None,
            landing_page: None,
            referral: None,
            at: 5,
        };
        let r = AttributionOutput::Attribution(AttributionRecord::new(
            "e1",
            "c1",
            TouchKind::First,
            &t,
        ));
        let v = r.to_value();
        assert_eq!(v["kind"], "attribution");
        assert_eq!(v["touch"], "first");
        assert_eq!(v["v"], 1);
        for key in [
            "contact_id",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "ctwa_clid",
            "ref_code",
        ] {
            assert!(v.as_object().unwrap().contains_key(key), "{key} missing");
        }
        assert_eq!(r.record_key(), "attribution:c1:first");
        let back: AttributionOutput = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
