//! The local Zoho's records: Contacts and Deals (upsert, update, plain insert, delete, search),
//! Notes (insert, a contact's related list) and the fields metadata, each request checked
//! against the documented keys and types.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::zoho_fake::{error, Stored, ZohoFake};

/// Keys an upsert body takes besides `data`.
const UPSERT_KEYS: &[&str] = &[
    "data",
    "duplicate_check_fields",
    "trigger",
    "skip_feature_execution",
];
/// Keys a note takes (v8: `Parent_Id` is `{"module": {"api_name"}, "id"}`).
const NOTE_KEYS: &[&str] = &["Note_Title", "Note_Content", "Parent_Id"];
/// Whether `v` is a non-empty text value.
fn filled(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// Fields a module requires on insert.
fn mandatory(module: &str) -> &'static [&'static str] {
    match module {
        "Contacts" => &["Last_Name"],
        "Deals" => &["Deal_Name", "Stage"],
        _ => &[],
    }
}

pub(super) fn route(
    fake: &ZohoFake,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: Option<Map<String, Value>>,
) -> Response {
    if query
        .get("per_page")
        .is_some_and(|p| !p.parse::<u64>().is_ok_and(|p| (1..=200).contains(&p)))
    {
        return fake.problem(format!("per_page {:?}", query.get("per_page")));
    }
    match (method.as_str(), segments) {
        ("GET", ["settings", "fields"]) => fields(fake, query),
        ("POST", ["Cases", "upsert"]) => super::zoho_fake_cases::upsert(fake, body.unwrap()),
        ("GET", ["Contacts", id, "Cases"]) => super::zoho_fake_cases::related(fake, id, query),
        ("DELETE", ["Cases", id]) => super::zoho_fake_cases::delete(fake, id),
        ("POST", [module @ ("Contacts" | "Deals"), "upsert"]) => {
            upsert(fake, module, body.unwrap())
        }
        ("POST", ["Deals"]) => insert_plain(fake, body.unwrap()),
        ("PUT", ["Contacts", id]) => update(fake, id, body.unwrap()),
        ("DELETE", ["Contacts", id]) => match fake.contacts.lock().unwrap().remove(*id) {
            Some(_) => Json(json!({"data": [{"code": "SUCCESS", "details": {"id": id},
                "message": "record deleted", "status": "success"}]}))
            .into_response(),
            None => fake.problem(format!("DELETE Contacts/{id}: no such record")),
        },
        ("GET", ["Contacts", "search"]) => search(fake, query),
        ("POST", ["Notes"]) => add_note(fake, body.unwrap()),
        ("GET", ["Contacts", id, "Notes"]) => list_notes(fake, id, query),
        _ => fake.problem(format!(
            "{method} /crm/v8/{}: no such endpoint",
            segments.join("/")
        )),
    }
}

fn fields(fake: &ZohoFake, query: &HashMap<String, String>) -> Response {
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

/// What is wrong with `record` for `module`, if anything.
fn shape(fake: &ZohoFake, module: &str, record: &Map<String, Value>) -> Option<String> {
    let known = fake.fields(module);
    for (key, value) in record {
        if !known.iter().any(|(n, _)| n == key) {
            return Some(format!("{module}: no field `{key}`"));
        }
        let lookup = module == "Deals" && key == "Contact_Name";
        let ok = if lookup {
            value["id"].is_string()
        } else {
            value.is_string() || value.is_null()
        };
        if !ok {
            return Some(format!(
                "{module}.{key}: {value} is not of the field's type"
            ));
        }
    }
    None
}

fn store<'a>(
    fake: &'a ZohoFake,
    module: &str,
) -> std::sync::MutexGuard<'a, BTreeMap<String, Stored>> {
    if module == "Contacts" {
        fake.contacts.lock().unwrap()
    } else {
        fake.deals.lock().unwrap()
    }
}

/// Which unique field of `module` another record than `except` already holds `record`'s value in.
fn duplicate(
    fake: &ZohoFake,
    module: &str,
    records: &BTreeMap<String, Stored>,
    record: &Map<String, Value>,
    except: Option<&str>,
) -> Option<String> {
    fake.fields(module)
        .into_iter()
        .filter(|(_, unique)| *unique)
        .find(|(name, _)| {
            record.get(name).is_some_and(|v| !v.is_null())
                && records.iter().any(|(id, r)| {
                    Some(id.as_str()) != except && r.body.get(name) == record.get(name)
                })
        })
        .map(|(name, _)| name)
}

fn duplicate_data(name: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(
            json!({"data": [{"code": "DUPLICATE_DATA", "details": {"api_name": name},
            "message": "duplicate data", "status": "error"}]}),
        ),
    )
        .into_response()
}

fn success(status: StatusCode, action: &str, id: &str, duplicate_field: Option<&str>) -> Response {
    let message = if action == "insert" {
        "record added"
    } else {
        "record updated"
    };
    (
        status,
        Json(json!({"data": [{"code": "SUCCESS", "duplicate_field": duplicate_field, "action": action,
            "details": {"id": id, "Modified_Time": "2026-12-04T10:00:00-03:00"},
            "message": message, "status": "success"}]})),
    )
        .into_response()
}

