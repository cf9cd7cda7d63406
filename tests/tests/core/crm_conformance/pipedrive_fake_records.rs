//! The local Pipedrive's records: persons (v2), notes (v1) and deals (v2), each request checked
//! against the documented keys and types.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::pipedrive_fake::{envelope, known_codes, ok, Person, PipedriveFake};

/// Keys `POST /api/v2/persons` and `PATCH /api/v2/persons/{id}` take.
const PERSON_KEYS: &[&str] = &[
    "name",
    "owner_id",
    "org_id",
    "emails",
    "phones",
    "label_ids",
    "visible_to",
    "marketing_status",
    "add_time",
    "custom_fields",
];
/// Keys `POST /v1/notes` takes.
const NOTE_KEYS: &[&str] = &[
    "content",
    "person_id",
    "deal_id",
    "lead_id",
    "org_id",
    "project_id",
    "user_id",
    "add_time",
    "pinned_to_lead_flag",
    "pinned_to_deal_flag",
    "pinned_to_organization_flag",
    "pinned_to_person_flag",
    "pinned_to_project_flag",
];
/// Keys `POST /api/v2/deals` takes.
pub(super) const DEAL_KEYS: &[&str] = &[
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "add_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "label_ids",
    "expected_close_date",
    "custom_fields",
];

/// What is wrong with `body` against `keys` and the company's custom fields, if anything.
pub(super) fn shape(body: &Map<String, Value>, keys: &[&str], deal: bool) -> Option<String> {
    if let Some(k) = body.keys().find(|k| !keys.contains(&k.as_str())) {
        return Some(format!("unknown key `{k}`"));
    }
    if let Some(custom) = body.get("custom_fields") {
        let Some(custom) = custom.as_object() else {
            return Some("custom_fields is not an object".into());
        };
        let known = known_codes(deal);
        if let Some(k) = custom.keys().find(|k| !known.contains(k)) {
            return Some(format!(
                "custom field `{k}` does not exist (names are not codes)"
            ));
        }
        if let Some((k, _)) = custom
            .iter()
            .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_null()))
        {
            return Some(format!("custom field `{k}` is not a text value"));
        }
    }
    if let Some(phones) = body.get("phones") {
        let well_formed = phones.as_array().is_some_and(|p| {
            p.iter().all(|p| {
                p["value"].is_string()
                    && p.get("primary").is_none_or(Value::is_boolean)
                    && p.get("label").is_none_or(Value::is_string)
            })
        });
        if !well_formed {
            return Some(format!("phones: {phones}"));
        }
    }
    None
}

fn person_view(id: u64, p: &Person) -> Value {
    let mut v = p.body.clone();
    v["id"] = json!(id);
    v
}

pub(super) fn search(fake: &PipedriveFake, query: &HashMap<String, String>) -> Response {
    let Some(term) = query.get("term").filter(|t| !t.is_empty()) else {
        return fake.problem("persons/search: term missing".into());
    };
    let fields: Vec<&str> = query
        .get("fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    if fields.is_empty()
        || fields
            .iter()
            .any(|f| !["name", "email", "phone", "notes", "custom_fields"].contains(f))
    {
        return fake.problem(format!("persons/search: fields {fields:?}"));
    }
    // Matching phones loosely would hide a wrong spelling: the adapter asks for exact matches.
    if query.get("exact_match").map(String::as_str) != Some("true") {
        return fake.problem("persons/search: exact_match=true expected".into());
    }
    let lag = *fake.search_lag.lock().unwrap();
    let term_l = term.to_lowercase();
    let is = |v: &Value| v.as_str().is_some_and(|s| s.to_lowercase() == term_l);
    let items: Vec<Value> = fake
        .persons
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.created.elapsed() >= lag)
        .filter(|(_, p)| {
            (fields.contains(&"phone") && p.body["phones"].as_array().is_some_and(|ph| ph.iter().any(|x| is(&x["value"]))))
                || (fields.contains(&"custom_fields")
                    && p.body["custom_fields"].as_object().is_some_and(|c| c.values().any(is)))
                || (fields.contains(&"name") && is(&p.body["name"]))
        })
        .map(|(id, p)| json!({"result_score": 1.0, "item": {"id": id, "type": "person", "name": p.body["name"],
            "phones": p.body["phones"].as_array().map(|ph| ph.iter().map(|x| x["value"].clone()).collect::<Vec<_>>())}}))
        .collect();
    ok(json!({"items": items}), json!({"next_cursor": null}))
}

pub(super) fn create(fake: &PipedriveFake, body: Map<String, Value>) -> Response {
    if let Some(p) = shape(&body, PERSON_KEYS, false) {
        return fake.problem(format!("POST persons: {p}"));
    }
    if body
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|n| n.trim().is_empty())
    {
        return fake.problem("POST persons: name is required".into());
    }
    let id = fake.id();
    let person = Person {
        body: Value::Object(body),
        created: Instant::now(),
    };
    let view = person_view(id, &person);
    fake.persons.lock().unwrap().insert(id, person);
    ok(view, Value::Null)
}

