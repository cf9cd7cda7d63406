//! Tags: labels on a conversation from the mapping's `[tags]` catalogue, added by its rules as
//! inbound messages arrive (crm-sync, in the fold that counts the message) and through the API.
//!
//! ```toml
//! [tags]
//! ids = ["pricing", "support", "summer_ad"]
//!
//! [[tags.rules]]
//! tag = "pricing"
//! keyword = "precio"          # or regex, button_payload, list_reply_id, ad_source_id, campaign
//! ```
//!
//! A rule has exactly one matcher. `keyword` matches whole words of the inbound text (or
//! caption), ignoring case and accents; `regex` is compiled once at load, with a bounded size.
//! A rule naming a tag outside `ids`, or a bad matcher, is a mapping error naming the rule, so
//! the process stops at start.

use serde::Deserialize;

use crate::mapping::fold;

/// Most tags a catalogue may hold (a conversation holds at most these).
pub const MAX_TAGS: usize = 100;
/// Most rules.
pub const MAX_RULES: usize = 500;
/// Longest tag id: letters, digits and `. _ @ + -`, like an agent id.
pub const MAX_TAG_CHARS: usize = 64;
/// Longest `regex` source, and the compiled program's size limit: a rule runs on every inbound
/// message, so its cost stays small.
const MAX_REGEX_CHARS: usize = 512;
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest value of the other matchers.
const MAX_MATCHER_CHARS: usize = 256;

/// `[tags]` of the mapping.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagCatalogue {
    /// The tags conversations may carry; empty: no tags.
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub rules: Vec<TagRule>,
}

/// `[[tags.rules]]`: a tag and exactly one matcher.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    pub tag: String,
    #[serde(default)]
    pub keyword: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub button_payload: Option<String>,
    #[serde(default)]
    pub list_reply_id: Option<String>,
    /// The click-to-WhatsApp ad's `referral.source_id`.
    #[serde(default)]
    pub ad_source_id: Option<String>,
    /// The `utm_campaign` of the tracked link whose code the message carried.
    #[serde(default)]
    pub campaign: Option<String>,
    #[serde(skip)]
    matcher: Option<Matcher>,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// The keyword's words, folded.
    Keyword(Vec<String>),
    Regex(regex::Regex),
    ButtonPayload(String),
    ListReplyId(String),
    AdSourceId(String),
    Campaign(String),
}

/// What the rules look at in one inbound message.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagInput<'a> {
    /// Text body or caption.
    pub text: Option<&'a str>,
    pub button_payload: Option<&'a str>,
    pub list_reply_id: Option<&'a str>,
    pub ad_source_id: Option<&'a str>,
    pub campaign: Option<&'a str>,
}

/// Why tags were refused: a stable code and a sentence naming the value and the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TagError {
    pub code: &'static str,
    pub message: String,
}

fn well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_TAG_CHARS
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || ".-_@+".contains(c))
}

