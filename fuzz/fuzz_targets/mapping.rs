//! The mapping engine: records read from fuzzed JSON through the example mappings, one mapping
//! per rule and transform, and (after a `#record` line) a fuzzed mapping file. `apply` never
//! panics, is deterministic, and what it lets through keeps the rules it claims: required
//! fields present, E.164 fields canonical, lengths and catalogs kept; what it refuses names a
//! field of the record's kind and a known rule.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wabridge_core::identity::E164;
use wabridge_core::mapping::{E164Rule, FieldSpec, Mapping};
use wabridge_core::records::Record;

/// Canonical fields of every record kind, as alternatives, so each rule sees every kind.
const ANY: &str = "name|text|phone_e164|wa_id|bsuid|username|event|status|reason|headline|\
                   referral.ctwa_clid|referral.source_url|context.id|raw|evidence|category|\
                   kind|id|event_id";

/// One field per rule and transform: `apply` stops at the first broken rule, so each gets its
/// own mapping.
fn rule_snippets() -> Vec<String> {
    let rules = [
        "required = true".to_string(),
        "e164 = true".to_string(),
        "email = true".to_string(),
        "url = true".to_string(),
        "one_of = [\"opt_in\", \"opt_out\", \"APPROVED\"]".to_string(),
        "max_length = 8".to_string(),
        "regex = '^[A-Za-z]+( [A-Za-z]+)*$'".to_string(),
        "transform = [\"trim\", \"first_name\", \"upper\"]\nmax_length = 4".to_string(),
        "transform = [\"last_name\", \"lower\"]\ndefault = \"x\"".to_string(),
        "transform = [\"digits\"]\ne164 = true".to_string(),
        "transform = [\"trim\"]\nrequired = true\ndefault = \"WhatsApp\"".to_string(),
    ];
    rules
        .iter()
        .map(|r| format!("to = \"f\"\nfrom = \"{ANY}\"\n{r}\n"))
        .collect()
}

fn fixed_mappings() -> &'static [Mapping] {
    static MAPPINGS: OnceLock<Vec<Mapping>> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        let mut all: Vec<Mapping> = ["local", "webhook", "hubspot"]
            .iter()
            .map(|crm| Mapping::example(crm).expect("example mapping loads"))
            .collect();
        for snippet in rule_snippets() {
            for list in [
                "contact",
                "activity",
                "consent_fields",
                "template_status",
                "quality",
                "unknown",
            ] {
                let text = format!("version = 1\n[[{list}]]\n{snippet}");
                all.push(Mapping::from_toml(&text).expect("rule mapping loads"));
            }
        }
        all
    })
}

fn fields_for<'m>(mapping: &'m Mapping, kind: &str) -> &'m [FieldSpec] {
    match kind {
        "contact" => &mapping.contact,
        "activity" => &mapping.activity,
        "consent" => &mapping.consent_fields,
        "template_status" => &mapping.template_status,
        "quality" => &mapping.quality,
        _ => &mapping.unknown,
    }
}

fn check(mapping: &Mapping, record: &Record) {
    let result = mapping.apply(record);
    assert_eq!(result, mapping.apply(record), "apply is deterministic");
    let specs = fields_for(mapping, record.kind());
    match result {
        Ok(out) => {
            for key in out.keys() {
                assert!(specs.iter().any(|s| &s.to == key), "{key} is not mapped");
            }
            for spec in specs {
                let Some(value) = out.get(&spec.to) else {
                    assert!(!spec.required, "required `{}` left out", spec.to);
                    continue;
                };
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match spec.e164 {
                    E164Rule::Off => {}
                    // Canonical E.164 (a `wa_id` the metadata does not know yet passes too).
                    E164Rule::Possible => {
                        assert!(
                            text.starts_with('+') && text[1..].bytes().all(|b| b.is_ascii_digit())
                        );
                    }
                    E164Rule::Valid => {
                        let e = E164::parse(&text, None).expect("an e164 field is a valid number");
                        assert_eq!(e.as_str(), text);
                    }
                }
                if let Some(max) = spec.max_length {
                    assert!(text.chars().count() <= max);
                }
                if let Some(catalog) = &spec.one_of {
                    assert!(catalog.contains(&text));
                }
            }
        }
        Err(e) => {
            assert_eq!(e.kind, record.kind());
            assert!(specs.iter().any(|s| s.to == e.field), "{e}");
            assert!(
                [
                    "required",
                    "e164",
                    "email",
                    "url",
                    "one_of",
                    "max_length",
                    "regex"
                ]
                .contains(&e.rule.as_str()),
                "{e}"
            );
            assert!(!e.to_string().is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `<mapping TOML>\n#record\n<record JSON>`: a fuzzed mapping file over a fuzzed record.
    if let Some((toml, json)) = text.split_once("\n#record\n") {
        let Ok(mapping) = Mapping::from_toml(toml) else {
            return;
        };
        assert_eq!(mapping.version, 1);
        let Ok(record) = serde_json::from_str::<Record>(json) else {
            return;
        };
        check(&mapping, &record);
        return;
    }
    let Ok(record) = serde_json::from_str::<Record>(text) else {
        return;
    };
    // The record's stored form reads back as a record of the same kind and key.
    let back: Record = serde_json::from_value(record.to_value()).expect("record reads back");
    assert_eq!(back.kind(), record.kind());
    assert_eq!(back.record_key(), record.record_key());
    for mapping in fixed_mappings() {
        check(mapping, &record);
    }
});
