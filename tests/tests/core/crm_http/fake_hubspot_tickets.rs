//! The local HubSpot's tickets: creates (with inline associations) and upserts by the unique
//! `wabridge_conversation_id`, batch reads by it, association labels, default associations (v4
//! `batch/associate/default`) and the ticket pipelines (`crm check`), each request checked
//! against HubSpot's documented shapes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::fake::{rate_headers, Fake};
use super::fake_hubspot_reads::unknown_property;

/// `GET /crm/v4/associations/{from}/{to}/labels`.
pub(crate) const LABELS: &str = "/crm/v4/associations/";
/// This portal's HubSpot-defined association types (read by the adapter, never assumed).
pub(crate) const TICKET_TO_CONTACT: u64 = 16;
pub(crate) const COMMUNICATION_TO_TICKET: u64 = 1_022;
pub(crate) const CALL_TO_TICKET: u64 = 220;
/// `GET /crm/v3/pipelines/tickets`.
pub(crate) const PIPELINES: &str = "/crm/v3/pipelines/tickets";
/// `GET /crm/v3/pipelines/deals`.
pub(crate) const DEAL_PIPELINES: &str = "/crm/v3/pipelines/deals";
/// The fake portal's deal pipelines and their stages: HubSpot's sales pipeline and one more.
pub(crate) const DEAL_STAGES: [(&str, &[&str]); 2] = [
    (
        "default",
        &[
            "appointmentscheduled",
            "qualifiedtobuy",
            "closedwon",
            "closedlost",
        ],
    ),
    ("ventas-mx", &["nuevo-lead", "ganado"]),
];
/// The fake portal's support pipeline and its stages (HubSpot's defaults).
pub(crate) const STAGES: [&str; 4] = ["1", "2", "3", "4"];
const CONVERSATION: &str = "wabridge_conversation_id";

/// `POST /crm/v3/objects/tickets/batch/upsert` by the conversation id.
pub(crate) fn upsert(fake: &Fake, inputs: &[Value]) -> Response {
    let mut results = Vec::new();
    for input in inputs {
        if input["idProperty"] != CONVERSATION {
            return fake.problem(format!("ticket upsert: idProperty {}", input["idProperty"]));
        }
        let id = input["id"].as_str().unwrap_or_default().to_string();
        let p = &input["properties"];
        let Some(props) = p.as_object() else {
            return fake.problem("ticket upsert: properties missing".into());
        };
        if let Some((k, _)) = props.iter().find(|(_, v)| !v.is_string()) {
            return fake.problem(format!("ticket property {k} is not a string"));
        }
        if let Some(problem) = unknown_property(fake, "tickets", p) {
            return fake.problem(problem);
        }
        if p[CONVERSATION] != id.as_str() {
            return fake.problem(format!("ticket upsert {id}: id property differs"));
        }
        if let Some(stage) = p["hs_pipeline_stage"].as_str() {
            if p["hs_pipeline"] != "0" || !STAGES.contains(&stage) {
                return fake.problem(format!(
                    "ticket stage {stage} of pipeline {}",
                    p["hs_pipeline"]
                ));
            }
        }
        let mut tickets = fake.tickets.lock().unwrap();
        let n = tickets.len();
        let new = !tickets.contains_key(&id);
        if new {
            // HubSpot requires the pipeline stage (and a subject) on a ticket's creation.
            for required in ["hs_pipeline_stage", "hs_pipeline", "subject"] {
                if !p[required].is_string() {
                    return fake.problem(format!("ticket created without {required}: {p}"));
                }
            }
        }
        let ticket = tickets
            .entry(id.clone())
            .or_insert_with(|| json!({"id": format!("{}", 7000 + n), "properties": {}}));
        for (k, v) in props {
            ticket["properties"][k] = v.clone();
        }
        results.push(
            json!({"id": ticket["id"], "properties": ticket["properties"], "new": new,
            "objectWriteTraceId": input["objectWriteTraceId"]}),
        );
    }
    results.reverse();
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"status": "COMPLETE", "results": results})),
    )
        .into_response()
}

/// `POST /crm/v3/objects/tickets/batch/read` by the unique conversation id.
pub(crate) const TICKET_BATCH_READ: &str = "/crm/v3/objects/tickets/batch/read";

