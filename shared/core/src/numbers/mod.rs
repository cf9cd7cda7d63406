//! The numbers registry (issue 21, `docs/numbers.md`): the business numbers one gateway serves,
//! each with its WABA, the name of its access token in the secret store, its CRM target and
//! mapping, its send rate and its defaults.
//!
//! The registry is a TOML file ([`crate::config::WABRIDGE_NUMBERS`]); this module parses and
//! checks its text (no I/O: the callers read the file and look the secrets up), and
//! [`route`] says which number an event belongs to. Without a registry, the gateway runs the
//! one number of today's settings (`WHATSAPP_PHONE_NUMBER_ID`, `CRM_KIND`, …) exactly as
//! before.

pub mod destinations;
pub mod dispatch;
pub mod items;
pub mod records;
pub mod relay;
pub mod reload;
pub mod replay;
pub mod route;
pub mod topic;
pub mod wabas;

/// The code of an event (dead-letter reason) or a send (`from`) naming a number the registry
/// does not know.
pub const UNKNOWN_NUMBER: &str = "unknown_number";

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config;

/// A registry file is a few KB; anything far larger is a mistake, refused before parsing.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Meta's default throughput of one number, messages a second.
pub const DEFAULT_SENDS_PER_SECOND: f64 = config::DEFAULT_SENDS_PER_SECOND;

/// One business number of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// `metadata.phone_number_id` of its webhooks; the `{Phone-Number-ID}` of its sends.
    pub phone_number_id: String,
    /// Short name (`ventas-mx`): what `from` and the CRM's records call the line.
    pub label: String,
    /// `entry[].id` of its webhooks.
    pub waba_id: String,
    /// As the business shows it (`+52 55 1234 5678`); quality updates name it by its digits.
    pub display_number: String,
    /// The name of its access token in the secret store (a key of the Secrets Manager secret
    /// on AWS; an environment variable or a `tokens` entry of `secrets.json` locally).
    pub token_key: String,
    pub crm: CrmTarget,
    /// Meta's throughput of this number, messages a second.
    pub sends_per_second: f64,
    /// Template language of its sends without `lang` (`es_MX`).
    pub language: Option<String>,
    /// ISO country of recipients typed without a country code (`MX`).
    pub default_country: Option<String>,
    /// When the number answers: the first-response SLA counts only these minutes.
    pub business_hours: Option<crate::conversations::sla::BusinessHours>,
    /// The file line of its `label` (0 for the implicit number): errors name it.
    pub line: usize,
}

impl Number {
    /// The digits of [`Number::display_number`], as quality updates name the number.
    pub fn display_digits(&self) -> String {
        digits(&self.display_number)
    }

    /// What records carry about the number.
    pub fn business_number(&self) -> BusinessNumber {
        BusinessNumber {
            phone_number_id: self.phone_number_id.clone(),
            label: self.label.clone(),
        }
    }
}

/// The business line a record belongs to, as the CRM shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BusinessNumber {
    pub phone_number_id: String,
    pub label: String,
}

/// Where a number's events land: a CRM kind, its settings and its mapping file. Two numbers
/// with equal targets share one CRM client (and its circuit breaker).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmTarget {
    /// `CRM_KIND` of this target (`local`, `webhook`, `hubspot`).
    pub kind: String,
    /// `WABRIDGE_MAPPING` of this target; unset: the example mapping of its kind.
    #[serde(default)]
    pub mapping: Option<String>,
    /// Plain settings by configuration name (`CRM_WEBHOOK_URL`, `HUBSPOT_API_URL`, …).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Secret settings by configuration name, each naming the key of the secret store that
    /// holds it (`CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_CO"`): never the secret itself.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl CrmTarget {
    /// The settings this target's CRM is built from: `CRM_KIND`, `WABRIDGE_MAPPING`, its
    /// settings, its secrets read through `secret`, then whatever it leaves out from `env`
    /// (`CRM_TIMEOUT_MS`, retention settings).
    pub fn lookup<'a>(
        &'a self,
        env: impl Fn(&str) -> Option<String> + 'a,
        secret: impl Fn(&str) -> Option<String> + 'a,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| match name {
            config::CRM_KIND => Some(self.kind.clone()),
            config::WABRIDGE_MAPPING => self.mapping.clone(),
            _ => match (self.settings.get(name), self.secrets.get(name)) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(key)) => secret(key),
                (None, None) => env(name),
            },
        }
    }
}

