//! Declarative field mapping: canonical record fields → CRM fields, with validation rules, so a
//! record that would dirty the CRM never reaches it (crm-sync dead-letters it with the field and
//! the rule that failed).
//!
//! A mapping is a TOML file (`WABRIDGE_MAPPING`; documented examples per CRM in `mappings/`,
//! which are also the defaults). One list of fields per record kind:
//!
//! ```toml
//! version = 1
//! [consent]
//! opt_out_keywords = ["STOP", "BAJA", "ALTO", "PARAR", "SAIR"]
//!
//! [[contact]]
//! to = "firstname"          # CRM field
//! from = "name"             # canonical field; `a|b` = first present; `referral.ctwa_clid` nests
//! transform = ["trim", "first_name"]
//! max_length = 40
//! default = "WhatsApp"
//! ```
//!
//! Rules: `required`, `e164`, `email`, `url`, `one_of` (enum catalog), `max_length` (characters),
//! `regex`. `e164 = true` takes a canonical E.164 number of a length its country uses, so a
//! `wa_id` in a range the phone metadata does not know yet passes (its contact says
//! `phone_verified: false`); `e164 = "valid"` refuses it too. Transforms, applied in order before the rules: `trim`, `lower`, `upper`,
//! `first_name` / `last_name` (split a full name at its first space), `digits`. `default`
//! fills a value that is absent or empty after the transforms.

pub mod owners;
pub mod tickets;

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use thiserror::Error;
use validator::{ValidateEmail, ValidateUrl};

use crate::identity::{PhoneValidity, E164};
use crate::records::Record;

/// The mapping file could not be used.
#[derive(Debug, Error)]
pub enum MappingFileError {
    #[error("cannot read mapping file {path}: {error}")]
    Read { path: String, error: String },
    #[error("invalid mapping: {0}")]
    Invalid(String),
}

/// A record failed a rule: it must not reach the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("validation failed: {kind} field `{field}` (from `{from}`) broke rule `{rule}`: {detail}")]
pub struct ValidationError {
    /// Record kind (`contact`, `activity`, …).
    pub kind: String,
    /// CRM field.
    pub field: String,
    /// Canonical source field(s).
    pub from: String,
    /// `required`, `e164`, `email`, `url`, `one_of`, `max_length`, `regex`.
    pub rule: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Trim,
    Lower,
    Upper,
    FirstName,
    LastName,
    Digits,
}

/// The `e164` rule of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum E164Rule {
    /// No rule (`e164 = false`, or absent).
    #[default]
    Off,
    /// `e164 = true` (or `"possible"`): canonical E.164, a length its country uses.
    Possible,
    /// `e164 = "valid"`: also in a range the phone metadata knows. Refuses Meta's `wa_id`s of
    /// new ranges (the delivery dead-letters naming the rule), for a CRM that must only hold
    /// numbers the metadata knows.
    Valid,
}

impl<'de> Deserialize<'de> for E164Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Level(String),
        }
        match Written::deserialize(d)? {
            Written::Flag(false) => Ok(E164Rule::Off),
            Written::Flag(true) => Ok(E164Rule::Possible),
            Written::Level(l) if l == "possible" => Ok(E164Rule::Possible),
            Written::Level(l) if l == "valid" => Ok(E164Rule::Valid),
            Written::Level(l) => Err(serde::de::Error::custom(format!(
                "e164: expected true, false, \"possible\" or \"valid\", got {l:?}"
            ))),
        }
    }
}

/// One CRM field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// CRM field name.
    pub to: String,
    /// Canonical field; `a|b` takes the first present; dots reach nested fields. Absent: only
    /// `default` feeds the field (a constant).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub transform: Vec<Transform>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub e164: E164Rule,
    #[serde(default)]
    pub email: bool,
    #[serde(default)]
    pub url: bool,
    /// Enum catalog: the value must be one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(skip)]
    compiled: Option<regex::Regex>,
}

/// Consent keywords: a text message equal to one of these (case- and accent-insensitive, trimmed)
/// is a consent change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentKeywords {
    #[serde(default = "default_opt_out")]
    pub opt_out_keywords: Vec<String>,
    #[serde(default = "default_opt_in")]
    pub opt_in_keywords: Vec<String>,
}

fn default_opt_out() -> Vec<String> {
    ["STOP", "BAJA", "ALTO", "PARAR", "SAIR"]
        .map(String::from)
        .to_vec()
}