/// Folded words: case and accents ignored, anything but letters and digits separates.
fn words(text: &str) -> Vec<String> {
    fold(&text.to_lowercase())
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl TagCatalogue {
    /// Checks the catalogue and compiles the rules (at load); the error names the rule.
    pub fn compile(&mut self) -> Result<(), String> {
        if self.ids.len() > MAX_TAGS {
            return Err(format!("tags: {} ids, at most {MAX_TAGS}", self.ids.len()));
        }
        for (i, id) in self.ids.iter().enumerate() {
            if !well_formed(id) {
                return Err(format!(
                    "tags: ids[{i}] {id:?} is not a tag id: 1 to {MAX_TAG_CHARS} letters, digits and . _ @ + -"
                ));
            }
            if self.ids[..i].contains(id) {
                return Err(format!("tags: ids[{i}] {id:?} is listed twice"));
            }
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!(
                "tags: {} rules, at most {MAX_RULES}",
                self.rules.len()
            ));
        }
        let ids = self.ids.clone();
        for (i, rule) in self.rules.iter_mut().enumerate() {
            rule.compile(&ids)
                .map_err(|e| format!("tags.rules[{i}] (tag {:?}): {e}", rule.tag))?;
        }
        Ok(())
    }

    /// The tags the rules give `input`: sorted, unique.
    pub fn tags_for(&self, input: &TagInput<'_>) -> Vec<String> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let text_words = input.text.map(words).unwrap_or_default();
        let mut tags: Vec<String> = self
            .rules
            .iter()
            .filter(|r| r.matches(input, &text_words))
            .map(|r| r.tag.clone())
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// `tags` checked against the catalogue (trimmed): sorted and unique, or the first tag
    /// outside it.
    pub fn check(&self, tags: &[String]) -> Result<Vec<String>, TagError> {
        let mut checked = Vec::with_capacity(tags.len());
        for tag in tags {
            let tag = tag.trim();
            if !self.ids.iter().any(|id| id == tag) {
                let catalogue = if self.ids.is_empty() {
                    "the mapping has no [tags] catalogue".to_string()
                } else {
                    format!("[tags] ids: {}", self.ids.join(", "))
                };
                return Err(TagError {
                    code: "unknown_tag",
                    message: format!(
                        "tag {:?} is not in the mapping's tag catalogue ({catalogue})",
                        tag.chars().take(MAX_TAG_CHARS + 1).collect::<String>()
                    ),
                });
            }
            checked.push(tag.to_string());
        }
        checked.sort();
        checked.dedup();
        Ok(checked)
    }
}

impl TagRule {
    fn compile(&mut self, ids: &[String]) -> Result<(), String> {
        if !ids.contains(&self.tag) {
            return Err(format!(
                "the tag is not in [tags] ids ({})",
                if ids.is_empty() {
                    "empty".to_string()
                } else {
                    ids.join(", ")
                }
            ));
        }
        let set: Vec<(&str, &String)> = [
            ("keyword", &self.keyword),
            ("regex", &self.regex),
            ("button_payload", &self.button_payload),
            ("list_reply_id", &self.list_reply_id),
            ("ad_source_id", &self.ad_source_id),
            ("campaign", &self.campaign),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (name, v)))
        .collect();
        let [(name, value)] = set[..] else {
            return Err(format!(
                "needs exactly one of keyword, regex, button_payload, list_reply_id, \
                 ad_source_id, campaign (has {})",
                if set.is_empty() {
                    "none".to_string()
                } else {
                    set.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                }
            ));
        };
        let limit = if name == "regex" {
            MAX_REGEX_CHARS
        } else {
            MAX_MATCHER_CHARS
        };
        if value.trim().is_empty() || value.chars().count() > limit {
            return Err(format!("{name} must have 1 to {limit} characters"));
        }
        self.matcher = Some(match name {
            "keyword" => {
                let w = words(value);
                if w.is_empty() {
                    return Err("keyword has no letters or digits".into());
                }
                Matcher::Keyword(w)
            }
            "regex" => Matcher::Regex(
                regex::RegexBuilder::new(value)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("regex: {e}"))?,
            ),
            "button_payload" => Matcher::ButtonPayload(value.clone()),
            "list_reply_id" => Matcher::ListReplyId(value.clone()),
            "ad_source_id" => Matcher::AdSourceId(value.clone()),
            _ => Matcher::Campaign(value.clone()),
        });
        Ok(())
    }

    fn matches(&self, input: &TagInput<'_>, text_words: &[String]) -> bool {
        let is = |v: Option<&str>, want: &str| v.is_some_and(|v| v == want);
        match &self.matcher {
            Some(Matcher::Keyword(kw)) => text_words.windows(kw.len()).any(|w| w == kw.as_slice()),
            Some(Matcher::Regex(re)) => input.text.is_some_and(|t| re.is_match(t)),
            Some(Matcher::ButtonPayload(p)) => is(input.button_payload, p),
            Some(Matcher::ListReplyId(id)) => is(input.list_reply_id, id),
            Some(Matcher::AdSourceId(id)) => is(input.ad_source_id, id),
            Some(Matcher::Campaign(c)) => is(input.campaign, c),
            // Not compiled: only a catalogue that skipped `compile` (never one from a mapping).
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(rules: &str) -> Result<TagCatalogue, String> {
        let text = format!(
            "ids = [\"pricing\", \"support\", \"promo\", \"menu\", \"summer\", \"bf\"]\n{rules}"
        );
        let mut c: TagCatalogue = toml::from_str(&text).map_err(|e| e.to_string())?;
        c.compile()?;
        Ok(c)
    }

    #[test]
    fn each_rule_kind_tags_what_it_matches() {
        let c = catalogue(
            r#"
[[rules]]
tag = "pricing"
keyword = "cuánto cuesta"
[[rules]]
tag = "support"
regex = "(?i)no (funciona|sirve)"
[[rules]]
tag = "promo"
button_payload = "PROMO_SI"
[[rules]]
tag = "menu"
list_reply_id = "menu_2"
[[rules]]
tag = "summer"
ad_source_id = "120000"
[[rules]]
tag = "bf"
campaign = "buen_fin"
"#,
        )
        .unwrap();
        let text = |t| TagInput {
            text: Some(t),
            ..TagInput::default()
        };
        // Whole words, case and accents ignored.
        assert_eq!(c.tags_for(&text("Hola, ¿CUANTO cuesta?")), ["pricing"]);
        assert!(c.tags_for(&text("cuantos cuestan")).is_empty());
        assert_eq!(
            c.tags_for(&text("No funciona. ¿Cuánto cuesta arreglarlo?")),
            ["pricing", "support"]
        );
        let only = |input: TagInput<'_>| c.tags_for(&input);
        assert_eq!(
            only(TagInput {
                button_payload: Some("PROMO_SI"),
                ..TagInput::default()
            }),
            ["promo"]
        );
        assert_eq!(
            only(TagInput {
                list_reply_id: Some("menu_2"),
                ..TagInput::default()
            }),
            ["menu"]
        );
        assert_eq!(
            only(TagInput {
                ad_source_id: Some("120000"),
                ..TagInput::default()
            }),
            ["summer"]
        );
        assert_eq!(
            only(TagInput {
                campaign: Some("buen_fin"),
                ..TagInput::default()
            }),
            ["bf"]
        );
        assert!(only(TagInput {
            button_payload: Some("menu_2"),
            campaign: Some("other"),
            ..TagInput::default()
        })
        .is_empty());
    }

    #[test]
    fn bad_rules_are_load_errors_naming_the_rule() {
        let e = catalogue("[[rules]]\ntag = \"vip\"\nkeyword = \"oro\"\n").unwrap_err();
        assert!(
            e.contains("tags.rules[0] (tag \"vip\")") && e.contains("not in [tags] ids"),
            "{e}"
        );
        let e = catalogue("[[rules]]\ntag = \"promo\"\nregex = \"(unclosed\"\n").unwrap_err();
        assert!(e.contains("tags.rules[0]") && e.contains("regex"), "{e}");
        let e = catalogue("[[rules]]\ntag = \"promo\"\nregex = \"a{1000}{1000}\"\n").unwrap_err();
        assert!(e.contains("regex"), "{e}");
        let two = "[[rules]]\ntag = \"promo\"\nkeyword = \"a\"\n[[rules]]\ntag = \"menu\"\n\
                   keyword = \"b\"\nbutton_payload = \"X\"\n";
        let e = catalogue(two).unwrap_err();
        assert!(
            e.contains("tags.rules[1] (tag \"menu\")") && e.contains("keyword, button_payload"),
            "{e}"
        );
        let e = catalogue("[[rules]]\ntag = \"promo\"\n").unwrap_err();
        assert!(e.contains("has none"), "{e}");
        let e = catalogue("[[rules]]\ntag = \"promo\"\nkeyword = \"¿?\"\n").unwrap_err();
        assert!(e.contains("no letters"), "{e}");
        let mut c: TagCatalogue = toml::from_str("ids = [\"a b\"]").unwrap();
        assert!(c.compile().unwrap_err().contains("ids[0]"));
    }

    #[test]
    fn api_tags_are_checked_against_the_catalogue() {
        let c = catalogue("").unwrap();
        assert_eq!(
            c.check(&[" support".into(), "pricing".into(), "support".into()]),
            Ok(vec!["pricing".to_string(), "support".to_string()])
        );
        let e = c.check(&["vip".into()]).unwrap_err();
        assert_eq!(e.code, "unknown_tag");
        assert!(e.message.contains("\"vip\"") && e.message.contains("pricing, support"));
        let none = TagCatalogue::default();
        assert!(none
            .check(&["vip".into()])
            .unwrap_err()
            .message
            .contains("no [tags]"));
    }
}