fn upsert(fake: &ZohoFake, module: &str, body: Map<String, Value>) -> Response {
    if let Some(k) = body.keys().find(|k| !UPSERT_KEYS.contains(&k.as_str())) {
        return fake.problem(format!("{module} upsert: unknown key `{k}`"));
    }
    let Some([record]) = body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return fake.problem(format!("{module} upsert: one record in `data` expected"));
    };
    let Some(record) = record.as_object() else {
        return fake.problem(format!("{module} upsert: the record is not an object"));
    };
    if let Some(p) = shape(fake, module, record) {
        return fake.problem(p);
    }
    let checks: Vec<String> = match body.get("duplicate_check_fields") {
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
            a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
        }
        other => return fake.problem(format!("{module} upsert: duplicate_check_fields {other:?}")),
    };
    let fields = fake.fields(module);
    for check in &checks {
        if !fields.iter().any(|(n, unique)| n == check && *unique) {
            return fake.problem(format!(
                "{module} upsert: `{check}` is not a unique field (duplicate check)"
            ));
        }
        if !filled(record.get(check)) {
            return fake.problem(format!(
                "{module} upsert: the record has no `{check}` value"
            ));
        }
    }
    let mut records = store(fake, module);
    // The first duplicate-check field that matches a record settles it.
    let found = checks.iter().find_map(|check| {
        records
            .iter()
            .find(|(_, r)| r.body.get(check) == record.get(check))
            .map(|(id, _)| (id.clone(), check.clone()))
    });
    match found {
        Some((id, field)) => {
            if let Some(name) = duplicate(fake, module, &records, record, Some(&id)) {
                return duplicate_data(&name);
            }
            let stored = records.get_mut(&id).unwrap();
            stored.body.extend(record.clone());
            stored.written = Instant::now();
            success(StatusCode::OK, "update", &id, Some(&field))
        }
        None => insert(fake, module, &mut records, record.clone()),
    }
}

fn insert(
    fake: &ZohoFake,
    module: &str,
    records: &mut BTreeMap<String, Stored>,
    record: Map<String, Value>,
) -> Response {
    if let Some(name) = mandatory(module).iter().find(|n| !filled(record.get(**n))) {
        return fake.problem(format!("{module}: mandatory field `{name}` missing"));
    }
    if let Some(name) = duplicate(fake, module, records, &record, None) {
        return duplicate_data(&name);
    }
    if module == "Deals" {
        let contact = record["Contact_Name"]["id"].as_str().unwrap_or_default();
        if !fake.contacts.lock().unwrap().contains_key(contact) {
            return fake.problem(format!("Deals: Contact_Name {contact} does not exist"));
        }
    }
    let id = fake.id();
    records.insert(
        id.clone(),
        Stored {
            body: record,
            written: Instant::now(),
        },
    );
    success(StatusCode::CREATED, "insert", &id, None)
}

fn insert_plain(fake: &ZohoFake, body: Map<String, Value>) -> Response {
    let Some([Value::Object(record)]) = body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return fake.problem("POST Deals: one record in `data` expected".into());
    };
    if let Some(p) = shape(fake, "Deals", record) {
        return fake.problem(p);
    }
    let mut deals = fake.deals.lock().unwrap();
    insert(fake, "Deals", &mut deals, record.clone())
}

fn update(fake: &ZohoFake, id: &str, body: Map<String, Value>) -> Response {
    let Some([Value::Object(record)]) = body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return fake.problem(format!("PUT Contacts/{id}: one record in `data` expected"));
    };
    if let Some(p) = shape(fake, "Contacts", record) {
        return fake.problem(p);
    }
    let mut contacts = fake.contacts.lock().unwrap();
    if let Some(name) = duplicate(fake, "Contacts", &contacts, record, Some(id)) {
        return duplicate_data(&name);
    }
    let Some(stored) = contacts.get_mut(id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the id given seems to be invalid",
            json!({"api_name": "id"}),
        );
    };
    stored.body.extend(record.clone());
    stored.written = Instant::now();
    success(StatusCode::OK, "update", id, None)
}

/// `criteria=(Field:equals:value)`, Zoho's escapes undone; records written within the lag are
/// not found yet. No match: 204, no body.
fn search(fake: &ZohoFake, query: &HashMap<String, String>) -> Response {
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

fn add_note(fake: &ZohoFake, body: Map<String, Value>) -> Response {
    let Some([Value::Object(note)]) = body
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return fake.problem("POST Notes: one note in `data` expected".into());
    };
    if let Some(k) = note.keys().find(|k| !NOTE_KEYS.contains(&k.as_str())) {
        return fake.problem(format!("POST Notes: unknown key `{k}`"));
    }
    if !note.get("Note_Content").is_some_and(Value::is_string) {
        return fake.problem("POST Notes: Note_Content is required".into());
    }
    let parent = &note["Parent_Id"];
    if parent["module"]["api_name"] != "Contacts" || !parent["id"].is_string() {
        return fake.problem(format!(
            "POST Notes: Parent_Id {parent} (v8: module.api_name and id)"
        ));
    }
    if !fake
        .contacts
        .lock()
        .unwrap()
        .contains_key(parent["id"].as_str().unwrap())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the related id given seems to be invalid",
            json!({"api_name": "Parent_Id"}),
        );
    }
    let id = fake.id();
    let mut stored = note.clone();
    stored.insert("id".into(), json!(id));
    fake.notes.lock().unwrap().push(Value::Object(stored));
    success(StatusCode::CREATED, "insert", &id, None)
}

/// A contact's notes, newest first: a related list, read from the database (no lag).
fn list_notes(fake: &ZohoFake, contact: &str, query: &HashMap<String, String>) -> Response {
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
