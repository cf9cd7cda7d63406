//! The local Kommo's records: contacts and contact notes (leads: `kommo_fake_leads`), each
//! request checked against
//! the documented keys and types (arrays of at most 250 entities for adds, custom fields by an
//! existing `field_id` or a system `field_code`, text values as strings).

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::kommo_fake::{
    field_id, ok, problem_body, Contact, KommoFake, CONTACT_FIELDS, LEAD_FIELDS,
};

/// Keys of a contact in `POST /api/v4/contacts` and `PATCH /api/v4/contacts/{id}`.
const CONTACT_KEYS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "responsible_user_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "custom_fields_values",
    "_embedded",
    "request_id",
];
/// Keys of a note in `POST /api/v4/contacts/notes`.
const NOTE_KEYS: &[&str] = &[
    "entity_id",
    "created_by",
    "note_type",
    "params",
    "request_id",
    "is_need_to_trigger_digital_pipeline",
];
/// `enum_code`s of the `PHONE` field.
const PHONE_ENUMS: &[&str] = &["WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"];

/// The entities of an add request: a JSON array of 1 to 250 objects.
pub(super) fn entities(body: &Value) -> Result<Vec<Map<String, Value>>, String> {
    let Some(items) = body.as_array() else {
        return Err("the body must be an array of entities".into());
    };
    if items.is_empty() || items.len() > 250 {
        return Err(format!("{} entities (1 to 250 a request)", items.len()));
    }
    items
        .iter()
        .map(|i| {
            i.as_object()
                .cloned()
                .ok_or("an entity is not an object".to_string())
        })
        .collect()
}

/// What is wrong with an entity's keys and custom fields, if anything.
pub(super) fn shape(e: &Map<String, Value>, keys: &[&str], lead: bool) -> Option<String> {
    if let Some(k) = e.keys().find(|k| !keys.contains(&k.as_str())) {
        return Some(format!("unknown key `{k}`"));
    }
    let fields = e.get("custom_fields_values")?;
    let Some(fields) = fields.as_array() else {
        return Some("custom_fields_values is not an array".into());
    };
    let names = if lead { LEAD_FIELDS } else { CONTACT_FIELDS };
    for f in fields {
        let values = f["values"].as_array();
        if values.is_none_or(|v| v.iter().any(|v| !v["value"].is_string())) {
            return Some(format!("custom field values must be strings: {f}"));
        }
        match (
            f.get("field_id"),
            f.get("field_code").and_then(Value::as_str),
        ) {
            (Some(id), None) => {
                if !names.iter().any(|n| Some(field_id(lead, n)) == id.as_u64()) {
                    return Some(format!("field_id {id} does not exist (names are not ids)"));
                }
            }
            (None, Some("PHONE")) if !lead => {
                let enums_ok = values.into_iter().flatten().all(|v| {
                    v.get("enum_code")
                        .is_none_or(|c| c.as_str().is_some_and(|c| PHONE_ENUMS.contains(&c)))
                });
                if !enums_ok {
                    return Some(format!("PHONE enum_code: {f}"));
                }
            }
            _ => {
                return Some(format!(
                    "a custom field needs field_id or a known field_code: {f}"
                ))
            }
        }
    }
    None
}

/// Replaces the fields `update` names in `body`'s `custom_fields_values` (Kommo replaces a
/// field's values, and leaves fields not named alone).
pub(super) fn merge_fields(body: &mut Value, update: &[Value]) {
    let mut fields = body["custom_fields_values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for f in update {
        let same = |g: &Value| {
            (f.get("field_id").is_some() && g["field_id"] == f["field_id"])
                || (f.get("field_code").is_some() && g["field_code"] == f["field_code"])
        };
        fields.retain(|g| !same(g));
        fields.push(f.clone());
    }
    body["custom_fields_values"] = Value::Array(fields);
}

fn view(id: u64, c: &Contact) -> Value {
    let mut v = c.body.clone();
    v["id"] = json!(id);
    v
}

/// `GET /api/v4/contacts?query=`: full-text, as Kommo's: any value containing the term (a
/// number's digits found inside longer numbers too), after the index lag; 204 when nothing.
pub(super) fn search(fake: &KommoFake, term: Option<&str>) -> Response {
    let Some(term) = term.filter(|t| !t.is_empty()) else {
        return fake.problem("GET contacts: the adapter searches with `query`".into());
    };
    let lag = *fake.search_lag.lock().unwrap();
    let term_l = term.to_lowercase();
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let term_digits = digits(term);
    let hits: Vec<Value> = fake
        .contacts
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, c)| c.created.elapsed() >= lag)
        .filter(|(_, c)| {
            let name = c.body["name"].as_str().unwrap_or("").to_lowercase();
            name.contains(&term_l)
                || c.body["custom_fields_values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|f| f["values"].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v["value"].as_str().map(String::from))
                    .any(|v| {
                        v.to_lowercase().contains(&term_l)
                            || (term_digits.len() >= 5 && digits(&v).contains(&term_digits))
                    })
        })
        .map(|(id, c)| view(*id, c))
        .collect();
    if hits.is_empty() {
        fake.empty_searches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return StatusCode::NO_CONTENT.into_response();
    }
    ok(
        json!({"_page": 1, "_links": {"self": {"href": "/api/v4/contacts"}},
              "_embedded": {"contacts": hits}}),
    )
}

