//! The local Zoho's Cases module: upsert with `duplicate_check_fields` (one record a call, as
//! the adapter sends), a contact's Cases related list, and delete, each request checked against
//! the documented keys and types: lookups (`Contact_Name`, `Owner`) as `{"id"}`, Number fields
//! as JSON numbers, date-times as `yyyy-MM-ddTHH:mm:ss±HH:mm`. A new Case without one of the
//! module's mandatory fields (`Subject`, `Status`, `Case_Origin`) gets Zoho's
//! `MANDATORY_NOT_FOUND`; a `Contact_Name` that does not exist, `INVALID_DATA`.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::zoho_fake::{Stored, ZohoFake};

const UPSERT_KEYS: &[&str] = &[
    "data",
    "duplicate_check_fields",
    "trigger",
    "skip_feature_execution",
];
const MANDATORY: &[&str] = &["Subject", "Status", "Case_Origin"];
const LOOKUPS: &[&str] = &["Contact_Name", "Owner"];
const NUMBERS: &[&str] = &["wabridge_Revision", "wabridge_First_Response_Ms"];
const DATETIMES: &[&str] = &["wabridge_SLA_Breached_At"];

/// Whether `v` is a non-empty text value.
fn filled(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

fn is_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 25
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && matches!(b[19], b'+' | b'-')
        && b[22] == b':'
        && v.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 22].contains(&i) || c.is_ascii_digit())
}

/// What is wrong with `record`'s shape, if anything.
fn shape(fake: &ZohoFake, record: &Map<String, Value>) -> Option<String> {
    let known = fake.fields("Cases");
    for (key, value) in record {
        if !known.iter().any(|(n, _)| n == key) {
            return Some(format!("Cases: no field `{key}`"));
        }
        let ok = if LOOKUPS.contains(&key.as_str()) {
            value["id"].is_string() && value.as_object().is_some_and(|o| o.len() == 1)
        } else if NUMBERS.contains(&key.as_str()) {
            value.is_i64() || value.is_u64()
        } else if DATETIMES.contains(&key.as_str()) {
            value.as_str().is_some_and(is_datetime)
        } else {
            value.is_string()
        };
        if !ok {
            return Some(format!("Cases.{key}: {value} is not of the field's type"));
        }
    }
    None
}

/// Zoho's record-level error, as the whole answer of a one-record call.
fn record_error(code: &str, api_name: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"data": [{"code": code,
            "details": {"api_name": api_name, "json_path": format!("$.data[0].{api_name}")},
            "message": message, "status": "error"}]})),
    )
        .into_response()
}

fn success(status: StatusCode, action: &str, id: &str, duplicate_field: Option<&str>) -> Response {
    (
        status,
        Json(
            json!({"data": [{"code": "SUCCESS", "duplicate_field": duplicate_field,
            "action": action, "details": {"id": id, "Modified_Time": "2026-12-04T10:00:00-03:00"},
            "message": if action == "insert" { "record added" } else { "record updated" },
            "status": "success"}]}),
        ),
    )
        .into_response()
}

pub(super) fn upsert(fake: &ZohoFake, body: Map<String, Value>) -> Response {
    if let Some(k) = body.keys().find(|k| !UPSERT_KEYS.contains(&k.as_str())) {
        return fake.problem(format!("Cases upsert: unknown key `{k}`"));
    }
    let Some([Value::Object(record)]) = body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return fake.problem("Cases upsert: one record in `data` expected".into());
    };
    if let Some(p) = shape(fake, record) {
        return fake.problem(p);
    }
    let checks: Vec<&str> = match body.get("duplicate_check_fields") {
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect()
        }
        other => return fake.problem(format!("Cases upsert: duplicate_check_fields {other:?}")),
    };
    let fields = fake.fields("Cases");
    for check in &checks {
        if !fields.iter().any(|(n, unique)| n == check && *unique) {
            return fake.problem(format!(
                "Cases upsert: `{check}` is not a unique field (duplicate check)"
            ));
        }
        if !filled(record.get(*check)) {
            return fake.problem(format!("Cases upsert: the record has no `{check}` value"));
        }
    }
    if let Some(contact) = record.get("Contact_Name") {
        let id = contact["id"].as_str().unwrap_or_default();
        if !fake.contacts.lock().unwrap().contains_key(id) {
            return record_error(
                "INVALID_DATA",
                "Contact_Name",
                "the related id given seems to be invalid",
            );
        }
    }
    let mut cases = fake.cases.lock().unwrap();
    let found = checks.iter().find_map(|check| {
        cases
            .iter()
            .find(|(_, c)| c.body.get(*check) == record.get(*check))
            .map(|(id, _)| (id.clone(), check.to_string()))
    });
    if let Some((id, field)) = found {
        let stored = cases.get_mut(&id).unwrap();
        stored.body.extend(record.clone());
        stored.written = Instant::now();
        return success(StatusCode::OK, "update", &id, Some(&field));
    }
    if let Some(name) = MANDATORY.iter().find(|m| !filled(record.get(**m))) {
        return record_error("MANDATORY_NOT_FOUND", name, "required field not found");
    }
    let id = fake.id();
    cases.insert(
        id.clone(),
        Stored {
            body: record.clone(),
            written: Instant::now(),
        },
    );
    success(StatusCode::CREATED, "insert", &id, None)
}

/// `GET /crm/v8/Contacts/{id}/Cases?fields=…`: the contact's Cases, read from the database.
pub(super) fn related(fake: &ZohoFake, contact: &str, query: &HashMap<String, String>) -> Response {
    let Some(wanted) = query.get("fields") else {
        return fake.problem("GET Contacts/{id}/Cases: `fields` is required in v8".into());
    };
    let wanted: Vec<&str> = wanted.split(',').collect();
    let known = fake.fields("Cases");
    if let Some(f) = wanted
        .iter()
        .find(|f| **f != "id" && !known.iter().any(|(n, _)| n == *f))
    {
        return fake.problem(format!("GET Contacts/{{id}}/Cases: no field `{f}`"));
    }
    let data: Vec<Value> = fake
        .cases
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, c)| c.body.get("Contact_Name").map(|l| &l["id"]) == Some(&json!(contact)))
        .map(|(id, c)| {
            let mut v = Map::new();
            v.insert("id".into(), json!(id));
            for f in wanted.iter().filter(|f| **f != "id") {
                v.insert(
                    f.to_string(),
                    c.body.get(*f).cloned().unwrap_or(Value::Null),
                );
            }
            Value::Object(v)
        })
        .collect();
    if data.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"data": data, "info": {"per_page": 200, "more_records": false}})).into_response()
}

pub(super) fn delete(fake: &ZohoFake, id: &str) -> Response {
    match fake.cases.lock().unwrap().remove(id) {
        Some(_) => Json(json!({"data": [{"code": "SUCCESS", "details": {"id": id},
            "message": "record deleted", "status": "success"}]}))
        .into_response(),
        None => fake.problem(format!("DELETE Cases/{id}: no such record")),
    }
}