/// What crm-sync does with an event of a number the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownNumbers {
    /// Dead-letter it with the reason `unknown_number`, to redrive once the number is added.
    DeadLetter,
    /// Deliver it to the CRM target of the number with this label (records carry no number).
    RouteTo(String),
}

/// The registry: every number, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Numbers {
    numbers: Vec<Number>,
    pub unknown: UnknownNumbers,
}

/// A registry that cannot be used; names the file, the line and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {file}: {}{problem}", config::WABRIDGE_NUMBERS, line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct NumbersError {
    pub file: String,
    pub line: Option<usize>,
    pub problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    unknown_numbers: Option<Spanned<String>>,
    #[serde(default)]
    number: Vec<RawNumber>,
    /// `[[destination]]` tables: parsed by [`destinations`].
    #[serde(default, rename = "destination")]
    _destinations: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumber {
    label: Spanned<String>,
    phone_number_id: Spanned<String>,
    waba_id: Spanned<String>,
    display_number: Spanned<String>,
    token_key: Spanned<String>,
    crm: CrmTarget,
    #[serde(default)]
    sends_per_second: Option<Spanned<f64>>,
    #[serde(default)]
    language: Option<Spanned<String>>,
    #[serde(default)]
    default_country: Option<Spanned<String>>,
    #[serde(default)]
    business_hours: Option<Spanned<crate::conversations::sla::RawBusinessHours>>,
}

