//! The language of a template send that names none: the recipient's country picks it from a
//! map (`WABRIDGE_TEMPLATE_LANGUAGES`), and only a language the template registry knows as
//! APPROVED is sent.
//!
//! The map is `COUNTRY=lang[|fallback…]` pairs, `*` for every other country:
//! `MX=es_MX,AR=es_AR|es_MX,BR=pt_BR,*=en_US`. Each country's languages are tried in order,
//! then `*`'s. Without the setting: MX→es_MX, BR→pt_BR, AR→es_AR, CO→es_CO, US→en_US, else
//! en_US. A send to a BSUID (no phone, so no country) tries `*`'s languages.
//!
//! An explicit `language` always wins (the guards then check it as before). wabridge knows no
//! per-contact language preference yet: WhatsApp's webhooks carry none, so a CRM that keeps one
//! passes it as `language`.

use std::collections::BTreeMap;

use crate::config::{ConfigError, WABRIDGE_TEMPLATE_LANGUAGES};

const DEFAULT_MAP: &str = "MX=es_MX,BR=pt_BR,AR=es_AR,CO=es_CO,US=en_US,*=en_US";
const EXPECTED: &str =
    "COUNTRY=lang pairs separated by commas, fallbacks after |, `*` for the rest (MX=es_MX,AR=es_AR|es_MX,*=en_US)";

/// Country (ISO 3166 alpha-2, upper case) → languages to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageMap {
    by_country: BTreeMap<String, Vec<String>>,
    rest: Vec<String>,
}

impl Default for LanguageMap {
    fn default() -> LanguageMap {
        LanguageMap::parse(DEFAULT_MAP).expect("the default map parses")
    }
}

impl LanguageMap {
    /// Parses the setting's value; the error says what is wrong (never more than the pair).
    pub fn parse(value: &str) -> Result<LanguageMap, String> {
        let mut map = LanguageMap {
            by_country: BTreeMap::new(),
            rest: Vec::new(),
        };
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (country, languages) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not COUNTRY=lang"))?;
            let country = country.trim().to_ascii_uppercase();
            if country != "*"
                && !(country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase()))
            {
                return Err(format!(
                    "`{country}` is not a two-letter country code or `*`"
                ));
            }
            let languages: Vec<String> =
                languages.split('|').map(|l| l.trim().to_string()).collect();
            if let Some(bad) = languages
                .iter()
                .find(|l| !super::request::valid_language(l))
            {
                return Err(format!(
                    "`{bad}` is not a language code such as es_MX or pt_BR"
                ));
            }
            if country == "*" {
                map.rest = languages;
            } else if map.by_country.insert(country.clone(), languages).is_some() {
                return Err(format!("{country} is given twice"));
            }
        }
        if map.by_country.is_empty() && map.rest.is_empty() {
            return Err("no pair".into());
        }
        Ok(map)
    }

    /// `WABRIDGE_TEMPLATE_LANGUAGES` through `get`, or the default map.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<LanguageMap, ConfigError> {
        match get(WABRIDGE_TEMPLATE_LANGUAGES).filter(|v| !v.trim().is_empty()) {
            None => Ok(LanguageMap::default()),
            Some(value) => LanguageMap::parse(&value).map_err(|problem| ConfigError::Invalid {
                name: WABRIDGE_TEMPLATE_LANGUAGES,
                value: problem,
                expected: EXPECTED,
            }),
        }
    }

    /// The languages to try for a recipient in `country` (none: a BSUID), in order, each once.
    pub fn candidates(&self, country: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let own = country.and_then(|c| self.by_country.get(&c.to_ascii_uppercase()));
        for l in own.into_iter().flatten().chain(&self.rest) {
            if !out.contains(l) {
                out.push(l.clone());
            }
        }
        out
    }
}

/// The first candidate among the `approved` languages; else the approved ones, sorted, to name
/// in the refusal.
pub fn choose(candidates: &[String], approved: &[String]) -> Result<String, Vec<String>> {
    candidates
        .iter()
        .find(|c| approved.contains(c))
        .cloned()
        .ok_or_else(|| {
            let mut named = approved.to_vec();
            named.sort();
            named
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_default_map_covers_the_first_markets() {
        let map = LanguageMap::default();
        assert_eq!(map.candidates(Some("MX")), ["es_MX", "en_US"]);
        assert_eq!(map.candidates(Some("br")), ["pt_BR", "en_US"]);
        assert_eq!(map.candidates(Some("AR")), ["es_AR", "en_US"]);
        assert_eq!(map.candidates(Some("FR")), ["en_US"]);
        assert_eq!(map.candidates(None), ["en_US"]);
    }

    #[test]
    fn a_configured_map_with_fallbacks() {
        let map = LanguageMap::parse("AR=es_AR|es_MX, CO=es_CO|es_MX ,*=es_MX").unwrap();
        assert_eq!(map.candidates(Some("AR")), ["es_AR", "es_MX"]);
        assert_eq!(map.candidates(Some("US")), ["es_MX"]);
        assert_eq!(
            choose(&map.candidates(Some("AR")), &strings(&["es_MX", "pt_BR"])),
            Ok("es_MX".to_string())
        );
        assert_eq!(
            choose(&map.candidates(Some("BR")), &strings(&["pt_BR", "en_US"])),
            Err(strings(&["en_US", "pt_BR"]))
        );
    }

    #[test]
    fn a_bad_map_names_the_setting_and_the_pair() {
        for (value, problem) in [
            ("MX:es_MX", "`MX:es_MX` is not COUNTRY=lang"),
            ("MEX=es_MX", "`MEX` is not a two-letter country code"),
            ("MX=spanish", "`spanish` is not a language code"),
            ("MX=es_MX,MX=es", "MX is given twice"),
        ] {
            let e = LanguageMap::from_lookup(|_| Some(value.into())).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(WABRIDGE_TEMPLATE_LANGUAGES), "{text}");
            assert!(text.contains(problem), "{value}: {text}");
        }
        assert_eq!(
            LanguageMap::from_lookup(|_| None).unwrap(),
            LanguageMap::default()
        );
    }
}
