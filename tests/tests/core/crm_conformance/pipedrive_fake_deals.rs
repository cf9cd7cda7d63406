//! The local Pipedrive's deals beyond create and list: the deals search (API v2, a wrapper of
//! itemSearch whose index lags writes), `PATCH` and `DELETE`, each checked against the
//! documented parameters, keys and values.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::pipedrive_fake::{envelope, ok, PipedriveFake};
use super::pipedrive_fake_records::shape;

/// Keys `PATCH /api/v2/deals/{id}` takes (`UpdateDealRequest`).
const UPDATE_KEYS: &[&str] = &[
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "is_deleted",
    "is_archived",
    "archive_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "custom_fields",
];

/// What is wrong with a deal body's values, if anything: ids are numbers, the status one of
/// Pipedrive's three, the value a number and the person one the company has.
pub(super) fn values(fake: &PipedriveFake, body: &Map<String, Value>) -> Option<String> {
    if let Some(s) = body.get("status") {
        if !["open", "won", "lost"].contains(&s.as_str().unwrap_or_default()) {
            return Some(format!("status {s} is not open, won or lost"));
        }
    }
    for key in ["owner_id", "stage_id", "pipeline_id"] {
        if body.get(key).is_some_and(|v| !v.is_u64()) {
            return Some(format!("{key} is not a number"));
        }
    }
    if body.get("value").is_some_and(|v| !v.is_number()) {
        return Some("value is not a number".into());
    }
    if let Some(person) = body.get("person_id") {
        if !person
            .as_u64()
            .is_some_and(|p| fake.persons.lock().unwrap().contains_key(&p))
        {
            return Some("Person not found".into());
        }
    }
    None
}

/// Whether the deal `id` exists.
pub(super) fn exists(fake: &PipedriveFake, id: &Value) -> bool {
    id.is_u64() && fake.deals.lock().unwrap().iter().any(|d| d["id"] == *id)
}

pub(super) fn search(fake: &PipedriveFake, query: &HashMap<String, String>) -> Response {
    let Some(term) = query.get("term").filter(|t| !t.is_empty()) else {
        return fake.problem("deals/search: term missing".into());
    };
    let fields: Vec<&str> = query
        .get("fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    if fields.is_empty()
        || fields
            .iter()
            .any(|f| !["custom_fields", "notes", "title"].contains(f))
    {
        return fake.problem(format!("deals/search: fields {fields:?}"));
    }
    if query.get("exact_match").map(String::as_str) != Some("true") {
        return fake.problem("deals/search: exact_match=true expected".into());
    }
    if let Some(k) = query.keys().find(|k| {
        ![
            "term",
            "fields",
            "exact_match",
            "person_id",
            "organization_id",
            "status",
            "include_fields",
            "limit",
            "cursor",
        ]
        .contains(&k.as_str())
    }) {
        return fake.problem(format!("deals/search: unknown parameter `{k}`"));
    }
    let lag = *fake.search_lag.lock().unwrap();
    let created = fake.deal_created.lock().unwrap().clone();
    let term_l = term.to_lowercase();
    let items: Vec<Value> = fake
        .deals
        .lock()
        .unwrap()
        .iter()
        .filter(|d| {
            d["id"]
                .as_u64()
                .and_then(|id| created.get(&id))
                .is_some_and(|at| at.elapsed() >= lag)
        })
        .filter_map(|d| {
            // Exact, not case sensitive; the item lists the custom field values that matched.
            let matched: Vec<Value> = d["custom_fields"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| v.as_str().is_some_and(|s| s.to_lowercase() == term_l))
                .map(|(_, v)| v.clone())
                .collect();
            let titled = fields.contains(&"title")
                && d["title"]
                    .as_str()
                    .is_some_and(|t| t.to_lowercase() == term_l);
            if !(titled || fields.contains(&"custom_fields") && !matched.is_empty()) {
                return None;
            }
            Some(
                json!({"result_score": 1.0, "item": {"id": d["id"], "type": "deal",
                "title": d["title"], "status": d["status"], "person": {"id": d["person_id"]},
                "custom_fields": matched, "notes": []}}),
            )
        })
        .collect();
    ok(json!({"items": items}), json!({"next_cursor": null}))
}

pub(super) fn patch(fake: &PipedriveFake, id: &str, body: Map<String, Value>) -> Response {
    if let Some(p) = shape(&body, UPDATE_KEYS, true).or_else(|| values(fake, &body)) {
        return fake.problem(format!("PATCH deals: {p}"));
    }
    let mut deals = fake.deals.lock().unwrap();
    let Some(deal) = deals
        .iter_mut()
        .find(|d| id.parse::<u64>().is_ok_and(|id| d["id"] == id))
    else {
        return envelope(StatusCode::NOT_FOUND, "Deal not found");
    };
    for (k, v) in body {
        if k == "custom_fields" {
            let mut merged = deal["custom_fields"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            merged.extend(v.as_object().cloned().unwrap_or_default());
            deal["custom_fields"] = Value::Object(merged);
        } else {
            deal[k] = v;
        }
    }
    ok(deal.clone(), Value::Null)
}

pub(super) fn delete(fake: &PipedriveFake, id: &str) -> Response {
    let mut deals = fake.deals.lock().unwrap();
    let before = deals.len();
    deals.retain(|d| !id.parse::<u64>().is_ok_and(|id| d["id"] == id));
    if deals.len() == before {
        return envelope(StatusCode::NOT_FOUND, "Deal not found");
    }
    ok(json!({"id": id.parse::<u64>().unwrap()}), Value::Null)
}