pub(super) fn create(fake: &KommoFake, body: Value) -> Response {
    let items = match entities(&body) {
        Ok(items) => items,
        Err(p) => return fake.problem(format!("POST contacts: {p}")),
    };
    let mut made = Vec::new();
    for (i, e) in items.into_iter().enumerate() {
        if let Some(p) = shape(&e, CONTACT_KEYS, false) {
            return fake.problem(format!("POST contacts: {p}"));
        }
        let id = fake.id();
        let mut stored = Value::Object(e);
        stored.as_object_mut().unwrap().remove("request_id");
        fake.contacts.lock().unwrap().insert(
            id,
            Contact {
                body: stored,
                created: Instant::now(),
            },
        );
        made.push(json!({"id": id, "request_id": i.to_string(),
                         "_links": {"self": {"href": format!("/api/v4/contacts/{id}")}}}));
    }
    ok(json!({"_links": {"self": {"href": "/api/v4/contacts"}}, "_embedded": {"contacts": made}}))
}

pub(super) fn patch(fake: &KommoFake, id: &str, body: Value) -> Response {
    let Some(e) = body.as_object() else {
        return fake.problem("PATCH contacts/{id}: the body must be one contact object".into());
    };
    if let Some(p) = shape(e, CONTACT_KEYS, false) {
        return fake.problem(format!("PATCH contacts/{id}: {p}"));
    }
    let mut contacts = fake.contacts.lock().unwrap();
    let Some((id, contact)) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| Some((id, contacts.get_mut(&id)?)))
    else {
        return problem_body(StatusCode::NOT_FOUND, "Contact not found");
    };
    for (k, v) in e {
        if k == "custom_fields_values" {
            merge_fields(&mut contact.body, v.as_array().unwrap());
        } else {
            contact.body[k] = v.clone();
        }
    }
    ok(json!({"id": id, "updated_at": 1_764_900_000,
              "_links": {"self": {"href": format!("/api/v4/contacts/{id}")}}}))
}

/// `GET /api/v4/contacts/{id}`, with its leads when `with=leads`.
pub(super) fn get(fake: &KommoFake, id: &str, with: Option<&str>) -> Response {
    if with.is_some_and(|w| {
        w.split(',')
            .any(|w| !["leads", "customers", "catalog_elements"].contains(&w))
    }) {
        return fake.problem(format!("GET contacts/{id}: with={with:?}"));
    }
    let Some(id) = id.parse::<u64>().ok() else {
        return fake.problem(format!("GET contacts/{id}: not an id"));
    };
    let Some(mut v) = fake.contacts.lock().unwrap().get(&id).map(|c| view(id, c)) else {
        return problem_body(StatusCode::NOT_FOUND, "Contact not found");
    };
    if with.is_some_and(|w| w.contains("leads")) {
        let leads: Vec<Value> = fake
            .leads
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l["contacts"]
                    .as_array()
                    .is_some_and(|c| c.contains(&json!(id)))
            })
            .map(|l| json!({"id": l["id"]}))
            .collect();
        v["_embedded"] = json!({"leads": leads});
    }
    ok(v)
}

pub(super) fn add_notes(fake: &KommoFake, body: Value) -> Response {
    let items = match entities(&body) {
        Ok(items) => items,
        Err(p) => return fake.problem(format!("POST contacts/notes: {p}")),
    };
    for n in &items {
        if let Some(k) = n.keys().find(|k| !NOTE_KEYS.contains(&k.as_str())) {
            return fake.problem(format!("POST contacts/notes: unknown key `{k}`"));
        }
        if n.get("note_type") != Some(&json!("common")) || !n["params"]["text"].is_string() {
            return fake.problem(format!(
                "POST contacts/notes: a common note with params.text expected: {n:?}"
            ));
        }
        let Some(contact) = n.get("entity_id").and_then(Value::as_u64) else {
            return fake.problem("POST contacts/notes: entity_id (a number) is required".into());
        };
        if !fake.contacts.lock().unwrap().contains_key(&contact) {
            return super::kommo_fake::validation("0.entity_id", "Entity not found");
        }
    }
    fake.note_batches.lock().unwrap().push(items.len());
    let mut made = Vec::new();
    for (i, n) in items.into_iter().enumerate() {
        let id = fake.id();
        let note = json!({"id": id, "entity_id": n["entity_id"], "note_type": "common",
                          "params": n["params"], "created_by": 0});
        fake.notes.lock().unwrap().push(note);
        let request_id = n.get("request_id").cloned().unwrap_or(json!(i.to_string()));
        made.push(json!({"id": id, "entity_id": n["entity_id"], "request_id": request_id}));
    }
    ok(
        json!({"_links": {"self": {"href": "/api/v4/contacts/notes"}}, "_embedded": {"notes": made}}),
    )
}

pub(super) fn list_notes(fake: &KommoFake, id: &str, query: &[(String, String)]) -> Response {
    let Some(contact) = id.parse::<u64>().ok() else {
        return fake.problem(format!("GET contacts/{id}/notes: not an id"));
    };
    for (k, v) in query {
        let known = match k.as_str() {
            "filter[note_type]" | "filter[note_type][]" => v == "common",
            "order[id]" | "order[updated_at]" => v == "asc" || v == "desc",
            "limit" | "page" => true,
            _ => false,
        };
        if !known {
            return fake.problem(format!("GET contacts/{id}/notes: {k}={v}"));
        }
    }
    let desc = query.iter().any(|(k, v)| k == "order[id]" && v == "desc");
    let limit = query
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(50);
    let mut notes: Vec<Value> = fake
        .notes
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n["entity_id"] == contact)
        .cloned()
        .collect();
    if desc {
        notes.reverse();
    }
    notes.truncate(limit);
    if notes.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    ok(json!({"_page": 1, "_links": {}, "_embedded": {"notes": notes}}))
}
