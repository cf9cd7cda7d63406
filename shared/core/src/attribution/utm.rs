//! UTM parameters and the touch they describe: where one conversation came from.

use serde::{Deserialize, Serialize};

/// Longest UTM value kept (GA4 truncates at 100 characters; CRMs' text properties take more,
/// but a longer value is almost always a pasted URL by mistake).
pub const MAX_UTM_LEN: usize = 100;

/// The five standard UTM parameters. `source`, `medium` and `campaign` identify a campaign; the
/// report groups by them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utm {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm_term: Option<String>,
}

/// How a touch reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchOrigin {
    /// A click-to-WhatsApp ad or post: the message carried Meta's `referral` object.
    Referral,
    /// A tracked link or QR code: the message carried one of our reference codes.
    Link,
}

/// One attributed touch: what the first message of a conversation told us about its origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Touch {
    pub origin: TouchOrigin,
    #[serde(flatten)]
    pub utm: Utm,
    /// Meta's click id of a click-to-WhatsApp ad: what the Conversions API attributes on.
    pub ctwa_clid: Option<String>,
    /// Our reference code, for link touches.
    pub ref_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbclid: Option<String>,
    /// Where a tracked link was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_page: Option<String>,
    /// The raw `referral` object as Meta sent it (ad id, URL, headline, body, media...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<serde_json::Value>,
    /// When the message carrying it was sent (Unix ms).
    pub at: i64,
}

/// Trims, drops empty values and bounds the length (on a char boundary).
pub fn clean(value: Option<&str>) -> Option<String> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.chars().take(MAX_UTM_LEN).collect())
}

/// `clean`, lower-cased: sources and mediums are case-insensitive names (`Facebook` and
/// `facebook` must land in one report row).
pub fn clean_lower(value: Option<&str>) -> Option<String> {
    clean(value).map(|v| v.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_bounded_and_empty_is_none() {
        assert_eq!(clean(Some("  summer ")), Some("summer".into()));
        assert_eq!(clean(Some("   ")), None);
        assert_eq!(clean(None), None);
        let long = "é".repeat(150);
        assert_eq!(clean(Some(&long)).unwrap().chars().count(), MAX_UTM_LEN);
        assert_eq!(clean_lower(Some("FaceBook")), Some("facebook".into()));
    }
}
