//! The local Kommo's leads: add (an array of up to 250), list by id or full-text `query` (after
//! the index lag; 204 when nothing), update one (`PATCH /api/v4/leads/{id}`) and link a contact
//! (`POST /api/v4/leads/{id}/link`), each checked against the documented keys and value types.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::kommo_fake::{ok, problem_body, validation, KommoFake};
use super::kommo_fake_records::{entities, merge_fields, shape};

/// Keys of a lead in `POST /api/v4/leads` and `PATCH /api/v4/leads/{id}`.
const LEAD_KEYS: &[&str] = &[
    "name",
    "price",
    "status_id",
    "pipeline_id",
    "created_by",
    "updated_by",
    "closed_at",
    "created_at",
    "updated_at",
    "loss_reason_id",
    "responsible_user_id",
    "custom_fields_values",
    "tags_to_add",
    "tags_to_delete",
    "_embedded",
    "request_id",
];
/// `with=` values of the leads list.
const LIST_WITH: &[&str] = &[
    "catalog_elements",
    "is_price_modified_by_robot",
    "loss_reason",
    "contacts",
    "only_deleted",
    "source_id",
];

/// What is wrong with a lead's values, if anything: ids and the price are whole numbers, tags
/// name a tag by `name` or `id`.
fn values(e: &Map<String, Value>) -> Option<String> {
    for key in [
        "price",
        "status_id",
        "pipeline_id",
        "responsible_user_id",
        "loss_reason_id",
    ] {
        if e.get(key).is_some_and(|v| !v.is_u64()) {
            return Some(format!("{key} must be a whole number: {}", e[key]));
        }
    }
    let tags = ["tags_to_add", "tags_to_delete"]
        .into_iter()
        .filter_map(|k| e.get(k))
        .chain(e.get("_embedded").and_then(|m| m.get("tags")));
    for list in tags {
        let named = list
            .as_array()
            .is_some_and(|l| l.iter().all(|t| t["name"].is_string() || t["id"].is_u64()));
        if !named {
            return Some(format!("tags must be [{{\"name\"}} or {{\"id\"}}]: {list}"));
        }
    }
    None
}

/// Adds the tags of `list` (by name) to the lead's, and removes those of `remove`.
fn retag(lead: &mut Value, add: Option<&Value>, remove: Option<&Value>) {
    let names = |v: Option<&Value>| -> Vec<Value> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| t["name"].clone())
            .collect()
    };
    let mut tags = names(lead.get("tags"));
    for t in names(add) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let gone = names(remove);
    tags.retain(|t| !gone.contains(t));
    lead["tags"] = Value::Array(tags.into_iter().map(|n| json!({"name": n})).collect());
}

