//! Tracked click-to-chat links: UTM parameters in, a `https://wa.me/<number>?text=…` link out,
//! whose prefilled text carries a reference code (see [`super::code`]).
//!
//! [`LinkRequest`] is what `POST /links` and `wabridge link create` take, unvalidated;
//! [`LinkRequest::validate`] turns it into a [`LinkSpec`] or names the first bad field;
//! [`AttributionStore::create_link`](super::store::AttributionStore::create_link) draws a code that is not taken and stores the [`TrackedLink`].

use serde::{Deserialize, Serialize};

use super::code;
use super::utm::{clean, clean_lower, Utm, MAX_UTM_LEN};
use super::AttributionConfig;

/// Longest prefilled text accepted (the code token is added to it).
pub const MAX_PREFILL_LEN: usize = 500;
/// Longest click id (gclid / fbclid) accepted.
pub const MAX_CLICK_ID_LEN: usize = 512;
/// Longest landing page URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest link lifetime, days.
pub const MAX_TTL_DAYS: u32 = 3650;
/// How many codes are drawn before giving up on finding a free one (with 887 million codes this
/// only fails when the store is broken).
/// Codes drawn before giving up on a free one (a collision is rare: see `code`).
pub(super) const CODE_ATTEMPTS: usize = 8;

/// A link request as received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub gclid: Option<String>,
    pub fbclid: Option<String>,
    /// The page the link is published on (kept for the report and the CRM).
    pub landing_page: Option<String>,
    /// Text the customer's WhatsApp opens with; `{code}` marks where the code goes, otherwise it
    /// is appended as `[ref:CODE]`.
    pub prefilled_text: Option<String>,
    /// The business's WhatsApp number (any formatting; digits with country code are kept).
    pub phone_number: Option<String>,
    /// A registered number (a label or `phone_number_id`, [`crate::numbers`]) the link opens a
    /// chat with: its display number; instead of `phone_number` ([`LinkRequest::resolve_from`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Lifetime of the code in days (default from the config).
    pub expires_in_days: Option<u32>,
}

/// The first problem of a link request: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct LinkError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> LinkError {
    LinkError {
        field,
        problem: problem.into(),
    }
}

/// A validated link request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub utm: Utm,
    pub gclid: Option<String>,
    pub fbclid: Option<String>,
    pub landing_page: Option<String>,
    pub prefill: String,
    /// Digits only.
    pub number: String,
    pub ttl_days: u32,
}

/// A stored tracked link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedLink {
    pub code: String,
    #[serde(flatten)]
    pub utm: Utm,
    pub gclid: Option<String>,
    pub fbclid: Option<String>,
    pub landing_page: Option<String>,
    /// The prefilled text with the code in it.
    pub text: String,
    /// `https://wa.me/<number>?text=<text>`.
    pub url: String,
    pub created_at: i64,
    pub expires_at: i64,
}

fn utm_field(
    field: &'static str,
    value: Option<&str>,
    required: bool,
    lower: bool,
) -> Result<Option<String>, LinkError> {
    match value {
        Some(v) if v.chars().any(char::is_control) => {
            Err(bad(field, "must not contain control characters"))
        }
        Some(v) if v.trim().chars().count() > MAX_UTM_LEN => {
            Err(bad(field, format!("longer than {MAX_UTM_LEN} characters")))
        }
        _ => {
            let v = if lower {
                clean_lower(value)
            } else {
                clean(value)
            };
            if required && v.is_none() {
                return Err(bad(field, "is required"));
            }
            Ok(v)
        }
    }
}

