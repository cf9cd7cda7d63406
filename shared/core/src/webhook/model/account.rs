//! The other fields: template status, phone quality, user preferences and account updates.

use serde::{Deserialize, Serialize};

use super::*;

/// `message_template_status_update` value, and the template's other updates (quality,
/// category, components), which name the template the same way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    /// As Meta sent it, so a status Meta adds later is kept by name; [`Self::event_kind`] types it.
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub message_template_id: Option<String>,
    #[serde(default)]
    pub message_template_name: Option<String>,
    #[serde(default)]
    pub message_template_language: Option<String>,
    #[serde(default)]
    pub message_template_category: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub other_info: Option<serde_json::Value>,
    /// `message_template_quality_update`: GREEN, YELLOW, RED or UNKNOWN.
    #[serde(default)]
    pub previous_quality_score: Option<String>,
    #[serde(default)]
    pub new_quality_score: Option<String>,
    /// `template_category_update`. Done: `previous_category` (or `old_category`) →
    /// `new_category`. A notice 24 hours ahead carries `correct_category`, the coming one.
    #[serde(default)]
    pub previous_category: Option<String>,
    #[serde(default)]
    pub old_category: Option<String>,
    #[serde(default)]
    pub new_category: Option<String>,
    #[serde(default)]
    pub correct_category: Option<String>,
    /// With `correct_category`: when it takes effect (Unix seconds).
    #[serde(default, deserialize_with = "lenient::int")]
    pub category_update_timestamp: Option<i64>,
    /// `message_template_components_update`: the edited body, header text and footer.
    #[serde(default)]
    pub message_template_element: Option<String>,
    #[serde(default)]
    pub message_template_title: Option<String>,
    #[serde(default)]
    pub message_template_footer: Option<String>,
    /// `message_template_components_update`: the buttons, as Meta sent them.
    #[serde(default)]
    pub message_template_buttons: Option<serde_json::Value>,
}

impl TemplateStatusUpdate {
    /// The typed `event`; `Other` for one we do not know yet.
    pub fn event_kind(&self) -> Option<TemplateEvent> {
        let name = self.event.as_deref()?;
        Some(
            serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase()))
                .unwrap_or(TemplateEvent::Other),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateEvent {
    Approved,
    Rejected,
    Pending,
    Paused,
    Disabled,
    Flagged,
    InAppeal,
    Reinstated,
    PendingDeletion,
    Deleted,
    LimitExceeded,
    #[serde(other)]
    Other,
}

/// `phone_number_quality_update` value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QualityUpdate {
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_phone_number: Option<String>,
    /// FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE, ONBOARDING, … (kept as sent).
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub current_limit: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_daily_conversation_per_phone: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_daily_conversations_per_business: Option<i64>,
    #[serde(default)]
    pub old_limit: Option<String>,
}

/// One `value.user_preferences[]` item of the `user_preferences` field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserPreference {
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// `marketing_messages`.
    #[serde(default)]
    pub category: Option<String>,
    /// As Meta sent it (`stop`, `resume`, and values Meta adds, such as `signup`), so a new one
    /// is kept by name; [`Self::value_kind`] types it.
    #[serde(default, deserialize_with = "lenient::string")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub timestamp: Option<i64>,
}

impl UserPreference {
    /// The typed `value`; `Other` for one we do not know yet.
    pub fn value_kind(&self) -> Option<PreferenceValue> {
        Some(match self.value.as_deref()? {
            "stop" => PreferenceValue::Stop,
            "resume" => PreferenceValue::Resume,
            _ => PreferenceValue::Other,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceValue {
    Stop,
    Resume,
    #[serde(other)]
    Other,
}

/// `account_update` value (bans, violations, restrictions, verification, …). Only the common
/// members are typed; the rest stay in the event's raw JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountUpdate {
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub ban_info: Option<serde_json::Value>,
    #[serde(default)]
    pub violation_info: Option<serde_json::Value>,
    #[serde(default)]
    pub restriction_info: Option<serde_json::Value>,
    #[serde(default)]
    pub lock_info: Option<serde_json::Value>,
}