fn default_opt_in() -> Vec<String> {
    ["START", "ALTA", "SIM"].map(String::from).to_vec()
}

impl Default for ConsentKeywords {
    fn default() -> Self {
        ConsentKeywords {
            opt_out_keywords: default_opt_out(),
            opt_in_keywords: default_opt_in(),
        }
    }
}

/// Which consent change a text is, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeywordMatch {
    OptOut(String),
    OptIn(String),
}

impl ConsentKeywords {
    pub fn classify(&self, text: &str) -> Option<KeywordMatch> {
        let norm = fold(text.trim().trim_end_matches(['.', '!']));
        if norm.is_empty() || norm.len() > 32 {
            return None;
        }
        if let Some(k) = self.opt_out_keywords.iter().find(|k| fold(k) == norm) {
            return Some(KeywordMatch::OptOut(k.clone()));
        }
        self.opt_in_keywords
            .iter()
            .find(|k| fold(k) == norm)
            .map(|k| KeywordMatch::OptIn(k.clone()))
    }
}

/// Upper-case without the accents Spanish and Portuguese speakers may or may not type (consent
/// keywords, tag keywords).
pub(crate) fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'Á' | 'À' | 'Â' | 'Ã' => 'A',
            'é' | 'ê' | 'É' | 'Ê' => 'E',
            'í' | 'Í' => 'I',
            'ó' | 'ô' | 'õ' | 'Ó' | 'Ô' | 'Õ' => 'O',
            'ú' | 'ü' | 'Ú' | 'Ü' => 'U',
            'ç' | 'Ç' => 'C',
            other => other.to_ascii_uppercase(),
        })
        .collect()
}

/// A loaded, checked mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub version: u32,
    /// Free text: which CRM this file is for.
    #[serde(default)]
    pub crm: Option<String>,
    /// CRM property holding the unique id contacts are upserted by (HubSpot `idProperty`);
    /// its value is the contact field mapped `to` this name.
    #[serde(default)]
    pub id_property: Option<String>,
    /// CRM property of activities holding the effect id, searched before re-creating an
    /// activity whose earlier attempt may have succeeded (HubSpot: a custom communication
    /// property).
    #[serde(default)]
    pub effect_property: Option<String>,
    #[serde(default)]
    pub consent: ConsentKeywords,
    #[serde(default)]
    pub contact: Vec<FieldSpec>,
    #[serde(default)]
    pub activity: Vec<FieldSpec>,
    #[serde(default, rename = "consent_fields")]
    pub consent_fields: Vec<FieldSpec>,
    #[serde(default)]
    pub template_status: Vec<FieldSpec>,
    #[serde(default)]
    pub quality: Vec<FieldSpec>,
    #[serde(default)]
    pub unknown: Vec<FieldSpec>,
    /// Fields of edits and deletions, calls and account updates (none by default: those records
    /// are posted or folded as they are).
    #[serde(default)]
    pub message_change: Vec<FieldSpec>,
    #[serde(default)]
    pub call: Vec<FieldSpec>,
    #[serde(default)]
    pub account: Vec<FieldSpec>,
    /// What the CRM does with a deleted (revoked) message's content.
    #[serde(default)]
    pub revoke: RevokeSettings,
    /// `[agents] ids`: the agents `POST /sends` may name.
    #[serde(default)]
    pub agents: crate::agents::AgentCatalogue,
    /// `[outcomes] ids`: the outcomes `PATCH /conversations/{id}` takes.
    #[serde(default)]
    pub outcomes: crate::conversations::outcome::OutcomeCatalogue,
    /// `[hubspot]`: owners and ticket stages of conversations in HubSpot.
    #[serde(default)]
    pub hubspot: tickets::HubSpotTickets,
    /// `[conversations]`: owners and outcome stages of conversations in the other CRMs.
    #[serde(default)]
    pub conversations: owners::ConversationSettings,
    /// `[tags]`: the tag catalogue and the rules that tag conversations.
    #[serde(default)]
    pub tags: crate::conversations::tags::TagCatalogue,
}

/// `[revoke]`: `content = "clear"` (default) or `"keep"`. wabridge's own stores (the local
/// CRM's records included) clear a deleted message's content whatever this says.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeSettings {
    #[serde(default)]
    pub content: crate::changes::RevokedContent,
}

