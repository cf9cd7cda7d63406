//! The registry as stored items (docs/numbers.md, "On AWS"): one TOML text per number, plus
//! the file's top-level settings (`unknown_numbers`). [`split`] cuts a checked registry file
//! into those texts; [`join`] puts stored texts back together and checks them with the same
//! parser as the file ([`Numbers::parse`]), so one validator serves both engines and an item
//! edited by hand is refused naming its label, line and field.

use super::{digits, Numbers, NumbersError};

/// One number's entry as stored: its `[[number]]` table as TOML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The number's label: the item's key.
    pub label: String,
    pub phone_number_id: String,
    /// A TOML document holding this number's `[[number]]` table alone.
    pub text: String,
}

/// A registry file cut into items.
#[derive(Debug, Clone)]
pub struct Split {
    /// The file, checked.
    pub numbers: Numbers,
    /// One entry per number, in file order.
    pub entries: Vec<Entry>,
    /// The file's top-level settings as TOML text (`unknown_numbers = "…"`), if it has any.
    pub settings: Option<String>,
}

/// Checks a registry file (`file` names it in errors) and cuts it into one entry per number.
pub fn split(file: &str, bytes: &[u8]) -> Result<Split, NumbersError> {
    let numbers = Numbers::parse(file, bytes)?;
    // Parse checked the bytes: UTF-8, TOML, a `number` array of tables.
    let text = std::str::from_utf8(bytes).expect("parse checked UTF-8");
    let mut table: toml::Table = toml::from_str(text).expect("parse checked the TOML");
    let Some(toml::Value::Array(raw)) = table.remove("number") else {
        unreachable!("parse checked the [[number]] array")
    };
    let entries = raw
        .into_iter()
        .zip(numbers.all())
        .map(|(value, n)| Entry {
            label: n.label.clone(),
            phone_number_id: n.phone_number_id.clone(),
            text: document("number", toml::Value::Array(vec![value])),
        })
        .collect();
    let settings = (!table.is_empty()).then(|| toml::to_string(&table).expect("a TOML table"));
    Ok(Split {
        numbers,
        entries,
        settings,
    })
}

fn document(key: &str, value: toml::Value) -> String {
    let mut table = toml::Table::new();
    table.insert(key.to_string(), value);
    toml::to_string(&table).expect("a TOML table")
}

/// The registry of stored items (`source` names the store in errors: `table T`); `None` when
/// there is no entry. Each entry is checked alone (errors name its label and its own lines),
/// then the set: a label that is not its key, or a label, phone_number_id or display number
/// that repeats another entry's, is refused naming both.
pub fn join(
    source: &str,
    settings: Option<&str>,
    entries: &[Entry],
) -> Result<Option<Numbers>, NumbersError> {
    if entries.is_empty() {
        return Ok(None);
    }
    let mut checked: Vec<(&Entry, Numbers)> = Vec::with_capacity(entries.len());
    for e in entries {
        let item = format!("{source}, item `{}`", e.label);
        let alone = Numbers::parse(&item, e.text.as_bytes())?;
        let fail = |problem: String| NumbersError {
            file: item.clone(),
            line: None,
            problem,
        };
        let [n] = alone.all() else {
            return Err(fail(format!(
                "holds {} numbers: an item holds exactly one",
                alone.all().len()
            )));
        };
        if n.label != e.label {
            return Err(fail(format!(
                "`label` {:?} is not the item's label: remove the item and add the number again",
                n.label
            )));
        }
        for (other, seen) in &checked {
            let seen = &seen.all()[0];
            for (field, same) in [
                ("phone_number_id", n.phone_number_id == seen.phone_number_id),
                (
                    "display_number",
                    digits(&n.display_number) == digits(&seen.display_number),
                ),
            ] {
                if same {
                    return Err(fail(format!(
                        "number `{}`: `{field}` duplicates item `{}`",
                        n.label, other.label
                    )));
                }
            }
        }
        checked.push((e, alone));
    }
    let mut text = settings.map(|s| format!("{s}\n")).unwrap_or_default();
    for e in entries {
        text.push_str(&e.text);
        text.push('\n');
    }
    let settings_error = |e: NumbersError| NumbersError {
        file: format!("{source}, settings"),
        line: None,
        problem: e.problem,
    };
    Numbers::parse(source, text.as_bytes())
        .map(Some)
        .map_err(settings_error)
}

#[cfg(test)]
#[path = "items_tests.rs"]
mod tests;