fn click_id(field: &'static str, value: Option<&str>) -> Result<Option<String>, LinkError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_CLICK_ID_LEN {
        return Err(bad(
            field,
            format!("longer than {MAX_CLICK_ID_LEN} characters"),
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad(
            field,
            "may only hold letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(Some(v.to_string()))
}

/// Digits of a phone number written with any of `+ - ( ) . ` and spaces; 8 to 15 digits.
pub fn number_digits(value: &str) -> Result<String, LinkError> {
    let v = value.trim();
    if !v
        .chars()
        .all(|c| c.is_ascii_digit() || "+-(). ".contains(c))
    {
        return Err(bad(
            "phone_number",
            "may only hold digits, spaces and + - ( ) .",
        ));
    }
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    if !(8..=15).contains(&digits.len()) {
        return Err(bad(
            "phone_number",
            "must have 8 to 15 digits, country code first",
        ));
    }
    Ok(digits)
}

impl LinkRequest {
    /// Turns `from` into `phone_number` through the numbers registry: the named number's display
    /// number. Without `from` or `phone_number`, a registry of one number gives it, and one of
    /// several (unless the config has a `business_number`) refuses with `from_required`. `Err`:
    /// the code (`from_required`, `unknown_number`, `invalid_field`) and the message.
    pub fn resolve_from(
        &mut self,
        numbers: Option<&crate::numbers::Numbers>,
        config: &AttributionConfig,
    ) -> Result<(), (&'static str, String)> {
        let from = self.from.take().filter(|f| !f.trim().is_empty());
        let phone = self
            .phone_number
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty());
        let defaulted = config.business_number.is_some();
        let number = match (from, numbers) {
            (Some(_), _) if phone => {
                return Err((
                    "invalid_field",
                    "from: give `from` or `phone_number`, not both".into(),
                ))
            }
            (None, _) if phone || defaulted => return Ok(()),
            (None, None) => return Ok(()),
            (from, Some(numbers)) => numbers.sender_of(from.as_deref().map(str::trim))?,
            (Some(_), None) => {
                return Err((
                    crate::numbers::UNKNOWN_NUMBER,
                    format!(
                        "`from` needs a numbers registry ({}); give `phone_number` instead",
                        crate::config::WABRIDGE_NUMBERS
                    ),
                ))
            }
        };
        self.phone_number = Some(number.display_number.clone());
        Ok(())
    }

    pub fn validate(&self, config: &AttributionConfig) -> Result<LinkSpec, LinkError> {
        let utm = Utm {
            utm_source: utm_field("utm_source", self.utm_source.as_deref(), true, true)?,
            utm_medium: utm_field("utm_medium", self.utm_medium.as_deref(), true, true)?,
            utm_campaign: utm_field("utm_campaign", self.utm_campaign.as_deref(), true, false)?,
            utm_content: utm_field("utm_content", self.utm_content.as_deref(), false, false)?,
            utm_term: utm_field("utm_term", self.utm_term.as_deref(), false, false)?,
        };
        let landing_page = match self
            .landing_page
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(v) if v.len() > MAX_URL_LEN => {
                return Err(bad(
                    "landing_page",
                    format!("longer than {MAX_URL_LEN} characters"),
                ))
            }
            Some(v) => match url::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    Some(u.to_string())
                }
                _ => return Err(bad("landing_page", "must be an absolute http(s) URL")),
            },
        };
        let prefill = self
            .prefilled_text
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(&config.prefill);
        if prefill.chars().count() > MAX_PREFILL_LEN {
            return Err(bad(
                "prefilled_text",
                format!("longer than {MAX_PREFILL_LEN} characters"),
            ));
        }
        if code::find(prefill).is_some() {
            return Err(bad(
                "prefilled_text",
                "must not contain a [ref:…] token: the code is added for you",
            ));
        }
        let number = match (
            self.phone_number.as_deref(),
            config.business_number.as_deref(),
        ) {
            (Some(n), _) if !n.trim().is_empty() => number_digits(n)?,
            (_, Some(n)) if !n.trim().is_empty() => number_digits(n)?,
            _ => {
                return Err(bad(
                    "phone_number",
                    "is required (or set business_number in the attribution config)",
                ))
            }
        };
        let ttl_days = self.expires_in_days.unwrap_or(config.link_ttl_days);
        if ttl_days == 0 || ttl_days > MAX_TTL_DAYS {
            return Err(bad(
                "expires_in_days",
                format!("must be between 1 and {MAX_TTL_DAYS}"),
            ));
        }
        Ok(LinkSpec {
            utm,
            gclid: click_id("gclid", self.gclid.as_deref())?,
            fbclid: click_id("fbclid", self.fbclid.as_deref())?,
            landing_page,
            prefill: prefill.to_string(),
            number,
            ttl_days,
        })
    }
}

/// The prefilled text with `code` in it.
pub fn prefilled_text(prefill: &str, code: &str) -> String {
    if prefill.contains("{code}") {
        prefill.replace("{code}", &code::token(code))
    } else {
        format!("{prefill} {}", code::token(code))
    }
}

/// `https://wa.me/<digits>?text=<percent-encoded text>` (spaces as `%20`, which WhatsApp
/// decodes everywhere; `+` is not decoded as a space by every client).
pub fn wa_me(number: &str, text: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("https://wa.me/{number}?text={encoded}")
}