/// The documented example mappings, also the defaults when `WABRIDGE_MAPPING` is unset.
pub const LOCAL_EXAMPLE: &str = include_str!("../../../../mappings/local.toml");
pub const WEBHOOK_EXAMPLE: &str = include_str!("../../../../mappings/webhook.toml");
pub const HUBSPOT_EXAMPLE: &str = include_str!("../../../../mappings/hubspot.toml");
pub const PIPEDRIVE_EXAMPLE: &str = include_str!("../../../../mappings/pipedrive.toml");
pub const ZOHO_EXAMPLE: &str = include_str!("../../../../mappings/zoho.toml");
pub const KOMMO_EXAMPLE: &str = include_str!("../../../../mappings/kommo.toml");
pub const SALESFORCE_EXAMPLE: &str = include_str!("../../../../mappings/salesforce.toml");

impl Mapping {
    pub fn from_toml(text: &str) -> Result<Mapping, MappingFileError> {
        let mut mapping: Mapping =
            toml::from_str(text).map_err(|e| MappingFileError::Invalid(e.to_string()))?;
        if mapping.version != 1 {
            return Err(MappingFileError::Invalid(format!(
                "version {} is not supported (expected 1)",
                mapping.version
            )));
        }
        mapping.tags.compile().map_err(MappingFileError::Invalid)?;
        for (kind, fields) in mapping.lists_mut() {
            let mut seen = BTreeSet::new();
            for f in fields.iter_mut() {
                if !seen.insert(f.to.clone()) {
                    return Err(MappingFileError::Invalid(format!(
                        "{kind}: field `{}` mapped twice",
                        f.to
                    )));
                }
                if f.from.is_none() && f.default.is_none() {
                    return Err(MappingFileError::Invalid(format!(
                        "{kind}: field `{}` needs `from` or `default`",
                        f.to
                    )));
                }
                if let Some(re) = &f.regex {
                    let compiled = regex::Regex::new(re).map_err(|e| {
                        MappingFileError::Invalid(format!("{kind}: field `{}`: regex: {e}", f.to))
                    })?;
                    f.compiled = Some(compiled);
                }
            }
        }
        mapping.hubspot.check(&mapping.outcomes.ids)?;
        mapping.conversations.check(&mapping.outcomes.ids)?;
        Ok(mapping)
    }

    pub fn load(path: &str) -> Result<Mapping, MappingFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingFileError::Read {
            path: path.to_string(),
            error: e.to_string(),
        })?;
        Mapping::from_toml(&text)
    }

    /// The example mapping of a CRM kind (`local`, `webhook`, `hubspot`).
    pub fn example(crm_kind: &str) -> Result<Mapping, MappingFileError> {
        match crm_kind {
            "local" => Mapping::from_toml(LOCAL_EXAMPLE),
            "webhook" => Mapping::from_toml(WEBHOOK_EXAMPLE),
            "hubspot" => Mapping::from_toml(HUBSPOT_EXAMPLE),
            "pipedrive" => Mapping::from_toml(PIPEDRIVE_EXAMPLE),
            "zoho" => Mapping::from_toml(ZOHO_EXAMPLE),
            "kommo" => Mapping::from_toml(KOMMO_EXAMPLE),
            "salesforce" => Mapping::from_toml(SALESFORCE_EXAMPLE),
            other => Err(MappingFileError::Invalid(format!(
                "no example mapping for CRM `{other}`"
            ))),
        }
    }

    /// `WABRIDGE_MAPPING` when set, else the example of `crm_kind`.
    pub fn from_env(crm_kind: &str) -> Result<Mapping, MappingFileError> {
        match std::env::var(crate::config::WABRIDGE_MAPPING) {
            Ok(path) if !path.trim().is_empty() => Mapping::load(path.trim()),
            _ => Mapping::example(crm_kind),
        }
    }

    fn lists_mut(&mut self) -> [(&'static str, &mut Vec<FieldSpec>); 9] {
        [
            ("contact", &mut self.contact),
            ("activity", &mut self.activity),
            ("consent", &mut self.consent_fields),
            ("template_status", &mut self.template_status),
            ("quality", &mut self.quality),
            ("unknown", &mut self.unknown),
            ("message_change", &mut self.message_change),
            ("call", &mut self.call),
            ("account", &mut self.account),
        ]
    }

    fn fields_for(&self, kind: &str) -> &[FieldSpec] {
        match kind {
            "contact" => &self.contact,
            "activity" => &self.activity,
            "consent" => &self.consent_fields,
            "template_status" => &self.template_status,
            "quality" => &self.quality,
            "message_change" => &self.message_change,
            "call" => &self.call,
            "account" => &self.account,
            // Posted as they are (no mapping section yet).
            "conversation" | "sla_breach" => &[],
            _ => &self.unknown,
        }
    }

    /// Applies the fields of the record's kind: the CRM fields, or the first rule broken.
    pub fn apply(&self, record: &Record) -> Result<Map<String, Value>, ValidationError> {
        let kind = record.kind();
        let source = record.to_value();
        let mut out = Map::new();
        for spec in self.fields_for(kind) {
            if let Some(value) = spec.apply(kind, &source)? {
                out.insert(spec.to.clone(), value);
            }
        }
        Ok(out)
    }
}

