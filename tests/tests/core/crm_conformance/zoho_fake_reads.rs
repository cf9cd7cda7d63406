//! The local Zoho's reads: the fields metadata, contact search (behind its index lag) and a
//! contact's notes (a related list, no lag), each request checked against the documented
//! parameters.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::zoho_fake::{error, ZohoFake};

pub(super) fn fields(fake: &ZohoFake, query: &HashMap<String, String>) -> Response {
    let Some(module) = query.get("module") else {
        return error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({"param_name": "module"}),
        );
    };
    let fields: Vec<Value> = fake
        .fields(module)
        .into_iter()
        .map(|(name, unique)| {
            let unique = if unique {
                json!({"casesensitive": "false"})
            } else {
                json!({})
            };
            json!({"api_name": name, "field_label": name.replace('_', " "),
                "data_type": "text", "unique": unique})
        })
        .collect();
    Json(json!({"fields": fields})).into_response()
}

/// `criteria=(Field:equals:value)`, Zoho's escapes undone; records written within the lag are
/// not found yet. No match: 204, no body.
pub(super) fn search(fake: &ZohoFake, query: &HashMap<String, String>) -> Response {
    let Some(criteria) = query.get("criteria") else {
        return fake.problem(format!("Contacts/search: criteria expected ({query:?})"));
    };
    let inner = criteria.strip_prefix('(').and_then(|c| c.strip_suffix(')'));
    let Some((field, value)) = inner.and_then(|c| {
        let (field, rest) = c.split_once(":equals:")?;
        Some((
            field.to_string(),
            rest.replace("\\(", "(")
                .replace("\\)", ")")
                .replace("\\,", ","),
        ))
    }) else {
        return fake.problem(format!("Contacts/search: criteria {criteria}"));
    };
    if !fake.fields("Contacts").iter().any(|(n, _)| *n == field) {
        return fake.problem(format!("Contacts/search: no field `{field}`"));
    }
    let lag = *fake.search_lag.lock().unwrap();
    let data: Vec<Value> = fake
        .contacts
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.written.elapsed() >= lag && r.body.get(&field) == Some(&json!(value)))
        .map(|(id, _)| json!({"id": id}))
        .collect();
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"data": data, "info": {"per_page": 200, "count": data.len(), "page": 1, "more_records": false}}))
        .into_response()
}

/// A contact's notes, newest first: a related list, read from the database (no lag).
pub(super) fn list_notes(
    fake: &ZohoFake,
    contact: &str,
    query: &HashMap<String, String>,
) -> Response {
    let Some(wanted) = query.get("fields") else {
        return fake.problem("GET Contacts/{id}/Notes: `fields` is required in v8".into());
    };
    let wanted: Vec<&str> = wanted.split(',').collect();
    if let Some(f) = wanted
        .iter()
        .find(|f| !["Note_Title", "Note_Content", "Parent_Id", "Created_Time"].contains(f))
    {
        return fake.problem(format!("GET Notes: no field `{f}`"));
    }
    if query
        .get("sort_by")
        .is_some_and(|s| !["id", "Created_Time", "Modified_Time"].contains(&s.as_str()))
        || query
            .get("sort_order")
            .is_some_and(|s| !["asc", "desc"].contains(&s.as_str()))
    {
        return fake.problem(format!("GET Notes: sort {query:?}"));
    }
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(200);
    let data: Vec<Value> = fake
        .notes
        .lock()
        .unwrap()
        .iter()
        .rev()
        .filter(|n| n["Parent_Id"]["id"] == contact)
        .take(per_page)
        .map(|n| {
            let mut v = Map::new();
            v.insert("id".into(), n["id"].clone());
            for f in &wanted {
                v.insert(f.to_string(), n[*f].clone());
            }
            Value::Object(v)
        })
        .collect();
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"data": data, "info": {"per_page": per_page, "more_records": false}}))
        .into_response()
}
