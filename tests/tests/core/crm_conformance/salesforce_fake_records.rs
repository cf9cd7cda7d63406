//! The local Salesforce's records: describe, sObject Collections upsert by External ID, update
//! by id, a SOQL query of ids by External ID values, and collection deletes, each request
//! checked against the documented keys and types.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::salesforce_fake::{errors, Records, SalesforceFake, DATETIME_FIELDS, NUMBER_FIELDS};

/// Records per sObject Collections call.
const COLLECTION_MAX: usize = 200;

/// Fields an object requires on create.
fn mandatory(object: &str) -> &'static [&'static str] {
    match object {
        "Contact" => &["LastName"],
        "Lead" => &["LastName", "Company"],
        "Task" => &["Subject"],
        "Opportunity" => &["Name", "StageName", "CloseDate"],
        _ => &[],
    }
}

/// Reference fields and the objects they may point at.
fn references(object: &str, field: &str) -> Option<&'static [&'static str]> {
    match (object, field) {
        ("Task", "WhoId") => Some(&["Contact", "Lead"]),
        ("Opportunity", "ContactId") => Some(&["Contact"]),
        ("Case", "ContactId") => Some(&["Contact"]),
        // Related To: a Case (a conversation) or an Opportunity here.
        ("Task", "WhatId") => Some(&["Case", "Opportunity"]),
        _ => None,
    }
}

fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && v.replace('-', "").parse::<u32>().is_ok()
}

fn is_datetime(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 24
        && is_date(&v[..10])
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && v[11..23].replace([':', '.'], "").parse::<u64>().is_ok()
}

pub(super) fn route(
    fake: &SalesforceFake,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: Option<Map<String, Value>>,
) -> Response {
    match (method.as_str(), segments) {
        ("GET", ["sobjects", object, "describe"]) => describe(fake, object),
        ("PATCH", ["composite", "sobjects", object, field]) => {
            upsert(fake, object, field, body.unwrap())
        }
        ("PATCH", ["sobjects", object, id]) => update(fake, object, id, body.unwrap()),
        ("GET", ["query"]) => soql(fake, query.get("q").map(String::as_str).unwrap_or("")),
        ("DELETE", ["composite", "sobjects"]) => delete(fake, query),
        _ => fake.problem(format!(
            "{method} /{}: no such resource",
            segments.join("/")
        )),
    }
}

fn describe(fake: &SalesforceFake, object: &str) -> Response {
    let fields = fake.fields(object);
    if fields.is_empty() {
        return errors(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    }
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|(name, external)| {
            let kind = if NUMBER_FIELDS.contains(&name.as_str()) {
                "double"
            } else if DATETIME_FIELDS.contains(&name.as_str()) {
                "datetime"
            } else if name.ends_with("Id") {
                "reference"
            } else {
                "string"
            };
            json!({"name": name, "label": name.trim_end_matches("__c").replace('_', " "),
                "type": kind,
                "externalId": external, "unique": external, "createable": name != "Id",
                "updateable": name != "Id"})
        })
        .collect();
    Json(json!({"name": object, "fields": fields})).into_response()
}

/// What is wrong with `record` for `object`, if anything.
fn shape(fake: &SalesforceFake, object: &str, record: &Map<String, Value>) -> Option<String> {
    let known = fake.fields(object);
    for (key, value) in record {
        if key == "attributes" {
            continue;
        }
        if key == "Id" {
            return Some(format!("{object}: `Id` in an upsert by External ID"));
        }
        if !known.iter().any(|(n, _)| n == key) {
            return Some(format!(
                "No such column '{key}' on sobject of type {object}"
            ));
        }
        if NUMBER_FIELDS.contains(&key.as_str()) {
            if !(value.is_number() || value.is_null()) {
                return Some(format!("{object}.{key}: {value} is not a number"));
            }
            continue;
        }
        if !(value.is_string() || value.is_null()) {
            return Some(format!("{object}.{key}: {value} is not text"));
        }
        let text = value.as_str().unwrap_or_default();
        if DATETIME_FIELDS.contains(&key.as_str()) && !is_datetime(text) {
            return Some(format!(
                "{object}.{key}: `{text}` is not yyyy-MM-ddTHH:mm:ss.SSSZ"
            ));
        }
        if key.ends_with("Date") && !text.is_empty() && !is_date(text) {
            return Some(format!("{object}.{key}: `{text}` is not YYYY-MM-DD"));
        }
    }
    None
}

