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
mod tests {
    use super::*;
    use serde_json::json;

    fn meta_example() -> Referral {
        // The referral of the official "Text Message from Click to WhatsApp Ad" example.
        parse(json!({
            "source_url": "https://fb.me/3cr4Wqqkv",
            "source_id": "120226305854810726",
            "source_type": "ad",
            "body": "Summer Succulents are here!",
            "headline": "Chat with us",
            "media_type": "image",
            "image_url": "https://scontent.xx.fbcdn.net/v/t45.1...",
            "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e",
            "welcome_message": {"text": "Hi there! Let us know how we can help!"}
        }))
    }

    fn parse(raw: serde_json::Value) -> Referral {
        serde_json::from_value(raw).expect("the webhook model reads any referral object")
    }

    #[test]
    fn facebook_ad_maps_to_paid_social_with_ad_id_and_headline() {
        let t = ReferralRules::default().touch(&meta_example(), 1_000);
        assert_eq!(t.origin, TouchOrigin::Referral);
        assert_eq!(t.utm.utm_source.as_deref(), Some("facebook"));
        assert_eq!(t.utm.utm_medium.as_deref(), Some("paid_social"));
        assert_eq!(t.utm.utm_campaign.as_deref(), Some("120226305854810726"));
        assert_eq!(t.utm.utm_content.as_deref(), Some("Chat with us"));
        assert_eq!(t.ctwa_clid.as_deref(), Some("Aff-n8ZTODiE79d22KtAwQKj9e"));
        // Raw fields are kept, including ones we do not model.
        let raw = t.referral.unwrap();
        assert_eq!(
            raw["welcome_message"]["text"],
            "Hi there! Let us know how we can help!"
        );
        assert_eq!(raw["body"], "Summer Succulents are here!");
        assert_eq!(t.at, 1_000);
    }

    #[test]
    fn instagram_hosts_map_to_instagram() {
        let rules = ReferralRules::default();
        for url in [
            "https://www.instagram.com/p/C1a2b3/",
            "https://instagram.com/reel/xyz",
            "http://l.instagram.com/?u=x",
            "https://ig.me/abc",
            "instagram.com/p/abc",
        ] {
            let r = Referral {
                source_url: Some(url.into()),
                ..Default::default()
            };
            assert_eq!(
                rules.utm(&r).utm_source.as_deref(),
                Some("instagram"),
                "{url}"
            );
        }
    }

    #[test]
    fn facebook_hosts_map_to_facebook() {
        let rules = ReferralRules::default();
        for url in [
            "https://fb.me/x",
            "https://m.facebook.com/ads/1",
            "https://www.facebook.com/p",
            "https://fb.watch/v",
        ] {
            let r = Referral {
                source_url: Some(url.into()),
                ..Default::default()
            };
            assert_eq!(
                rules.utm(&r).utm_source.as_deref(),
                Some("facebook"),
                "{url}"
            );
        }
    }

    #[test]
    fn lookalike_hosts_are_not_fooled_by_suffixes() {
        let rules = ReferralRules::default();
        let r = Referral {
            source_url: Some("https://notfacebook.com/x".into()),
            ..Default::default()
        };
        assert_eq!(rules.utm(&r).utm_source.as_deref(), Some("meta"));
        let r = Referral {
            source_url: Some("https://facebook.com.evil.example/x".into()),
            ..Default::default()
        };
        assert_eq!(rules.utm(&r).utm_source.as_deref(), Some("meta"));
    }

    #[test]
    fn unknown_or_missing_url_uses_the_default_source() {
        let rules = ReferralRules::default();
        assert_eq!(
            rules.utm(&Referral::default()).utm_source.as_deref(),
            Some("meta")
        );
        let r = Referral {
            source_url: Some("::not a url::".into()),
            ..Default::default()
        };
        assert_eq!(rules.utm(&r).utm_source.as_deref(), Some("meta"));
    }

    #[test]
    fn post_is_organic_social_and_other_types_are_social() {
        let rules = ReferralRules::default();
        let r = Referral {
            source_type: Some("post".into()),
            ..Default::default()
        };
        assert_eq!(rules.utm(&r).utm_medium.as_deref(), Some("organic_social"));
        let r = Referral {
            source_type: Some("AD".into()),
            ..Default::default()
        };
        assert_eq!(rules.utm(&r).utm_medium.as_deref(), Some("paid_social"));
        let r = Referral {
            source_type: Some("story".into()),
            ..Default::default()
        };
        assert_eq!(rules.utm(&r).utm_medium.as_deref(), Some("social"));
        assert_eq!(
            rules.utm(&Referral::default()).utm_medium.as_deref(),
            Some("social")
        );
    }

