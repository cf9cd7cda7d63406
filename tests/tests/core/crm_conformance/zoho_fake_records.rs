//! The local Zoho's records: Contacts and Deals (upsert, update, plain insert, delete, search),
//! Notes (insert, a contact's related list) and the fields metadata, each request checked
//! against the documented keys and types. Writes take up to 100 records and answer each one
//! for itself, in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::zoho_fake::{error, Stored, ZohoFake};
use super::zoho_fake_reads::{fields, list_notes, search};

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
        ("POST", ["Notes"]) => add_notes(fake, body.unwrap()),
        ("GET", ["Contacts", id, "Notes"]) => list_notes(fake, id, query),
        _ => fake.problem(format!(
            "{method} /crm/v8/{}: no such endpoint",
            segments.join("/")
        )),
    }
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

/// Zoho's most records per insert, update or upsert.
const MAX_RECORDS: usize = 100;

fn duplicate_data(name: &str) -> Value {
    json!({"code": "DUPLICATE_DATA", "details": {"api_name": name}, "message": "duplicate data",
        "status": "error"})
}

fn success(action: Option<&str>, id: &str, duplicate_field: Option<&str>) -> Value {
    let message = if action == Some("update") {
        "record updated"
    } else {
        "record added"
    };
    let mut answer = json!({"code": "SUCCESS",
        "details": {"id": id, "Modified_Time": "2026-12-04T10:00:00-03:00"},
        "message": message, "status": "success"});
    if let Some(action) = action {
        // Upserts say what they did; inserts do not.
        answer["action"] = json!(action);
        answer["duplicate_field"] = json!(duplicate_field);
    }
    answer
}

/// The answer of a write, one entry per record: 201 all inserted, 200 all written, 207
/// Multi-Status some refused, 400 all refused.
fn answer(fake: &ZohoFake, results: Vec<Value>) -> Response {
    let refused = results.iter().filter(|r| r["status"] == "error").count();
    let status = if refused == results.len() {
        StatusCode::BAD_REQUEST
    } else if refused > 0 {
        fake.multi_status.fetch_add(1, Ordering::Relaxed);
        StatusCode::MULTI_STATUS
    } else if results.iter().all(|r| r["action"] != "update") {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({ "data": results }))).into_response()
}

/// The records of a write's `data`: 1 to 100 objects (more: Zoho's `LIMIT_EXCEEDED`).
fn records_of(
    fake: &ZohoFake,
    what: &str,
    body: &Map<String, Value>,
) -> Result<Vec<Map<String, Value>>, Box<Response>> {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return Err(Box::new(
            fake.problem(format!("{what}: `data` is not a list")),
        ));
    };
    if data.len() > MAX_RECORDS {
        fake.problems
            .lock()
            .unwrap()
            .push(format!("{what}: {} records in one call", data.len()));
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "limit exceeded",
            json!({"limit": MAX_RECORDS}),
        )));
    }
    if data.is_empty() || !data.iter().all(Value::is_object) {
        return Err(Box::new(fake.problem(format!(
            "{what}: `data` holds no records, or not objects"
        ))));
    }
    Ok(data.iter().filter_map(|r| r.as_object().cloned()).collect())
}

/// The org's validation rule: a field holding a refused value is that record's `INVALID_DATA`.
fn validation(fake: &ZohoFake, i: usize, record: &Map<String, Value>) -> Option<Value> {
    let refused = fake.refused_values.lock().unwrap();
    let (name, _) = record
        .iter()
        .find(|(_, v)| v.as_str().is_some_and(|v| refused.contains(v)))?;
    Some(
        json!({"code": "INVALID_DATA", "details": {"api_name": name, "json_path": format!("$.data[{i}].{name}")},
            "message": "invalid data", "status": "error"}),
    )
}

fn upsert(fake: &ZohoFake, module: &str, body: Map<String, Value>) -> Response {
    if let Some(k) = body.keys().find(|k| !UPSERT_KEYS.contains(&k.as_str())) {
        return fake.problem(format!("{module} upsert: unknown key `{k}`"));
    }
    let records = match records_of(fake, &format!("{module} upsert"), &body) {
        Ok(records) => records,
        Err(refused) => return *refused,
    };
    let checks: Vec<String> = match body.get("duplicate_check_fields") {
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
            a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
        }
        other => return fake.problem(format!("{module} upsert: duplicate_check_fields {other:?}")),
    };
    let fields = fake.fields(module);
    if let Some(check) = checks
        .iter()
        .find(|c| !fields.iter().any(|(n, unique)| n == *c && *unique))
    {
        return fake.problem(format!(
            "{module} upsert: `{check}` is not a unique field (duplicate check)"
        ));
    }
    // Zoho writes the records in order: a later one sees an earlier one of the same call.
    let results = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| upsert_one(fake, module, &checks, i, record))
        .collect();
    answer(fake, results)
}