fn lookup<'a>(source: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = source;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        other => Some(other),
    }
}

impl FieldSpec {
    fn apply(&self, kind: &str, source: &Value) -> Result<Option<Value>, ValidationError> {
        let from = self.from.clone().unwrap_or_default();
        let fail = |rule: &str, detail: String| ValidationError {
            kind: kind.to_string(),
            field: self.to.clone(),
            from: from.clone(),
            rule: rule.to_string(),
            detail,
        };
        let raw = self
            .from
            .as_deref()
            .and_then(|f| f.split('|').find_map(|alt| lookup(source, alt.trim())));
        let mut value: Option<Value> = match raw {
            Some(Value::String(s)) => Some(Value::String(self.transform(s))),
            Some(other) if self.transform.is_empty() => Some(other.clone()),
            Some(other) => Some(Value::String(self.transform(&other.to_string()))),
            None => None,
        };
        if matches!(&value, Some(Value::String(s)) if s.is_empty()) {
            value = None;
        }
        if value.is_none() {
            value = self.default.clone().map(Value::String);
        }
        let Some(value) = value else {
            if self.required {
                return Err(fail("required", "no value".into()));
            }
            return Ok(None);
        };
        let text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if self.e164 != E164Rule::Off {
            e164_rule(self.e164, &text).map_err(|detail| fail("e164", detail.into()))?;
        }
        if self.email && !text.validate_email() {
            return Err(fail("email", "not an email address".into()));
        }
        if self.url && !text.validate_url() {
            return Err(fail("url", "not a URL".into()));
        }
        if let Some(catalog) = &self.one_of {
            if !catalog.iter().any(|c| c == &text) {
                return Err(fail(
                    "one_of",
                    format!("`{text}` is not one of {catalog:?}"),
                ));
            }
        }
        if let Some(max) = self.max_length {
            let n = text.chars().count();
            if n > max {
                return Err(fail("max_length", format!("{n} characters, at most {max}")));
            }
        }
        if let Some(re) = &self.compiled {
            if !re.is_match(&text) {
                return Err(fail("regex", format!("does not match {}", re.as_str())));
            }
        }
        Ok(Some(value))
    }

    fn transform(&self, input: &str) -> String {
        let mut s = input.to_string();
        for t in &self.transform {
            s = match t {
                Transform::Trim => s.trim().to_string(),
                Transform::Lower => s.to_lowercase(),
                Transform::Upper => s.to_uppercase(),
                Transform::FirstName => s.split_whitespace().next().unwrap_or_default().to_string(),
                Transform::LastName => s.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
                Transform::Digits => s.chars().filter(char::is_ascii_digit).collect(),
            };
        }
        s
    }
}

/// The `e164` rule on a value: `Err` says why it fails.
fn e164_rule(rule: E164Rule, text: &str) -> Result<(), &'static str> {
    // Canonical only: a number that needs normalising should have been normalised upstream
    // (the planner does it for Meta's ids); anything else is garbage for the CRM.
    let canonical = E164::canonical(text).map_err(|_| "not an E.164 number")?;
    if canonical.as_str() != text {
        return Err("not in canonical E.164 form");
    }
    match (canonical.validity(), rule) {
        (PhoneValidity::Valid, _) | (PhoneValidity::Possible, E164Rule::Possible) => Ok(()),
        (PhoneValidity::Possible, _) => {
            Err("not a number the phone metadata knows (`e164 = \"valid\"`)")
        }
        (PhoneValidity::Impossible, _) => Err("not a possible number for its country"),
    }
}

#[cfg(test)]
mod tests;
