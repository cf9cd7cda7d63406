//! Meta's template list, one page at a time: each template as the registry keeps it, and its
//! placeholders.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::SyncError;
use crate::templates::TemplateStatus;

/// One template as Meta lists it: what the registry keeps, and what `templates plan` compares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteTemplate {
    /// Meta's template id (`hsm_id`): one per name and language.
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    pub status: Option<TemplateStatus>,
    pub category: Option<String>,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`), as Meta said (absent = positional).
    pub parameter_format: Option<String>,
    /// Distinct placeholders of the BODY component.
    pub body_parameters: u32,
    /// `rejected_reason` (NONE is left out).
    pub reason: Option<String>,
    /// `quality_score.score`: GREEN, YELLOW, RED or UNKNOWN.
    pub quality: Option<String>,
    /// The components as Meta lists them.
    #[serde(skip)]
    pub components: Vec<Value>,
}

impl RemoteTemplate {
    /// A template Meta lists with nothing known yet but its name and language (fill the rest
    /// with struct update syntax).
    pub fn named(name: &str, language: &str) -> RemoteTemplate {
        RemoteTemplate {
            id: None,
            name: name.to_string(),
            language: language.to_string(),
            status: None,
            category: None,
            parameter_format: None,
            body_parameters: 0,
            reason: None,
            quality: None,
            components: Vec::new(),
        }
    }
}

/// The distinct placeholders (`{{1}}`, `{{first_name}}`) of a template text, in first-seen
/// order. A placeholder is `{{` + letters, digits or `_` (spaces around allowed) + `}}`;
/// anything else between braces is text.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let inner = after[..close].trim();
        if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            if seen.insert(inner.to_string()) {
                out.push(inner.to_string());
            }
            rest = &after[close + 2..];
        } else {
            // Not a placeholder: look again from the next brace.
            rest = &rest[open + 1..];
        }
    }
    out
}

/// How many parameters the BODY component of `components` takes: its text's distinct
/// placeholders, or, without a text, how many values its `example` gives.
pub fn body_parameter_count(components: &[Value]) -> u32 {
    let Some(body) = components.iter().find(|c| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("BODY"))
    }) else {
        return 0;
    };
    if let Some(text) = body.get("text").and_then(Value::as_str) {
        return placeholders(text).len() as u32;
    }
    let example = body.get("example");
    let positional = example
        .and_then(|e| e.pointer("/body_text/0"))
        .and_then(Value::as_array)
        .map(Vec::len);
    let named = example
        .and_then(|e| e.get("body_text_named_params"))
        .and_then(Value::as_array)
        .map(Vec::len);
    positional.or(named).unwrap_or(0) as u32
}

/// One page of Meta's answer: the templates it lists, how many items lacked a name or a
/// language (skipped), and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub templates: Vec<RemoteTemplate>,
    pub skipped: usize,
    pub next_after: Option<String>,
}

/// Parses one page (`{"data": [...], "paging": {"cursors": {"after"}, "next"}}`).
pub fn parse_page(body: &Value) -> Result<Page, SyncError> {
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| SyncError::Invalid("the answer has no `data` array".into()))?;
    let mut templates = Vec::with_capacity(data.len());
    let mut skipped = 0;
    for item in data {
        let text = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let (Some(name), Some(language)) = (text("name"), text("language")) else {
            skipped += 1;
            continue;
        };
        let components = item
            .get("components")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        templates.push(RemoteTemplate {
            id: item.get("id").and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            }),
            name: name.to_string(),
            language: language.to_string(),
            status: text("status").map(TemplateStatus::new),
            category: text("category").map(|c| c.to_ascii_uppercase()),
            parameter_format: text("parameter_format").map(|f| f.to_ascii_uppercase()),
            body_parameters: body_parameter_count(components),
            reason: text("rejected_reason")
                .filter(|r| !r.eq_ignore_ascii_case("NONE"))
                .map(str::to_string),
            quality: item
                .pointer("/quality_score/score")
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase),
            components: components.to_vec(),
        });
    }
    let next_after = next_cursor(body).map_err(|e| SyncError::Invalid(e.into()))?;
    Ok(Page {
        templates,
        skipped,
        next_after,
    })
}

/// The cursor of the next page of a Graph API list (`paging.cursors.after` while the answer
/// carries `paging.next`, Meta's mark of a further page); an error when it marks a next page
/// without a cursor. The `next` URL itself is never fetched: the token goes to the configured
/// host only.
pub fn next_cursor(body: &Value) -> Result<Option<String>, &'static str> {
    let has_next = body
        .pointer("/paging/next")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let after = body
        .pointer("/paging/cursors/after")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    match (has_next, after) {
        (false, _) => Ok(None),
        (true, Some(after)) => Ok(Some(after)),
        (true, None) => Err("the answer has `paging.next` but no `paging.cursors.after`"),
    }
}