pub(super) fn add(fake: &KommoFake, body: Value) -> Response {
    let items = match entities(&body) {
        Ok(items) => items,
        Err(p) => return fake.problem(format!("POST leads: {p}")),
    };
    let mut made = Vec::new();
    for (i, e) in items.into_iter().enumerate() {
        if let Some(p) = shape(&e, LEAD_KEYS, true).or_else(|| values(&e)) {
            return fake.problem(format!("POST leads: {p}"));
        }
        let contacts = e
            .get("_embedded")
            .and_then(|m| m.get("contacts"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut linked = Vec::new();
        for c in &contacts {
            let Some(cid) = c["id"].as_u64() else {
                return fake.problem(format!("POST leads: a linked contact needs its id: {c}"));
            };
            if !fake.contacts.lock().unwrap().contains_key(&cid) {
                return validation("0._embedded.contacts.0.id", "Contact not found");
            }
            linked.push(json!(cid));
        }
        let id = fake.id();
        let mut lead = json!({"id": id, "name": e.get("name"),
            "custom_fields_values": e.get("custom_fields_values").cloned().unwrap_or(json!([])),
            "status_id": e.get("status_id"), "price": e.get("price"),
            "responsible_user_id": e.get("responsible_user_id"), "contacts": linked});
        let embedded = e.get("_embedded").and_then(|m| m.get("tags"));
        retag(&mut lead, embedded, None);
        retag(&mut lead, e.get("tags_to_add"), None);
        fake.leads.lock().unwrap().push(lead);
        fake.lead_created.lock().unwrap().insert(id, Instant::now());
        made.push(json!({"id": id, "request_id": i.to_string()}));
    }
    ok(json!({"_links": {}, "_embedded": {"leads": made}}))
}

pub(super) fn list(fake: &KommoFake, query: &[(String, String)]) -> Response {
    let mut ids = Vec::new();
    let mut term = None;
    let mut contacts = false;
    for (k, v) in query {
        match k.as_str() {
            "filter[id][]" => match v.parse::<u64>() {
                Ok(id) => ids.push(id),
                Err(_) => return fake.problem(format!("GET leads: filter[id][]={v}")),
            },
            "query" if !v.is_empty() => term = Some(v.to_lowercase()),
            "with" => {
                if v.split(',').any(|w| !LIST_WITH.contains(&w)) {
                    return fake.problem(format!("GET leads: with={v}"));
                }
                contacts = v.split(',').any(|w| w == "contacts");
            }
            "limit" | "page" => {}
            _ => return fake.problem(format!("GET leads: {k}={v}")),
        }
    }
    let lag = *fake.search_lag.lock().unwrap();
    let created = fake.lead_created.lock().unwrap().clone();
    // Full-text, as Kommo's: the name or any field value containing the term.
    let hit = |l: &Value, term: &str| {
        let indexed = l["id"]
            .as_u64()
            .and_then(|id| created.get(&id))
            .is_some_and(|at| at.elapsed() >= lag);
        let text = |v: &Value| v.as_str().is_some_and(|s| s.to_lowercase().contains(term));
        indexed
            && (text(&l["name"])
                || l["custom_fields_values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|f| f["values"].as_array().cloned().unwrap_or_default())
                    .any(|v| text(&v["value"])))
    };
    let leads: Vec<Value> = fake
        .leads
        .lock()
        .unwrap()
        .iter()
        .filter(|l| ids.is_empty() || l["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter(|l| term.as_deref().is_none_or(|t| hit(l, t)))
        .map(|l| {
            let mut embedded = json!({"tags": l["tags"]});
            if contacts {
                embedded["contacts"] = l["contacts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| json!({"id": c, "is_main": true}))
                    .collect();
            }
            json!({"id": l["id"], "name": l["name"], "price": l["price"], "status_id": l["status_id"],
                "responsible_user_id": l["responsible_user_id"],
                "custom_fields_values": l["custom_fields_values"], "_embedded": embedded})
        })
        .collect();
    if leads.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    ok(json!({"_page": 1, "_links": {}, "_embedded": {"leads": leads}}))
}

pub(super) fn patch(fake: &KommoFake, id: &str, body: Value) -> Response {
    let Some(e) = body.as_object() else {
        return fake.problem("PATCH leads/{id}: the body must be one lead object".into());
    };
    if let Some(p) = shape(e, LEAD_KEYS, true).or_else(|| values(e)) {
        return fake.problem(format!("PATCH leads/{id}: {p}"));
    }
    if e.contains_key("_embedded") {
        // Linking goes through `/link`; `_embedded.tags` would replace every tag.
        return fake.problem(format!(
            "PATCH leads/{id}: _embedded (use tags_to_add, /link)"
        ));
    }
    let mut leads = fake.leads.lock().unwrap();
    let Some(lead) = leads
        .iter_mut()
        .find(|l| id.parse::<u64>().is_ok_and(|id| l["id"] == id))
    else {
        return problem_body(StatusCode::NOT_FOUND, "Lead not found");
    };
    for (k, v) in e {
        match k.as_str() {
            "custom_fields_values" => merge_fields(lead, v.as_array().unwrap()),
            "tags_to_add" => retag(lead, Some(v), None),
            "tags_to_delete" => retag(lead, None, Some(v)),
            _ => lead[k] = v.clone(),
        }
    }
    ok(json!({"id": lead["id"], "updated_at": 1_764_900_000,
              "_links": {"self": {"href": format!("/api/v4/leads/{id}")}}}))
}

pub(super) fn link(fake: &KommoFake, id: &str, body: Value) -> Response {
    let Some(links) = body.as_array().filter(|l| !l.is_empty()) else {
        return fake.problem(format!("POST leads/{id}/link: an array of links expected"));
    };
    let mut leads = fake.leads.lock().unwrap();
    let Some(lead) = leads
        .iter_mut()
        .find(|l| id.parse::<u64>().is_ok_and(|id| l["id"] == id))
    else {
        return problem_body(StatusCode::NOT_FOUND, "Lead not found");
    };
    for l in links {
        let known = l.as_object().is_some_and(|o| {
            o.keys()
                .all(|k| ["to_entity_id", "to_entity_type", "metadata"].contains(&k.as_str()))
        });
        let Some(contact) = l["to_entity_id"].as_u64().filter(|_| known) else {
            return fake.problem(format!("POST leads/{id}/link: {l}"));
        };
        if l["to_entity_type"] != "contacts" {
            return fake.problem(format!("POST leads/{id}/link: only contacts here: {l}"));
        }
        if !fake.contacts.lock().unwrap().contains_key(&contact) {
            return validation("0.to_entity_id", "Entity not found");
        }
        let linked = lead["contacts"].as_array_mut().unwrap();
        if !linked.contains(&json!(contact)) {
            linked.push(json!(contact));
        }
    }
    ok(json!({"_links": {}, "_embedded": {"links": links}}))
}