/// The batch read: `idProperty` the conversation id, 1..=100 `{"id"}` inputs, the properties
/// asked; found tickets in `results`, missing ones as one `OBJECT_NOT_FOUND` error (207), as
/// HubSpot answers.
pub(crate) fn batch_read(fake: &Fake, v: &Value) -> Response {
    if v["idProperty"] != CONVERSATION {
        return fake.problem(format!("ticket batch read: idProperty {}", v["idProperty"]));
    }
    let Some(wanted) = v["properties"].as_array().filter(|p| !p.is_empty()) else {
        return fake.problem("ticket batch read: no properties asked".to_string());
    };
    let inputs = v["inputs"].as_array().cloned().unwrap_or_default();
    if inputs.is_empty() || inputs.len() > 100 || inputs.iter().any(|i| !i["id"].is_string()) {
        return fake.problem(format!("ticket batch read: inputs {}", v["inputs"]));
    }
    let tickets = fake.tickets.lock().unwrap();
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for input in &inputs {
        let id = input["id"].as_str().unwrap_or_default();
        match tickets.get(id) {
            Some(ticket) => {
                let props: serde_json::Map<String, Value> = wanted
                    .iter()
                    .filter_map(|k| {
                        let k = k.as_str()?;
                        Some((k.to_string(), ticket["properties"].get(k)?.clone()))
                    })
                    .collect();
                results.push(json!({"id": ticket["id"], "properties": props, "archived": false}));
            }
            None => missing.push(id.to_string()),
        }
    }
    let mut body = json!({"status": "COMPLETE", "results": results});
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        body["numErrors"] = json!(1);
        body["errors"] = json!([{"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some TICKET objects, they may be deleted or not exist.",
            "context": {"ids": missing}}]);
        StatusCode::MULTI_STATUS
    };
    (status, rate_headers(), Json(body)).into_response()
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default`: ticket → contact and
/// communication → ticket, between objects the portal holds.
pub(crate) fn associate(fake: &Fake, path: &str, v: &Value) -> Response {
    let kinds = path
        .trim_start_matches("/crm/v4/associations/")
        .trim_end_matches("/batch/associate/default");
    if !matches!(kinds, "tickets/contacts" | "communications/tickets")
        || !path.ends_with("/batch/associate/default")
    {
        return fake.problem(format!("unexpected association path {path}"));
    }
    let Some(inputs) = v["inputs"]
        .as_array()
        .filter(|i| !i.is_empty() && i.len() <= 100)
    else {
        return fake.problem(format!("{path}: inputs {v}"));
    };
    let tickets: Vec<Value> = fake
        .tickets
        .lock()
        .unwrap()
        .values()
        .map(|t| t["id"].clone())
        .collect();
    let contacts: Vec<String> = fake.contacts.lock().unwrap().values().cloned().collect();
    let comms: Vec<Value> = fake
        .comms
        .lock()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    let mut results = Vec::new();
    for input in inputs {
        let (Some(from), Some(to)) = (input["from"]["id"].as_str(), input["to"]["id"].as_str())
        else {
            return fake.problem(format!("{path}: input {input}"));
        };
        if input.get("types").is_some() {
            return fake.problem(format!("{path}: default associations take no types"));
        }
        let known = match kinds {
            "tickets/contacts" => {
                tickets.contains(&json!(from)) && contacts.iter().any(|c| c == to)
            }
            _ => comms.contains(&json!(from)) && tickets.contains(&json!(to)),
        };
        if !known {
            return fake.problem(format!("{path}: {from} → {to}: no such objects"));
        }
        let link = (kinds.to_string(), from.to_string(), to.to_string());
        let mut links = fake.ticket_links.lock().unwrap();
        if !links.contains(&link) {
            links.push(link);
        }
        results.push(json!({"from": {"id": from}, "to": {"id": to},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 0}}));
    }
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"status": "COMPLETE", "results": results, "numErrors": 0})),
    )
        .into_response()
}

/// The portal's ticket pipelines: the support pipeline with its four stages.
pub(crate) fn pipelines() -> Response {
    let stages: Vec<Value> = STAGES
        .iter()
        .map(|s| json!({"id": s, "label": format!("stage {s}"), "displayOrder": s.parse::<u32>().unwrap_or(0),
            "metadata": {"ticketState": if *s == "4" { "CLOSED" } else { "OPEN" }}}))
        .collect();
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"results": [{"id": "0", "label": "Support Pipeline", "stages": stages}]})),
    )
        .into_response()
}

/// `POST /crm/v3/objects/tickets/batch/create`: each input a new conversation's ticket, with
/// its contact association inline or none (HubSpot's associations are optional); a conversation id the portal holds already refuses the whole
/// call with 409 (the property has unique values), as HubSpot does.
pub(crate) fn create(fake: &Fake, inputs: &[Value]) -> Response {
    let mut results = Vec::new();
    for input in inputs {
        let p = &input["properties"];
        let Some(props) = p.as_object() else {
            return fake.problem("ticket create: properties missing".into());
        };
        if let Some((k, _)) = props.iter().find(|(_, v)| !v.is_string()) {
            return fake.problem(format!("ticket property {k} is not a string"));
        }
        if let Some(problem) = unknown_property(fake, "tickets", p) {
            return fake.problem(problem);
        }
        for required in ["hs_pipeline_stage", "hs_pipeline", "subject", CONVERSATION] {
            if !p[required].is_string() {
                return fake.problem(format!("ticket created without {required}: {p}"));
            }
        }
        // None (a new contact's id is not known yet: tied later), or the contact's.
        let a = &input["associations"];
        let to = a[0]["to"]["id"].as_str().map(String::from);
        let none = a.is_null() || a.as_array().is_some_and(Vec::is_empty);
        if !none
            && (a.as_array().map(Vec::len) != Some(1)
                || a[0]["types"][0]["associationCategory"] != "HUBSPOT_DEFINED"
                || a[0]["types"][0]["associationTypeId"] != TICKET_TO_CONTACT)
        {
            return fake.problem(format!("ticket create: associations {a}"));
        }
        if let Some(to) = to
            .as_ref()
            .filter(|to| !fake.contacts.lock().unwrap().values().any(|c| c == *to))
        {
            return fake.problem(format!(
                "ticket create: association to unknown contact {to}"
            ));
        }
        let id = p[CONVERSATION].as_str().unwrap_or_default().to_string();
        let mut tickets = fake.tickets.lock().unwrap();
        if tickets.contains_key(&id) {
            return (
                StatusCode::CONFLICT,
                Json(json!({"status": "error", "category": "CONFLICT",
                    "message": format!("A ticket with {CONVERSATION} {id} already exists."),
                    "correlationId": "fake"})),
            )
                .into_response();
        }
        let ticket = json!({"id": format!("{}", 7000 + tickets.len()), "properties": p});
        let ticket_id = ticket["id"].as_str().unwrap_or_default().to_string();
        tickets.insert(id, ticket);
        if let Some(to) = to {
            fake.ticket_links.lock().unwrap().push((
                "tickets/contacts".into(),
                ticket_id.clone(),
                to,
            ));
        }
        results.push(json!({"id": ticket_id, "properties": p,
            "objectWriteTraceId": input["objectWriteTraceId"]}));
    }
    results.reverse();
    (
        StatusCode::CREATED,
        rate_headers(),
        Json(json!({"status": "COMPLETE", "results": results})),
    )
        .into_response()
}

/// The association types between two object types: HubSpot's unlabeled default and a labeled
/// one (which the adapter must not take).
pub(crate) fn labels(fake: &Fake, path: &str) -> Response {
    let kinds = path.trim_start_matches(LABELS).trim_end_matches("/labels");
    let default = match kinds {
        "tickets/contacts" => TICKET_TO_CONTACT,
        "communications/tickets" => COMMUNICATION_TO_TICKET,
        "calls/tickets" => CALL_TO_TICKET,
        _ => return fake.problem(format!("unexpected labels path {path}")),
    };
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"results": [
            {"category": "HUBSPOT_DEFINED", "typeId": default + 100, "label": "Primary"},
            {"category": "HUBSPOT_DEFINED", "typeId": default, "label": null}
        ]})),
    )
        .into_response()
}

/// A Communication's inline association to a ticket (`associations[1]`), checked and recorded
/// like a default one; `None` when it has none or it is right.
pub(crate) fn communication_ticket(fake: &Fake, comm: &str, a: &Value) -> Option<String> {
    inline_ticket(fake, "communications", COMMUNICATION_TO_TICKET, comm, a)
}

fn inline_ticket(fake: &Fake, from: &str, type_id: u64, id: &str, a: &Value) -> Option<String> {
    let link = a.as_array()?.get(1)?;
    let to = link["to"]["id"].as_str().unwrap_or_default();
    if link["types"][0]["associationCategory"] != "HUBSPOT_DEFINED"
        || link["types"][0]["associationTypeId"] != type_id
    {
        return Some(format!("{from} → ticket types: {}", link["types"]));
    }
    if !fake.tickets.lock().unwrap().values().any(|t| t["id"] == to) {
        return Some(format!("{from} → unknown ticket {to}"));
    }
    fake.ticket_links.lock().unwrap().push((
        format!("{from}/tickets"),
        id.to_string(),
        to.to_string(),
    ));
    None
}

/// `POST /crm/v3/objects/calls` (its contact association checked by the caller): a Call
/// engagement, with its ticket association inline when it has one.
pub(crate) fn call(fake: &Fake, v: &Value) -> Response {
    for required in ["hs_timestamp", "hs_call_title", "hs_call_status"] {
        if !v["properties"][required].is_string() {
            return fake.problem(format!("call without {required}: {v}"));
        }
    }
    let mut calls = fake.call_engagements.lock().unwrap();
    let id = format!("{}", 8000 + calls.len());
    if let Some(problem) = inline_ticket(fake, "calls", CALL_TO_TICKET, &id, &v["associations"]) {
        return fake.problem(problem);
    }
    let mut stored = v.clone();
    stored["id"] = json!(id);
    calls.push(stored);
    (
        StatusCode::CREATED,
        rate_headers(),
        Json(json!({"id": id, "properties": v["properties"]})),
    )
        .into_response()
}

/// The portal's deal pipelines ([`DEAL_STAGES`]).
pub(crate) fn deal_pipelines() -> Response {
    let results: Vec<Value> = DEAL_STAGES
        .iter()
        .map(|(id, stages)| {
            let stages: Vec<Value> = stages
                .iter()
                .map(|s| json!({"id": s, "label": s, "metadata": {"probability": "0.2"}}))
                .collect();
            json!({"id": id, "label": id, "stages": stages})
        })
        .collect();
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"results": results})),
    )
        .into_response()
}

/// Whether `pipeline` has `stage` in the portal.
pub(crate) fn deal_stage_exists(pipeline: &str, stage: &str) -> bool {
    DEAL_STAGES
        .iter()
        .any(|(id, stages)| *id == pipeline && stages.contains(&stage))
}
