//! The local HubSpot's writes and searches (CRM v3 batch upserts and creates, searches), each
//! request checked against HubSpot's documented shapes.

use std::collections::HashSet;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::fake::{rate_headers, Fake};
use super::fake_hubspot_reads::{gdpr_delete, unknown_property};
pub(crate) use super::fake_hubspot_reads::{hubspot_read, properties, CONTACT_READ, PROPERTIES};
use super::TOKEN;

pub(crate) fn hubspot(fake: &Fake, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": "error", "category": "INVALID_AUTHENTICATION"})),
        )
            .into_response();
    }
    if path == "/files/v3/files" {
        return super::fake_files::upload(fake, headers, body);
    }
    if !headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"))
    {
        return fake.problem(format!("{path}: content-type is not JSON"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return fake.problem(format!("{path}: not JSON"));
    };
    if path.starts_with("/crm/v4/associations/") {
        return super::fake_hubspot_tickets::associate(fake, path, &v);
    }
    if path == super::fake_hubspot_tickets::TICKET_BATCH_READ {
        return super::fake_hubspot_tickets::batch_read(fake, &v);
    }
    let inputs = v["inputs"].as_array().cloned().unwrap_or_default();
    if path.contains("/batch/") {
        // HubSpot batch endpoints: 1..=100 inputs, each with a distinct objectWriteTraceId.
        if inputs.is_empty() || inputs.len() > 100 {
            return fake.problem(format!("{path}: {} inputs", inputs.len()));
        }
        let traces: HashSet<&str> = inputs
            .iter()
            .filter_map(|i| i["objectWriteTraceId"].as_str())
            .collect();
        if traces.len() != inputs.len() {
            return fake.problem(format!("{path}: objectWriteTraceId missing or repeated"));
        }
        *fake
            .batch_calls
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += 1;
        *fake
            .batch_inputs
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += inputs.len() as u64;
    }
    // Property values are strings, of properties the portal has.
    let object = path
        .trim_start_matches("/crm/v3/objects/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let strings_only = |props: &Value| -> Option<String> {
        match props.as_object() {
            None => Some("properties missing".into()),
            Some(p) => p
                .iter()
                .find(|(_, v)| !v.is_string())
                .map(|(k, _)| format!("property {k} is not a string"))
                .or_else(|| unknown_property(fake, &object, props)),
        }
    };
    // Association of a created object to a known contact with the documented type id.
    let association = |a: &Value, type_id: u64| -> Option<String> {
        let a = &a[0];
        let to = a["to"]["id"].as_str().unwrap_or_default();
        if !fake.contacts.lock().unwrap().values().any(|id| id == to) {
            return Some(format!("association to unknown contact {to}"));
        }
        if a["types"][0]["associationCategory"] != "HUBSPOT_DEFINED"
            || a["types"][0]["associationTypeId"] != type_id
        {
            return Some(format!("association types: {}", a["types"]));
        }
        None
    };
    let mut results = Vec::new();
    let mut errors = Vec::new();
    match path {
        "/crm/v3/objects/contacts/batch/upsert" => {
            let ids: HashSet<&str> = inputs.iter().filter_map(|i| i["id"].as_str()).collect();
            if ids.len() != inputs.len() {
                // HubSpot refuses duplicate ids within one upsert batch.
                return fake.problem("upsert: duplicate id in one batch".into());
            }
            for input in &inputs {
                if input["idProperty"] != "whatsapp_id" {
                    return fake.problem(format!("idProperty {}", input["idProperty"]));
                }
                let id = input["id"].as_str().unwrap_or_default().to_string();
                if let Some(p) = strings_only(&input["properties"]) {
                    return fake.problem(p);
                }
                if input["properties"]["whatsapp_id"] != id.as_str() {
                    return fake.problem(format!("upsert {id}: id property differs"));
                }
                let mut contacts = fake.contacts.lock().unwrap();
                let n = contacts.len();
                let hs_id = contacts
                    .entry(id.clone())
                    .or_insert_with(|| format!("{}", 1000 + n))
                    .clone();
                let mut all_props = fake.contact_props.lock().unwrap();
                let merged = all_props.entry(id).or_insert_with(|| json!({}));
                for (k, val) in input["properties"].as_object().unwrap() {
                    merged[k] = val.clone();
                }
                results.push(
                    json!({"id": hs_id, "properties": input["properties"], "new": false,
                                    "objectWriteTraceId": input["objectWriteTraceId"]}),
                );
            }
        }
        "/crm/v3/objects/communications/batch/create" => {
            for input in &inputs {
                let p = &input["properties"];
                if let Some(problem) = strings_only(p) {
                    return fake.problem(problem);
                }
                if p["hs_communication_channel_type"] != "WHATS_APP"
                    || p["hs_communication_logged_from"] != "CRM"
                {
                    return fake.problem(format!("communication properties: {p}"));
                }
                if !p["hs_timestamp"].is_string() || !p["hs_communication_body"].is_string() {
                    return fake.problem(format!("communication without hs_timestamp/body: {p}"));
                }
                if let Some(problem) = association(&input["associations"], 81) {
                    return fake.problem(problem);
                }
                // A per-input validation failure (what HubSpot answers with 207 Multi-Status).
                if p["hs_communication_body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("RECHAZAR")
                {
                    errors.push(json!({"status": "error", "category": "VALIDATION_ERROR",
                        "message": "Property values were not valid",
                        "context": {"objectWriteTraceId": [input["objectWriteTraceId"]]}}));
                    continue;
                }
                let mut comms = fake.comms.lock().unwrap();
                let id = format!("{}", 5000 + comms.len());
                let ticket = super::fake_hubspot_tickets::communication_ticket;
                if let Some(problem) = ticket(fake, &id, &input["associations"]) {
                    return fake.problem(problem);
                }
                fake.created
                    .lock()
                    .unwrap()
                    .insert(id.clone(), Instant::now());
                let mut stored = input.clone();
                stored["id"] = json!(id);
                comms.push(stored);
                results.push(json!({"id": id, "properties": p,
                                    "objectWriteTraceId": input["objectWriteTraceId"]}));
            }
        }
        "/crm/v3/objects/deals/batch/create" => {
            for input in &inputs {
                let p = &input["properties"];
                if let Some(problem) = strings_only(p) {
                    return fake.problem(problem);
                }
                for required in ["dealname", "pipeline", "dealstage"] {
                    if !p[required].is_string() {
                        return fake.problem(format!("deal without {required}: {p}"));
                    }
                }
                let (pipeline, stage) = (p["pipeline"].as_str(), p["dealstage"].as_str());
                if !super::fake_hubspot_tickets::deal_stage_exists(
                    pipeline.unwrap_or_default(),
                    stage.unwrap_or_default(),
                ) {
                    return fake.problem(format!("deal stage {stage:?} of pipeline {pipeline:?}"));
                }
                if let Some(problem) = association(&input["associations"], 3) {
                    return fake.problem(problem);
                }
                let mut deals = fake.deals.lock().unwrap();
                let id = format!("{}", 9000 + deals.len());
                fake.created
                    .lock()
                    .unwrap()
                    .insert(id.clone(), Instant::now());
                let mut stored = input.clone();
                stored["id"] = json!(id);
                deals.push(stored);
                results.push(json!({"id": id, "properties": p,
                                    "objectWriteTraceId": input["objectWriteTraceId"]}));
            }
        }
        "/crm/v3/objects/tickets/batch/upsert" => {
            return super::fake_hubspot_tickets::upsert(fake, &inputs)
        }
        "/crm/v3/objects/tickets/batch/create" => {
            return super::fake_hubspot_tickets::create(fake, &inputs)
        }
        "/crm/v3/objects/calls" => {
            if let Some(problem) = strings_only(&v["properties"]) {
                return fake.problem(problem);
            }
            if let Some(problem) = association(&v["associations"], 194) {
                return fake.problem(problem);
            }
            return super::fake_hubspot_tickets::call(fake, &v);
        }
        "/crm/v3/objects/contacts/gdpr-delete" => return gdpr_delete(fake, &v),
        "/crm/v3/objects/notes" => return super::fake_files::note(fake, &v),
        "/crm/v3/objects/contacts/search" => {
            let f = &v["filterGroups"][0]["filters"][0];
            if f["operator"] != "EQ" || !f["propertyName"].is_string() || !f["value"].is_string() {
                return fake.problem(format!("search filter: {f}"));
            }
            let Some(want) = v["properties"][0].as_str() else {
                return fake.problem(format!("contact search without properties: {v}"));
            };
            let prop = f["propertyName"].as_str().unwrap();
            let contacts = fake.contacts.lock().unwrap().clone();
            let found: Vec<Value> = fake
                .contact_props
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, p)| p[prop] == f["value"])
                .map(|(key, p)| json!({"id": contacts.get(key), "properties": {want: p[want]}}))
                .collect();
            return (
                StatusCode::OK,
                rate_headers(),
                Json(json!({"total": found.len(), "results": found})),
            )
                .into_response();
        }
        "/crm/v3/objects/communications/search"
        | "/crm/v3/objects/deals/search"
        | "/crm/v3/objects/notes/search" => {
            let f = &v["filterGroups"][0]["filters"][0];
            if f["operator"] != "EQ" || !f["propertyName"].is_string() || !f["value"].is_string() {
                return fake.problem(format!("search filter: {f}"));
            }
            let prop = f["propertyName"].as_str().unwrap();
            let store = if path.contains("deals") {
                fake.deals.lock().unwrap().clone()
            } else if path.contains("notes") {
                fake.notes.lock().unwrap().clone()
            } else {
                fake.comms.lock().unwrap().clone()
            };
            let created = fake.created.lock().unwrap().clone();
            let lag = *fake.search_lag.lock().unwrap();
            let indexed = |c: &Value| {
                created
                    .get(c["id"].as_str().unwrap_or_default())
                    .is_some_and(|t| t.elapsed() >= lag)
            };
            let found: Vec<Value> = store
                .iter()
                .filter(|c| c["properties"][prop] == f["value"] && indexed(c))
                .map(|c| json!({"id": c["id"], "properties": {prop: c["properties"][prop]}}))
                .collect();
            return (
                StatusCode::OK,
                rate_headers(),
                Json(json!({"total": found.len(), "results": found})),
            )
                .into_response();
        }
        other => return fake.problem(format!("unexpected path {other}")),
    }
    // HubSpot does not promise the order of batch results: answer them reversed.
    results.reverse();
    let status = if errors.is_empty() {
        if path.ends_with("/create") {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
    } else {
        StatusCode::MULTI_STATUS
    };
    (
        status,
        rate_headers(),
        Json(
            json!({"status": "COMPLETE", "results": results, "errors": errors,
                    "numErrors": errors.len()}),
        ),
    )
        .into_response()
}