fn upsert_one(
    fake: &ZohoFake,
    module: &str,
    checks: &[String],
    i: usize,
    record: Map<String, Value>,
) -> Value {
    if let Some(p) = shape(fake, module, &record) {
        return fake.record_problem(p);
    }
    if let Some(check) = checks.iter().find(|c| !filled(record.get(*c))) {
        return fake.record_problem(format!(
            "{module} upsert: record {i} has no `{check}` value"
        ));
    }
    if let Some(refused) = validation(fake, i, &record) {
        return refused;
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
            if let Some(name) = duplicate(fake, module, &records, &record, Some(&id)) {
                return duplicate_data(&name);
            }
            let stored = records.get_mut(&id).unwrap();
            stored.body.extend(record);
            stored.written = Instant::now();
            success(Some("update"), &id, Some(&field))
        }
        None => insert(fake, module, &mut records, record, Some("insert")),
    }
}

fn insert(
    fake: &ZohoFake,
    module: &str,
    records: &mut BTreeMap<String, Stored>,
    record: Map<String, Value>,
    action: Option<&str>,
) -> Value {
    if let Some(name) = mandatory(module).iter().find(|n| !filled(record.get(**n))) {
        return fake.record_problem(format!("{module}: mandatory field `{name}` missing"));
    }
    if let Some(name) = duplicate(fake, module, records, &record, None) {
        return duplicate_data(&name);
    }
    if module == "Deals" {
        let contact = record["Contact_Name"]["id"].as_str().unwrap_or_default();
        if !fake.contacts.lock().unwrap().contains_key(contact) {
            return fake.record_problem(format!("Deals: Contact_Name {contact} does not exist"));
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
    success(action, &id, None)
}

fn insert_plain(fake: &ZohoFake, body: Map<String, Value>) -> Response {
    let records = match records_of(fake, "POST Deals", &body) {
        Ok(records) => records,
        Err(refused) => return *refused,
    };
    let results = records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            if let Some(p) = shape(fake, "Deals", &record) {
                return fake.record_problem(p);
            }
            if let Some(refused) = validation(fake, i, &record) {
                return refused;
            }
            let mut deals = fake.deals.lock().unwrap();
            insert(fake, "Deals", &mut deals, record, None)
        })
        .collect();
    answer(fake, results)
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
        return answer(fake, vec![duplicate_data(&name)]);
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
    (
        StatusCode::OK,
        Json(json!({"data": [success(Some("update"), id, None)]})),
    )
        .into_response()
}

fn add_notes(fake: &ZohoFake, body: Map<String, Value>) -> Response {
    let notes = match records_of(fake, "POST Notes", &body) {
        Ok(notes) => notes,
        Err(refused) => return *refused,
    };
    let results = notes
        .into_iter()
        .enumerate()
        .map(|(i, note)| add_note(fake, i, note))
        .collect();
    answer(fake, results)
}

fn add_note(fake: &ZohoFake, i: usize, note: Map<String, Value>) -> Value {
    if let Some(k) = note.keys().find(|k| !NOTE_KEYS.contains(&k.as_str())) {
        return fake.record_problem(format!("POST Notes: unknown key `{k}`"));
    }
    if !note.get("Note_Content").is_some_and(Value::is_string) {
        return fake.record_problem("POST Notes: Note_Content is required".into());
    }
    let parent = &note["Parent_Id"];
    if parent["module"]["api_name"] != "Contacts" || !parent["id"].is_string() {
        return fake.record_problem(format!(
            "POST Notes: Parent_Id {parent} (v8: module.api_name and id)"
        ));
    }
    if !fake
        .contacts
        .lock()
        .unwrap()
        .contains_key(parent["id"].as_str().unwrap())
    {
        return json!({"code": "INVALID_DATA", "details": {"api_name": "Parent_Id",
            "json_path": format!("$.data[{i}].Parent_Id")},
            "message": "the related id given seems to be invalid", "status": "error"});
    }
    let id = fake.id();
    let mut stored = note;
    stored.insert("id".into(), json!(id));
    fake.notes.lock().unwrap().push(Value::Object(stored));
    success(None, &id, None)
}