pub(super) fn patch(fake: &PipedriveFake, id: &str, body: Map<String, Value>) -> Response {
    if let Some(p) = shape(&body, PERSON_KEYS, false) {
        return fake.problem(format!("PATCH persons: {p}"));
    }
    let mut persons = fake.persons.lock().unwrap();
    let Some((id, person)) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| Some((id, persons.get_mut(&id)?)))
    else {
        return envelope(StatusCode::NOT_FOUND, "Person not found");
    };
    for (k, v) in body {
        if k == "custom_fields" {
            let merged = person.body["custom_fields"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut merged = merged;
            merged.extend(v.as_object().cloned().unwrap_or_default());
            person.body["custom_fields"] = Value::Object(merged);
        } else {
            person.body[k] = v;
        }
    }
    ok(person_view(id, person), Value::Null)
}

pub(super) fn add_note(fake: &PipedriveFake, body: Map<String, Value>) -> Response {
    if let Some(k) = body.keys().find(|k| !NOTE_KEYS.contains(&k.as_str())) {
        return fake.problem(format!("POST notes: unknown key `{k}`"));
    }
    if !body.get("content").is_some_and(Value::is_string) {
        return fake.problem("POST notes: content is required".into());
    }
    let Some(person) = body.get("person_id").and_then(Value::as_u64) else {
        return fake.problem("POST notes: a person_id (number) is expected".into());
    };
    if !fake.persons.lock().unwrap().contains_key(&person) {
        return envelope(StatusCode::BAD_REQUEST, "Person not found");
    }
    let deal = body.get("deal_id").cloned().unwrap_or(Value::Null);
    if !deal.is_null() && !super::pipedrive_fake_deals::exists(fake, &deal) {
        return envelope(StatusCode::BAD_REQUEST, "Deal not found");
    }
    let id = fake.id();
    let note = json!({"id": id, "content": body["content"], "person_id": person, "deal_id": deal,
        "add_time": format!("2026-12-04 00:00:{:02}", id % 60)});
    fake.notes.lock().unwrap().push(note.clone());
    ok(note, Value::Null)
}

pub(super) fn list_notes(fake: &PipedriveFake, query: &HashMap<String, String>) -> Response {
    let Some(person) = query.get("person_id").and_then(|p| p.parse::<u64>().ok()) else {
        return fake.problem(format!("GET notes: person_id expected ({query:?})"));
    };
    if query
        .get("sort")
        .is_some_and(|s| !(s.ends_with(" ASC") || s.ends_with(" DESC")))
    {
        return fake.problem(format!("GET notes: sort {:?}", query.get("sort")));
    }
    let mut notes: Vec<Value> = fake
        .notes
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n["person_id"] == person)
        .cloned()
        .collect();
    notes.reverse();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let more = notes.len() > limit;
    notes.truncate(limit);
    ok(
        Value::Array(notes),
        json!({"pagination": {"start": 0, "limit": limit, "more_items_in_collection": more}}),
    )
}

pub(super) fn add_deal(fake: &PipedriveFake, body: Map<String, Value>) -> Response {
    if let Some(p) = shape(&body, DEAL_KEYS, true) {
        return fake.problem(format!("POST deals: {p}"));
    }
    if body
        .get("title")
        .and_then(Value::as_str)
        .is_none_or(|t| t.is_empty())
    {
        return fake.problem("POST deals: title is required".into());
    }
    if let Some(person) = body.get("person_id") {
        if !person
            .as_u64()
            .is_some_and(|p| fake.persons.lock().unwrap().contains_key(&p))
        {
            return envelope(StatusCode::BAD_REQUEST, "Person not found");
        }
    }
    if let Some(p) = super::pipedrive_fake_deals::values(fake, &body) {
        return fake.problem(format!("POST deals: {p}"));
    }
    let mut deal = Value::Object(body);
    let id = fake.id();
    deal["id"] = json!(id);
    deal["status"] = deal.get("status").cloned().unwrap_or(json!("open"));
    fake.deals.lock().unwrap().push(deal.clone());
    fake.deal_created.lock().unwrap().insert(id, Instant::now());
    ok(deal, Value::Null)
}

pub(super) fn list_deals(fake: &PipedriveFake, query: &HashMap<String, String>) -> Response {
    let person = query.get("person_id").and_then(|p| p.parse::<u64>().ok());
    let wanted: Option<Vec<&str>> = query.get("custom_fields").map(|c| c.split(',').collect());
    let known = known_codes(true);
    if wanted
        .as_ref()
        .is_some_and(|w| w.iter().any(|c| !known.iter().any(|k| k == c)))
    {
        return fake.problem(format!("GET deals: custom_fields {wanted:?}"));
    }
    let deals: Vec<Value> = fake
        .deals
        .lock()
        .unwrap()
        .iter()
        .filter(|d| person.is_none_or(|p| d["person_id"] == p))
        .map(|d| {
            let mut d = d.clone();
            if let (Some(w), Some(c)) = (&wanted, d["custom_fields"].as_object()) {
                let kept: Map<String, Value> = c
                    .iter()
                    .filter(|(k, _)| w.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                d["custom_fields"] = Value::Object(kept);
            }
            d
        })
        .collect();
    ok(Value::Array(deals), json!({"next_cursor": null}))
}