impl LinkSpec {
    /// The link this spec gives with `code`, created at `now` (Unix ms).
    pub fn link(&self, code: &str, now: i64) -> TrackedLink {
        let text = prefilled_text(&self.prefill, code);
        TrackedLink {
            code: code.to_string(),
            utm: self.utm.clone(),
            gclid: self.gclid.clone(),
            fbclid: self.fbclid.clone(),
            landing_page: self.landing_page.clone(),
            url: wa_me(&self.number, &text),
            text,
            created_at: now,
            expires_at: now + i64::from(self.ttl_days) * 86_400_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LinkRequest {
        LinkRequest {
            utm_source: Some("Newsletter".into()),
            utm_medium: Some("email".into()),
            utm_campaign: Some("buen_fin_2026".into()),
            phone_number: Some("+52 1 55 1234 5678".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_request_gives_a_wa_me_link_with_the_code_in_the_text() {
        let spec = request().validate(&AttributionConfig::default()).unwrap();
        assert_eq!(spec.number, "5215512345678");
        assert_eq!(spec.utm.utm_source.as_deref(), Some("newsletter"));
        let link = spec.link("AB23CD", 1_000);
        assert_eq!(link.text, "Hola, quiero información [ref:AB23CD]");
        assert_eq!(link.url, "https://wa.me/5215512345678?text=Hola%2C%20quiero%20informaci%C3%B3n%20%5Bref%3AAB23CD%5D");
        assert_eq!(link.expires_at, 1_000 + 90 * 86_400_000);
        // The URL decodes back to the text, and the text yields the code.
        let parsed = url::Url::parse(&link.url).unwrap();
        let text = parsed
            .query_pairs()
            .find(|(k, _)| k == "text")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(code::find(&text).unwrap().code, "AB23CD");
    }

    #[test]
    fn code_placeholder_puts_the_code_where_asked() {
        let mut r = request();
        r.prefilled_text = Some("Código {code}: quiero la promo".into());
        let link = r
            .validate(&AttributionConfig::default())
            .unwrap()
            .link("XY34ZW", 0);
        assert_eq!(link.text, "Código [ref:XY34ZW]: quiero la promo");
    }

    #[test]
    fn each_bad_field_is_named() {
        let config = AttributionConfig::default();
        type Breaks = Box<dyn Fn(&mut LinkRequest)>;
        let cases: Vec<(&str, Breaks)> = vec![
            ("utm_source", Box::new(|r| r.utm_source = None)),
            ("utm_medium", Box::new(|r| r.utm_medium = Some("  ".into()))),
            (
                "utm_campaign",
                Box::new(|r| r.utm_campaign = Some("x".repeat(101))),
            ),
            (
                "utm_content",
                Box::new(|r| r.utm_content = Some("a\u{0}b".into())),
            ),
            ("gclid", Box::new(|r| r.gclid = Some("abc def".into()))),
            ("fbclid", Box::new(|r| r.fbclid = Some("x".repeat(513)))),
            (
                "landing_page",
                Box::new(|r| r.landing_page = Some("javascript:alert(1)".into())),
            ),
            (
                "prefilled_text",
                Box::new(|r| r.prefilled_text = Some("x".repeat(501))),
            ),
            (
                "prefilled_text",
                Box::new(|r| r.prefilled_text = Some("hola [ref:ABCDEF]".into())),
            ),
            (
                "phone_number",
                Box::new(|r| r.phone_number = Some("55-ABC".into())),
            ),
            (
                "phone_number",
                Box::new(|r| r.phone_number = Some("12345".into())),
            ),
            ("phone_number", Box::new(|r| r.phone_number = None)),
            ("expires_in_days", Box::new(|r| r.expires_in_days = Some(0))),
        ];
        for (field, edit) in cases {
            let mut r = request();
            edit(&mut r);
            assert_eq!(r.validate(&config).unwrap_err().field, field);
        }
    }

    #[test]
    fn optional_fields_are_kept() {
        let mut r = request();
        r.gclid = Some("Cj0KCQ-abc_1.2".into());
        r.fbclid = Some("IwAR2x".into());
        r.landing_page = Some("https://tienda.example.mx/promo?x=1".into());
        r.phone_number = None;
        r.expires_in_days = Some(7);
        let config = AttributionConfig {
            business_number: Some("+55 11 91234-5678".into()),
            ..Default::default()
        };
        let spec = r.validate(&config).unwrap();
        assert_eq!(spec.number, "5511912345678");
        assert_eq!(spec.gclid.as_deref(), Some("Cj0KCQ-abc_1.2"));
        assert_eq!(spec.fbclid.as_deref(), Some("IwAR2x"));
        assert_eq!(
            spec.landing_page.as_deref(),
            Some("https://tienda.example.mx/promo?x=1")
        );
        assert_eq!(spec.link("AB23CD", 0).expires_at, 7 * 86_400_000);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<LinkRequest>(r#"{"utm_sourc":"x"}"#).is_err());
    }
}
