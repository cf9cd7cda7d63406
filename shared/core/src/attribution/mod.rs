//! Attribution: which ad, campaign or link brought each WhatsApp conversation.
//!
//! - [`referral`]: click-to-WhatsApp `referral` objects → UTM parameters by configurable rules;
//! - [`link`] and [`code`]: tracked `wa.me` links whose prefilled text carries a reference code;
//! - [`touch`]: first / last touch per contact, conversation credit, lead creation
//!   ([`on_inbound_message`] is what the CRM sync calls for every inbound message);
//! - [`records`]: the `attribution` and `lead` canonical records;
//! - [`store`]: the port (links, contact state, processed messages, conversions ledger).
//!
//! Configuration is one TOML file (path in `WABRIDGE_ATTRIBUTION`), every key optional; see
//! `docs/attribution.md`.

pub mod code;
pub mod link;
pub mod records;
pub mod referral;
pub mod report;
pub mod store;
pub mod touch;
pub mod utm;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use link::{LinkRequest, LinkSpec, TrackedLink};
pub use records::{AttributionOutput, AttributionRecord, LeadRecord, TouchKind};
pub use referral::{Referral, ReferralRules};
pub use store::{AttributionStore, CodeStatus, ContactState, Credit};
pub use touch::{on_event, on_inbound_message, Attributed, Inbound};
pub use utm::{Touch, TouchOrigin, Utm};

/// When a lead record is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LeadPolicy {
    /// On a contact's first conversation (attributed or not), and again on the first
    /// conversation after the attribution window has passed since the last lead.
    #[default]
    FirstConversation,
    /// Only on a conversation that carries a touch (ad referral or known link code), at most one
    /// per contact per attribution window.
    Attributed,
    /// Never.
    Never,
}

/// The attribution configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttributionConfig {
    /// How long a touch keeps credit: a first touch older than this is replaced by the next
    /// touch, and a conversation without its own touch is credited to the last touch only within
    /// this window.
    pub window_days: u32,
    /// Silence after which the next inbound message starts a new conversation.
    pub conversation_gap_hours: u32,
    pub lead_policy: LeadPolicy,
    /// Default lifetime of a tracked link's code.
    pub link_ttl_days: u32,
    /// The business's WhatsApp number (digits, country code first) for `wa.me` links, when a
    /// link request does not name one.
    pub business_number: Option<String>,
    /// Default prefilled text of a tracked link; the code is appended as `[ref:CODE]`, or put
    /// where `{code}` stands.
    pub prefill: String,
    pub referral: ReferralRules,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig {
            window_days: 30,
            conversation_gap_hours: 24,
            lead_policy: LeadPolicy::FirstConversation,
            link_ttl_days: 90,
            business_number: None,
            prefill: "Hola, quiero información".into(),
            referral: ReferralRules::default(),
        }
    }
}

/// A configuration file that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("attribution config: {0}")]
pub struct ConfigError(pub String);

impl AttributionConfig {
    pub fn from_toml(text: &str) -> Result<AttributionConfig, ConfigError> {
        let config: AttributionConfig =
            toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        if config.window_days == 0 {
            return Err(ConfigError("window_days must be at least 1".into()));
        }
        if config.conversation_gap_hours == 0 {
            return Err(ConfigError(
                "conversation_gap_hours must be at least 1".into(),
            ));
        }
        Ok(config)
    }

    /// Reads the file named by `WABRIDGE_ATTRIBUTION`, or the defaults when it is unset.
    pub fn from_env() -> Result<AttributionConfig, ConfigError> {
        match std::env::var(crate::config::WABRIDGE_ATTRIBUTION) {
            Ok(path) if !path.trim().is_empty() => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError(format!("cannot read {path}: {e}")))?;
                AttributionConfig::from_toml(&text)
            }
            _ => Ok(AttributionConfig::default()),
        }
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.window_days) * 86_400)
    }

    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_days) * 86_400_000
    }

    pub fn conversation_gap_ms(&self) -> i64 {
        i64::from(self.conversation_gap_hours) * 3_600_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_bad_values_are_refused() {
        assert_eq!(
            AttributionConfig::from_toml("").unwrap(),
            AttributionConfig::default()
        );
        let c = AttributionConfig::from_toml(
            "window_days = 7\nlead_policy = \"attributed\"\n[referral]\nad_medium = \"cpc\"\n",
        )
        .unwrap();
        assert_eq!(c.window_days, 7);
        assert_eq!(c.lead_policy, LeadPolicy::Attributed);
        assert_eq!(c.referral.ad_medium, "cpc");
        assert_eq!(c.referral.post_medium, "organic_social");
        assert!(AttributionConfig::from_toml("window_days = 0").is_err());
        assert!(AttributionConfig::from_toml("lead_policy = \"sometimes\"").is_err());
        assert!(AttributionConfig::from_toml("windowdays = 3").is_err());
    }
}