impl Numbers {
    /// Parses and checks a registry file's bytes; `file` names it in errors.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Numbers, NumbersError> {
        let fail = |line: Option<usize>, problem: String| NumbersError {
            file: file.to_string(),
            line,
            problem,
        };
        if bytes.len() > MAX_FILE_BYTES {
            return Err(fail(None, format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| fail(None, "not UTF-8".into()))?;
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| fail(None, crate::template_files::toml_problem(text, &e)))?;
        let line_of = |span: std::ops::Range<usize>| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        };
        if raw.number.is_empty() {
            return Err(fail(None, "no [[number]]: list at least one number".into()));
        }
        let mut numbers: Vec<Number> = Vec::with_capacity(raw.number.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for r in raw.number {
            let line = line_of(r.label.span());
            let at = |field: &Spanned<String>| line_of(field.span());
            let label = r.label.into_inner().trim().to_string();
            let bad = |line: usize, field: &str, why: &str| {
                fail(Some(line), format!("number `{label}`: `{field}` {why}"))
            };
            let valid_label = (1..=32).contains(&label.len())
                && label.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid_label {
                return Err(fail(
                    Some(line),
                    format!("`label` {label:?} must be 1 to 32 of a-z, 0-9, - and _"),
                ));
            }
            for field in [&r.phone_number_id, &r.waba_id] {
                let v = field.get_ref().trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    let name = if std::ptr::eq(field, &r.phone_number_id) {
                        "phone_number_id"
                    } else {
                        "waba_id"
                    };
                    return Err(bad(at(field), name, "must be Meta's id: digits only"));
                }
            }
            if !(6..=15).contains(&digits(r.display_number.get_ref()).len()) {
                return Err(bad(
                    at(&r.display_number),
                    "display_number",
                    "must hold the number's 6 to 15 digits (+52 55 1234 5678)",
                ));
            }
            let token_key = r.token_key.get_ref().trim().to_string();
            if !is_key_name(&token_key) {
                return Err(bad(
                    at(&r.token_key),
                    "token_key",
                    "must name a secret key (A-Z, 0-9, _), never hold the token",
                ));
            }
            check_target(&r.crm).map_err(|why| bad(line, "crm", &why))?;
            let sends_per_second = match &r.sends_per_second {
                None => DEFAULT_SENDS_PER_SECOND,
                Some(s)
                    if s.get_ref().is_finite() && *s.get_ref() > 0.0 && *s.get_ref() <= 1000.0 =>
                {
                    *s.get_ref()
                }
                Some(s) => {
                    return Err(bad(
                        line_of(s.span()),
                        "sends_per_second",
                        "must be more than 0 and at most 1000",
                    ))
                }
            };
            let language = match r.language {
                Some(l) if !is_language(l.get_ref()) => {
                    return Err(bad(
                        line_of(l.span()),
                        "language",
                        "must be like es_MX or pt_BR",
                    ))
                }
                l => l.map(|l| l.into_inner()),
            };
            let default_country = match r.default_country {
                Some(c)
                    if !(c.get_ref().len() == 2
                        && c.get_ref().bytes().all(|b| b.is_ascii_uppercase())) =>
                {
                    return Err(bad(
                        line_of(c.span()),
                        "default_country",
                        "must be an ISO country like MX",
                    ))
                }
                c => c.map(|c| c.into_inner()),
            };
            let business_hours = r.business_hours.as_ref().map(|h| {
                crate::conversations::sla::BusinessHours::parse(h.get_ref()).map_err(|why| {
                    fail(Some(line_of(h.span())), format!("number `{label}`: {why}"))
                })
            });
            let number = Number {
                phone_number_id: r.phone_number_id.get_ref().trim().to_string(),
                waba_id: r.waba_id.get_ref().trim().to_string(),
                display_number: r.display_number.get_ref().trim().to_string(),
                token_key,
                crm: CrmTarget {
                    kind: r.crm.kind.trim().to_ascii_lowercase(),
                    ..r.crm
                },
                sends_per_second,
                language,
                default_country,
                business_hours: business_hours.transpose()?,
                line,
                label: label.clone(),
            };
            for (what, value) in [
                ("label", number.label.clone()),
                ("phone_number_id", number.phone_number_id.clone()),
                ("display_number", number.display_digits()),
            ] {
                if let Some(first) = seen.insert(format!("{what}:{value}"), line) {
                    return Err(bad(
                        line,
                        what,
                        &format!("duplicates the number on line {first}"),
                    ));
                }
            }
            numbers.push(number);
        }
        let unknown = match raw.unknown_numbers {
            None => UnknownNumbers::DeadLetter,
            Some(label) if label.get_ref() == "dead_letter" => UnknownNumbers::DeadLetter,
            Some(label) => {
                if !numbers.iter().any(|n| &n.label == label.get_ref()) {
                    return Err(fail(
                        Some(line_of(label.span())),
                        format!(
                            "`unknown_numbers` must be dead_letter or the label of a number, got {:?}",
                            label.get_ref()
                        ),
                    ));
                }
                UnknownNumbers::RouteTo(label.into_inner())
            }
        };
        Ok(Numbers { numbers, unknown })
    }

    /// Every number, in file order.
    pub fn all(&self) -> &[Number] {
        &self.numbers
    }

    /// The number with this label or phone_number_id (what `from` accepts).
    pub fn find(&self, label_or_id: &str) -> Option<&Number> {
        self.numbers
            .iter()
            .find(|n| n.label == label_or_id || n.phone_number_id == label_or_id)
    }

    /// The phone_number_id a send `from` names: required when the registry has more than one
    /// number; the only one's when it has one. The refusal's code is `from_required` or
    /// `unknown_number`.
    pub fn sender_of(&self, from: Option<&str>) -> Result<&Number, (&'static str, String)> {
        match (from, self.numbers.as_slice()) {
            (Some(f), _) => self.find(f).ok_or_else(|| {
                let known: Vec<&str> = self.numbers.iter().map(|n| n.label.as_str()).collect();
                (
                    UNKNOWN_NUMBER,
                    format!("`from` {f:?} is not a registered number (labels: {})", known.join(", ")),
                )
            }),
            (None, [only]) => Ok(only),
            (None, _) => Err((
                "from_required",
                "`from` is required: this gateway sends from several numbers (a label or a phone_number_id)".into(),
            )),
        }
    }

    /// Every number's secret keys are in the store (`has`), or the first missing one, named
    /// with its number's line: a number without its token cannot send.
    pub fn check_secrets(
        &self,
        file: &str,
        has: impl Fn(&str) -> bool,
    ) -> Result<(), NumbersError> {
        for n in &self.numbers {
            let keys = std::iter::once(("token_key", &n.token_key))
                .chain(n.crm.secrets.values().map(|k| ("crm.secrets", k)));
            for (field, key) in keys {
                if !has(key) {
                    return Err(NumbersError {
                        file: file.to_string(),
                        line: Some(n.line),
                        problem: format!(
                            "number `{}`: `{field}` names {key}, which is not in the secret store",
                            n.label
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The distinct CRM targets, each with the labels of its numbers, in file order.
    pub fn targets(&self) -> Vec<(&CrmTarget, Vec<&str>)> {
        let mut out: Vec<(&CrmTarget, Vec<&str>)> = Vec::new();
        for n in &self.numbers {
            match out.iter_mut().find(|(t, _)| *t == &n.crm) {
                Some((_, labels)) => labels.push(&n.label),
                None => out.push((&n.crm, vec![&n.label])),
            }
        }
        out
    }
}

/// What `from` looks like, for the refusal of one that does not.
pub const FROM_SHAPE: &str =
    "`from` is a number's label or phone_number_id (up to 64 of a-z, 0-9, - and _)";

/// Whether a send's `from` has the shape of a label or a phone_number_id.
pub fn valid_from(from: &str) -> bool {
    from.len() <= 64
        && from
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The phone_number_id a send's `from` resolves to ([`Numbers::sender_of`]); without a
/// registry, none, and a `from` is refused (`unknown_number`): the gateway has one number.
pub fn resolve_from(
    numbers: Option<&Numbers>,
    from: Option<&str>,
) -> Result<Option<String>, (&'static str, String)> {
    match (numbers, from) {
        (Some(numbers), from) => numbers
            .sender_of(from)
            .map(|n| Some(n.phone_number_id.clone())),
        (None, None) => Ok(None),
        (None, Some(_)) => Err((
            UNKNOWN_NUMBER,
            format!(
                "`from` needs a numbers registry ({}); this gateway sends from its one number: leave `from` out",
                config::WABRIDGE_NUMBERS
            ),
        )),
    }
}

/// Why a CRM target is unusable: a secret given in plain `settings`, or a name in `secrets`
/// that is not a secret setting.
fn check_target(t: &CrmTarget) -> Result<(), String> {
    if t.kind.trim().is_empty() {
        return Err("needs a `kind` (local, webhook, hubspot)".into());
    }
    if let Some(name) = t
        .settings
        .keys()
        .find(|k| config::SECRET_NAMES.contains(&k.as_str()))
    {
        return Err(format!(
            "settings hold the secret {name}: name its key under crm.secrets instead"
        ));
    }
    if let Some(name) = t
        .secrets
        .keys()
        .find(|k| !config::SECRET_NAMES.contains(&k.as_str()))
    {
        return Err(format!(
            "secrets name {name}, which is not a secret setting"
        ));
    }
    if let Some((name, key)) = t.secrets.iter().find(|(_, key)| !is_key_name(key)) {
        return Err(format!(
            "secrets.{name} = {key:?} must name a secret key (A-Z, 0-9, _)"
        ));
    }
    Ok(())
}

/// Whether `key` is a secret's name (A-Z, 0-9, _; at most 128), never a pasted-in secret.
pub fn is_key_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn is_language(l: &str) -> bool {
    let (lang, region) = l.split_once('_').unwrap_or((l, "AB"));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.len() == 2
        && region.bytes().all(|b| b.is_ascii_uppercase())
}

/// The digits of a phone number as typed or displayed.
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// A token for a listing: its last 4 characters, never more.
pub fn mask_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() < 16 {
        return "****".into();
    }
    format!(
        "****{}",
        chars[chars.len() - 4..].iter().collect::<String>()
    )
}

#[cfg(test)]
mod tests;
