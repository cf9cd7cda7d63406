//! Click-to-WhatsApp referrals → UTM parameters, by configurable rules.
//!
//! Meta puts a `referral` object on the first message after a click on an ad or a boosted post
//! (`source_type` `ad` or `post`), never on later ones. We map it to UTMs so ads and links land
//! in the same CRM fields and the same report:
//! - `utm_source` from the host of `source_url` (`fb.me`, `facebook.com` → `facebook`;
//!   `instagram.com`, `ig.me` → `instagram`; anything else → `default_source`);
//! - `utm_medium` from `source_type` (`ad` → `paid_social`, `post` → `organic_social`);
//! - `utm_campaign` and `utm_content` from templates over the referral's fields (defaults
//!   `{source_id}` and `{headline}`), so a business can name campaigns without code;
//! - then the first matching `[[referral.rules]]` entry overrides any of them (for example, ad
//!   id `120226305854810726` → campaign `summer_succulents`).
//!
//! `ctwa_clid` and the raw object are always kept.

use serde::{Deserialize, Serialize};

use super::utm::{clean, clean_lower, Touch, TouchOrigin, Utm};

/// Meta's `referral` object, as the webhook model reads it (one type for both).
pub use crate::webhook::model::Referral;

/// What the UTM mapping reads of a referral.
impl Referral {
    /// Host of `source_url`, lower-cased, without a leading `www.`.
    pub fn host(&self) -> Option<String> {
        let raw = self.source_url.as_deref()?.trim();
        let parsed = url::Url::parse(raw)
            .or_else(|_| url::Url::parse(&format!("https://{raw}")))
            .ok()?;
        let host = parsed.host_str()?.to_ascii_lowercase();
        Some(host.strip_prefix("www.").unwrap_or(&host).to_string())
    }

    /// The value of a `{placeholder}` in a template.
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "source_id" => self.source_id.clone(),
            "source_type" => self.source_type.clone(),
            "source_url" => self.source_url.clone(),
            "headline" => self.headline.clone(),
            "body" => self.body.clone(),
            "media_type" => self.media_type.clone(),
            "host" => self.host(),
            _ => None,
        }
    }
}

/// A host (matched as the host itself or any subdomain of it) and the source it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSource {
    pub host: String,
    pub source: String,
}

/// Conditions of a rule: all given ones must hold (case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    pub source_id: Option<String>,
    pub source_type: Option<String>,
    /// Matches the host or a subdomain of it.
    pub host: Option<String>,
    /// Substring of the headline.
    pub headline_contains: Option<String>,
    /// Substring of the body (ad primary text).
    pub body_contains: Option<String>,
}

/// What a rule sets; unset fields keep the default mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "match", default)]
    pub when: RuleMatch,
    pub set: RuleSet,
}

/// The `[referral]` table of the attribution config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferralRules {
    /// Host → source, checked in order; the defaults know Facebook and Instagram.
    pub hosts: Vec<HostSource>,
    /// Source when the host is missing or unknown.
    pub default_source: String,
    /// Medium of `source_type = "ad"`.
    pub ad_medium: String,
    /// Medium of `source_type = "post"`.
    pub post_medium: String,
    /// Medium of any other or missing `source_type`.
    pub other_medium: String,
    /// Template of `utm_campaign`: `{source_id}`, `{headline}`, `{body}`, `{source_type}`,
    /// `{media_type}`, `{host}`, `{source_url}` are replaced; an empty result is no campaign.
    pub campaign: String,
    /// Template of `utm_content`.
    pub content: String,
    /// Overrides, first match wins.
    pub rules: Vec<Rule>,
}

impl Default for ReferralRules {
    fn default() -> Self {
        let host = |h: &str, s: &str| HostSource {
            host: h.into(),
            source: s.into(),
        };
        ReferralRules {
            hosts: vec![
                host("fb.me", "facebook"),
                host("facebook.com", "facebook"),
                host("fb.com", "facebook"),
                host("fb.watch", "facebook"),
                host("instagram.com", "instagram"),
                host("instagr.am", "instagram"),
                host("ig.me", "instagram"),
            ],
            default_source: "meta".into(),
            ad_medium: "paid_social".into(),
            post_medium: "organic_social".into(),
            other_medium: "social".into(),
            campaign: "{source_id}".into(),
            content: "{headline}".into(),
            rules: Vec::new(),
        }
    }
}

