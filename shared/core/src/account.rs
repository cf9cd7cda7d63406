//! `account_update` as the CRM's `account` record: what happened to the WhatsApp Business
//! Account (restrictions, violations, bans, offboarding, partner and pricing tier changes).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::records::Version;

/// One `account_update` event. Meta keeps adding events and extras: `event` is kept as sent and
/// `details` carries the whole value, so nothing Meta said is lost.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountRecord {
    #[serde(default)]
    pub v: Version,
    pub event_id: String,
    /// `entry.id`: the WhatsApp Business Account.
    pub waba_id: String,
    /// `ACCOUNT_RESTRICTION`, `ACCOUNT_VIOLATION`, `DISABLED_UPDATE`, `ACCOUNT_OFFBOARDED`, …
    pub event: Option<String>,
    /// The number concerned, when Meta names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `restriction_info[].restriction_type`, for alerts that match on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<String>,
    /// `violation_info.violation_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    /// `ban_info.waba_ban_state` (`DISABLE`, `REINSTATE`, `SCHEDULE_FOR_DISABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_state: Option<String>,
    /// `entry.time` (Unix ms).
    pub at: Option<i64>,
    /// The value as Meta sent it.
    pub details: Value,
}

impl AccountRecord {
    /// The record of an `account_update` value (`raw`), event key `event_id`.
    pub fn of_value(event_id: &str, waba_id: &str, at: Option<i64>, raw: Value) -> AccountRecord {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let restrictions = raw
            .get("restriction_info")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|r| r.get("restriction_type").and_then(text))
                    .collect()
            })
            .unwrap_or_default();
        AccountRecord {
            v: Version::default(),
            event_id: event_id.to_string(),
            waba_id: waba_id.to_string(),
            event: raw.get("event").and_then(text),
            phone_number: raw.get("phone_number").and_then(|v| match v {
                Value::Number(n) => Some(n.to_string()),
                other => text(other),
            }),
            restrictions,
            violation: raw.pointer("/violation_info/violation_type").and_then(text),
            ban_state: raw.pointer("/ban_info/waba_ban_state").and_then(text),
            at,
            details: raw,
        }
    }
}