    #[test]
    fn missing_headline_and_id_leave_campaign_and_content_empty() {
        let u = ReferralRules::default().utm(&Referral::default());
        assert_eq!(u.utm_campaign, None);
        assert_eq!(u.utm_content, None);
    }

    #[test]
    fn rules_from_toml_override_defaults_first_match_wins() {
        let rules: ReferralRules = toml::from_str(
            r#"
            default_source = "meta_ads"
            campaign = "ctwa_{source_id}"
            content = "{media_type}:{headline}"

            [[rules]]
            match = { source_id = "120226305854810726" }
            set = { utm_campaign = "summer_succulents" }

            [[rules]]
            match = { source_type = "ad" }
            set = { utm_campaign = "never_reached_for_that_ad", utm_term = "{body}" }

            [[rules]]
            match = { host = "instagram.com", headline_contains = "promo" }
            set = { utm_medium = "Influencer", utm_source = "IG" }
            "#,
        )
        .unwrap();
        // Defaults not named in the file are kept.
        assert_eq!(rules.ad_medium, "paid_social");
        assert_eq!(rules.hosts.len(), ReferralRules::default().hosts.len());

        let t = rules.touch(&meta_example(), 0);
        assert_eq!(t.utm.utm_campaign.as_deref(), Some("summer_succulents"));
        assert_eq!(t.utm.utm_content.as_deref(), Some("image:Chat with us"));
        assert_eq!(t.utm.utm_term, None, "only the first matching rule applies");

        let other_ad = Referral {
            source_type: Some("ad".into()),
            source_id: Some("9".into()),
            body: Some("Hot sale".into()),
            ..Default::default()
        };
        let u = rules.utm(&other_ad);
        assert_eq!(u.utm_campaign.as_deref(), Some("never_reached_for_that_ad"));
        assert_eq!(u.utm_term.as_deref(), Some("Hot sale"));
        assert_eq!(u.utm_source.as_deref(), Some("meta_ads"));

        let ig_post = Referral {
            source_type: Some("post".into()),
            source_id: Some("77".into()),
            source_url: Some("https://www.instagram.com/p/1".into()),
            headline: Some("Big PROMO today".into()),
            ..Default::default()
        };
        let u = rules.utm(&ig_post);
        assert_eq!(u.utm_source.as_deref(), Some("ig"));
        assert_eq!(u.utm_medium.as_deref(), Some("influencer"));
        assert_eq!(u.utm_campaign.as_deref(), Some("ctwa_77"));
    }

    #[test]
    fn unknown_keys_in_rules_are_rejected() {
        let err =
            toml::from_str::<ReferralRules>("[[rules]]\nmatch = { sourceid = \"1\" }\nset = {}\n");
        assert!(err.is_err());
    }

    #[test]
    fn odd_field_types_never_crash() {
        let raw = parse(
            json!({"source_id": 12345, "source_type": "ad", "source_url": "https://fb.me/x", "ctwa_clid": "  "}),
        );
        let t = ReferralRules::default().touch(&raw, 0);
        assert_eq!(t.utm.utm_source.as_deref(), Some("facebook"));
        // The webhook model reads a numeric id as its digits (as ingest does), so the default
        // campaign template `{source_id}` has a value.
        assert_eq!(t.utm.utm_campaign.as_deref(), Some("12345"));
        assert_eq!(t.ctwa_clid, None, "a blank click id is no click id");
        let raw = parse(
            json!({"source_type": "ad", "headline": 7, "welcome_message": "hola",
            "ad_new_member": {"x": 1}}),
        );
        assert_eq!(raw.headline.as_deref(), Some("7"));
        let t = ReferralRules::default().touch(&raw, 0);
        assert_eq!(t.utm.utm_medium.as_deref(), Some("paid_social"));
        // Stored as sent, a member Meta added since included.
        assert_eq!(t.referral.unwrap()["ad_new_member"], json!({"x": 1}));
        // A referral that is not an object is no referral; the message still reads.
        let m: crate::webhook::model::Message =
            serde_json::from_value(json!({"id": "w", "type": "text", "text": {"body": "x"},
                "referral": "referral"}))
            .unwrap();
        assert_eq!(m.referral, None);
    }
}