fn host_matches(host: &str, pattern: &str) -> bool {
    let pattern = pattern
        .trim()
        .trim_start_matches("www.")
        .to_ascii_lowercase();
    host == pattern || host.ends_with(&format!(".{pattern}"))
}

fn eq_ci(value: Option<&str>, wanted: &str) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted.trim()))
}

fn contains_ci(value: Option<&str>, needle: &str) -> bool {
    value.is_some_and(|v| v.to_lowercase().contains(&needle.to_lowercase()))
}

/// Replaces `{name}` placeholders with the referral's fields (missing fields become empty).
fn render(template: &str, referral: &Referral) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let name = &rest[start + 1..start + end];
                out.push_str(&referral.field(name).unwrap_or_default());
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl RuleMatch {
    fn matches(&self, referral: &Referral, host: Option<&str>) -> bool {
        self.source_id
            .as_deref()
            .is_none_or(|w| eq_ci(referral.source_id.as_deref(), w))
            && self
                .source_type
                .as_deref()
                .is_none_or(|w| eq_ci(referral.source_type.as_deref(), w))
            && self
                .host
                .as_deref()
                .is_none_or(|w| host.is_some_and(|h| host_matches(h, w)))
            && self
                .headline_contains
                .as_deref()
                .is_none_or(|w| contains_ci(referral.headline.as_deref(), w))
            && self
                .body_contains
                .as_deref()
                .is_none_or(|w| contains_ci(referral.body.as_deref(), w))
    }
}

impl ReferralRules {
    /// The source a host means.
    pub fn source_of(&self, host: Option<&str>) -> String {
        host.and_then(|h| self.hosts.iter().find(|hs| host_matches(h, &hs.host)))
            .map(|hs| hs.source.clone())
            .unwrap_or_else(|| self.default_source.clone())
    }

    /// The UTM parameters of a referral.
    pub fn utm(&self, referral: &Referral) -> Utm {
        let host = referral.host();
        let medium = match referral.source_type.as_deref().map(str::trim) {
            Some(t) if t.eq_ignore_ascii_case("ad") => &self.ad_medium,
            Some(t) if t.eq_ignore_ascii_case("post") => &self.post_medium,
            _ => &self.other_medium,
        };
        let mut utm = Utm {
            utm_source: clean_lower(Some(&self.source_of(host.as_deref()))),
            utm_medium: clean_lower(Some(medium)),
            utm_campaign: clean(Some(&render(&self.campaign, referral))),
            utm_content: clean(Some(&render(&self.content, referral))),
            utm_term: None,
        };
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.when.matches(referral, host.as_deref()))
        {
            let set = &rule.set;
            if let Some(v) = &set.utm_source {
                utm.utm_source = clean_lower(Some(v));
            }
            if let Some(v) = &set.utm_medium {
                utm.utm_medium = clean_lower(Some(v));
            }
            if let Some(v) = &set.utm_campaign {
                utm.utm_campaign = clean(Some(&render(v, referral)));
            }
            if let Some(v) = &set.utm_content {
                utm.utm_content = clean(Some(&render(v, referral)));
            }
            if let Some(v) = &set.utm_term {
                utm.utm_term = clean(Some(&render(v, referral)));
            }
        }
        utm
    }

    /// The touch of a message carrying `referral` (Meta's ad or post click) sent at `at` (Unix
    /// ms).
    pub fn touch(&self, referral: &Referral, at: i64) -> Touch {
        Touch {
            origin: TouchOrigin::Referral,
            utm: self.utm(referral),
            ctwa_clid: referral
                .ctwa_clid
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            ref_code: None,
            gclid: None,
            fbclid: None,
            landing_page: None,
            // Stored as Meta sent it (unknown members included).
            referral: serde_json::to_value(referral).ok(),
            at,
        }
    }
}

#[cfg(test)]
mod tests;