/// An External ID field (unique) of `object` that another record of `all` than `except` holds
/// `record`'s value in.
fn duplicate(
    fake: &SalesforceFake,
    object: &str,
    all: &Records,
    record: &Map<String, Value>,
    except: Option<&str>,
) -> Option<(String, String)> {
    fake.fields(object)
        .into_iter()
        .filter(|(_, external)| *external)
        .find_map(|(name, _)| {
            let value = record.get(&name).filter(|v| !v.is_null())?;
            all.iter()
                .find(|(id, r)| Some(id.as_str()) != except && r.get(&name) == Some(value))
                .map(|(id, _)| (name, id.clone()))
        })
}

fn record_error(code: &str, message: &str) -> Value {
    json!({"success": false, "errors": [{"statusCode": code, "message": message, "fields": []}]})
}

fn upsert(fake: &SalesforceFake, object: &str, field: &str, body: Map<String, Value>) -> Response {
    if let Some(k) = body
        .keys()
        .find(|k| !["allOrNone", "records"].contains(&k.as_str()))
    {
        return fake.problem(format!("{object} collection upsert: unknown key `{k}`"));
    }
    if !body.get("allOrNone").is_none_or(Value::is_boolean) {
        return fake.problem("allOrNone is not a boolean".into());
    }
    let Some(records) = body.get("records").and_then(Value::as_array) else {
        return fake.problem(format!("{object} collection upsert: no `records` list"));
    };
    if records.is_empty() || records.len() > COLLECTION_MAX {
        return fake.problem(format!("{} records in one collection", records.len()));
    }
    match fake.fields(object).iter().find(|(n, _)| n == field) {
        Some((_, true)) => {}
        Some(_) => {
            return fake.problem(format!("{object}.{field} is not an External ID field"));
        }
        None => {
            return errors(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("Provided external ID field does not exist or is not accessible: {field}"),
            )
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let Some(r) = r.as_object() else {
            return fake.problem(format!("record {i} is not an object"));
        };
        if r.get("attributes").and_then(|a| a.get("type")) != Some(&json!(object)) {
            return fake.problem(format!("record {i}: attributes.type is not {object}"));
        }
        if let Some(p) = shape(fake, object, r) {
            return fake.problem(p);
        }
        let Some(key) = r
            .get(field)
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
        else {
            return fake.problem(format!("record {i}: no value for the External ID {field}"));
        };
        *seen.entry(key.to_string()).or_default() += 1;
    }
    {
        let mut calls = fake.collection_calls.lock().unwrap();
        let entry = calls.entry(object.to_string()).or_default();
        entry.0 += 1;
        entry.1 += records.len() as u64;
    }
    let results: Vec<Value> = records
        .iter()
        .map(|r| {
            let r = r.as_object().unwrap();
            let key = r[field].as_str().unwrap();
            if seen[key] > 1 {
                return record_error(
                    "DUPLICATE_EXTERNAL_ID",
                    &format!("Duplicate external id specified: {key}"),
                );
            }
            upsert_one(fake, object, field, key, r)
        })
        .collect();
    Json(Value::Array(results)).into_response()
}

fn upsert_one(
    fake: &SalesforceFake,
    object: &str,
    field: &str,
    key: &str,
    r: &Map<String, Value>,
) -> Value {
    let mut fields = r.clone();
    fields.remove("attributes");
    let mut records = fake.records.lock().unwrap();
    // A reference to a record that does not exist (deleted since): the record's error.
    for (key, value) in &fields {
        let Some(targets) = references(object, key) else {
            continue;
        };
        let id = value.as_str().unwrap_or_default();
        if !targets
            .iter()
            .any(|t| records.get(*t).is_some_and(|r| r.contains_key(id)))
        {
            return record_error(
                "INVALID_CROSS_REFERENCE_KEY",
                &format!("invalid cross reference id: {key}"),
            );
        }
    }
    let store = records.entry(object.to_string()).or_default();
    let existing = store
        .iter()
        .find(|(_, stored)| stored.get(field).and_then(Value::as_str) == Some(key))
        .map(|(id, _)| id.clone());
    if let Some((name, other)) = duplicate(fake, object, store, &fields, existing.as_deref()) {
        return record_error(
            "DUPLICATE_VALUE",
            &format!("duplicate value found: {name} duplicates value on record with id: {other}"),
        );
    }
    match existing {
        Some(id) => {
            store.get_mut(&id).unwrap().extend(fields);
            json!({"id": id, "success": true, "errors": [], "created": false})
        }
        None => {
            if let Some(m) = mandatory(object).iter().find(|m| {
                fields
                    .get(**m)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            }) {
                return record_error(
                    "REQUIRED_FIELD_MISSING",
                    &format!("Required fields are missing: [{m}]"),
                );
            }
            let id = fake.id(object);
            let mut fields = fields;
            if object == "Case" {
                // The Status picklist's default value.
                fields.entry("Status").or_insert_with(|| json!("New"));
            }
            store.insert(id.clone(), fields);
            json!({"id": id, "success": true, "errors": [], "created": true})
        }
    }
}

fn update(fake: &SalesforceFake, object: &str, id: &str, body: Map<String, Value>) -> Response {
    if let Some(p) = shape(fake, object, &body) {
        return fake.problem(p);
    }
    let mut records = fake.records.lock().unwrap();
    let all = records.entry(object.to_string()).or_default();
    if let Some((name, other)) = duplicate(fake, object, all, &body, Some(id)) {
        return errors(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_VALUE",
            &format!("duplicate value found: {name} duplicates value on record with id: {other}"),
        );
    }
    match records.get_mut(object).and_then(|s| s.get_mut(id)) {
        Some(stored) => {
            stored.extend(body);
            StatusCode::NO_CONTENT.into_response()
        }
        None => errors(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ),
    }
}

/// `SELECT Id FROM {object} WHERE {field} IN ('a','b') [OR {field} IN (…)]`: the one query
/// shape the adapter sends.
fn soql(fake: &SalesforceFake, q: &str) -> Response {
    let malformed = |why: &str| {
        fake.problems
            .lock()
            .unwrap()
            .push(format!("SOQL `{q}`: {why}"));
        errors(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", why)
    };
    let Some(rest) = q.strip_prefix("SELECT Id FROM ") else {
        return malformed("not SELECT Id FROM");
    };
    let Some((object, conditions)) = rest.split_once(" WHERE ") else {
        return malformed("no WHERE");
    };
    let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
    for condition in conditions.split(") OR ") {
        let Some((field, list)) = condition.split_once(" IN (") else {
            return malformed("not `field IN (...)`");
        };
        let list = list.trim_end_matches(')');
        let values: Vec<String> = list
            .split(',')
            .map(|v| v.trim().trim_matches('\'').replace("\\'", "'"))
            .collect();
        if !fake.fields(object).iter().any(|(n, _)| n == field) {
            return malformed(&format!("no field {field}"));
        }
        wanted.push((field.to_string(), values));
    }
    let found: Vec<Value> = fake
        .of(object)
        .into_iter()
        .filter(|(_, r)| {
            wanted.iter().any(|(f, values)| {
                r.get(f)
                    .and_then(Value::as_str)
                    .is_some_and(|v| values.iter().any(|w| w == v))
            })
        })
        .map(|(id, _)| json!({"attributes": {"type": object}, "Id": id}))
        .collect();
    Json(json!({"totalSize": found.len(), "done": true, "records": found})).into_response()
}

fn delete(fake: &SalesforceFake, query: &HashMap<String, String>) -> Response {
    let Some(ids) = query.get("ids") else {
        return fake.problem("collection delete without ids".into());
    };
    let ids: Vec<&str> = ids.split(',').collect();
    if ids.len() > COLLECTION_MAX {
        return fake.problem(format!("{} ids in one delete", ids.len()));
    }
    let mut records = fake.records.lock().unwrap();
    let results: Vec<Value> = ids
        .iter()
        .map(|id| {
            let has_cases = records.get("Case").is_some_and(|cases| {
                cases
                    .values()
                    .any(|c| c.get("ContactId").and_then(Value::as_str) == Some(*id))
            });
            if has_cases {
                // Salesforce keeps a contact that Cases point at.
                return record_error(
                    "DELETE_FAILED",
                    "Your attempt to delete this contact could not be completed because it is associated with the following cases.",
                );
            }
            let removed = records.values_mut().any(|s| s.remove(*id).is_some());
            if removed {
                json!({"id": id, "success": true, "errors": []})
            } else {
                record_error("ENTITY_IS_DELETED", "entity is deleted")
            }
        })
        .collect();
    Json(Value::Array(results)).into_response()
}
