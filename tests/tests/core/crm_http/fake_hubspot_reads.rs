//! The local HubSpot's reads: the portal's properties (`crm check`), a contact by its unique
//! property, and the GDPR delete.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::fake::{rate_headers, Fake};
use super::TOKEN;

/// `GET /crm/v3/properties/{object}`: the portal's properties of an object.
pub(crate) const PROPERTIES: &str = "/crm/v3/properties/";

/// The portal's properties, as HubSpot lists them (`results[].name`, `hasUniqueValue`), less
/// the ones a test removed.
pub(crate) fn properties(fake: &Fake, path: &str, headers: &HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"status": "error", "category": "INVALID_AUTHENTICATION",
                "message": "Authentication credentials not found."}),
            ),
        )
            .into_response();
    }
    let object = path.trim_start_matches(PROPERTIES);
    let Some(names) = portal(object) else {
        return not_found();
    };
    let missing = fake.missing_properties.lock().unwrap().clone();
    let results: Vec<Value> = names
        .iter()
        .filter(|n| !missing.contains(&format!("{object}/{n}")))
        .map(|n| {
            json!({"name": n, "label": n, "type": "string", "fieldType": "text",
            "hasUniqueValue": (n == "whatsapp_id" || n == "wabridge_conversation_id")
                && !missing.contains(&format!("{object}/unique"))})
        })
        .collect();
    (
        StatusCode::OK,
        rate_headers(),
        Json(json!({"results": results})),
    )
        .into_response()
}

/// The portal's properties of `object` (before a test removes some): HubSpot's own ones the
/// adapter writes, and the custom ones docs/crm/hubspot.md says to create.
pub(crate) fn portal(object: &str) -> Option<Vec<String>> {
    let touch = ["first", "last"].iter().flat_map(|t| {
        [
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "ctwa_clid",
            "ref_code",
            "at",
        ]
        .iter()
        .map(move |n| format!("wabridge_{t}_{n}"))
    });
    let names: Vec<String> = match object {
        "contacts" => [
            "whatsapp_id",
            "whatsapp_bsuid",
            "phone",
            "email",
            "firstname",
            "lastname",
            "hs_analytics_source_data_2",
            "whatsapp_marketing_consent",
            "whatsapp_consent_date",
            "whatsapp_consent_source",
        ]
        .iter()
        .map(|n| n.to_string())
        .chain(touch)
        .collect(),
        "communications" => [
            "hs_communication_body",
            "hs_timestamp",
            "hs_communication_channel_type",
            "hs_communication_logged_from",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        "deals" => [
            "dealname",
            "pipeline",
            "dealstage",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "ctwa_clid",
            "wabridge_lead_id",
            "wabridge_ref_code",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        "notes" => [
            "hs_note_body",
            "hs_timestamp",
            "hs_attachment_ids",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        "calls" => [
            "hs_timestamp",
            "hs_call_title",
            "hs_call_body",
            "hs_call_direction",
            "hs_call_duration",
            "hs_call_status",
            "hs_call_from_number",
            "hs_call_to_number",
            "wabridge_effect_id",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        "tickets" => [
            "subject",
            "content",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hubspot_owner_id",
            "wabridge_conversation_id",
            "wabridge_revision",
            "wabridge_agent",
            "wabridge_origin",
            "wabridge_opened_by",
            "wabridge_first_response_ms",
            "wabridge_outcome",
            "wabridge_close_reason",
            "wabridge_sla_breached_at",
            "wabridge_tags",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect(),
        _ => return None,
    };
    Some(names)
}

/// A HubSpot 400 for a write naming properties the portal lacks, as HubSpot refuses them.
pub(crate) fn unknown_property(fake: &Fake, object: &str, props: &Value) -> Option<String> {
    let names = portal(object).unwrap_or_default();
    let missing = fake.missing_properties.lock().unwrap().clone();
    props.as_object()?.keys().find_map(|k| {
        (!names.contains(k) || missing.contains(&format!("{object}/{k}")))
            .then(|| format!("{object}: Property \"{k}\" does not exist (PROPERTY_DOESNT_EXIST)"))
    })
}

/// `GET /crm/v3/objects/contacts/{value}?idProperty=…`.
pub(crate) const CONTACT_READ: &str = "/crm/v3/objects/contacts/";

pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"status": "error", "message": "resource not found",
            "category": "OBJECT_NOT_FOUND"})),
    )
        .into_response()
}

/// HubSpot's read of one contact by a unique property: 200 with its id, or 404.
pub(crate) fn hubspot_read(fake: &Fake, path: &str, query: &str, headers: &HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, Json(json!({"status": "error"}))).into_response();
    }
    let value = path.trim_start_matches(CONTACT_READ);
    let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !query.split('&').any(|p| p == "idProperty=whatsapp_id") {
        return fake.problem(format!("read {value}: idProperty missing ({query})"));
    }
    let props = fake.contact_props.lock().unwrap().get(&value).cloned();
    match fake.contacts.lock().unwrap().get(&value) {
        Some(id) => (
            StatusCode::OK,
            rate_headers(),
            Json(json!({"id": id, "properties": props.unwrap_or_default(), "archived": false})),
        )
            .into_response(),
        None => not_found(),
    }
}

/// `POST /crm/v3/objects/contacts/gdpr-delete`: the contact and its associated content go.
pub(crate) fn gdpr_delete(fake: &Fake, v: &Value) -> Response {
    let Some(id) = v["objectId"].as_str() else {
        return fake.problem(format!("gdpr-delete: objectId missing in {v}"));
    };
    if v.get("idProperty").is_some() {
        return fake.problem("gdpr-delete: only record ids are used".into());
    }
    let mut contacts = fake.contacts.lock().unwrap();
    let Some(key) = contacts
        .iter()
        .find(|(_, hs)| hs.as_str() == id)
        .map(|(k, _)| k.clone())
    else {
        return not_found();
    };
    contacts.remove(&key);
    fake.contact_props.lock().unwrap().remove(&key);
    let associated = |o: &Value| o["associations"][0]["to"]["id"] == id;
    fake.comms.lock().unwrap().retain(|c| !associated(c));
    fake.deals.lock().unwrap().retain(|d| !associated(d));
    fake.notes.lock().unwrap().retain(|n| !associated(n));
    StatusCode::NO_CONTENT.into_response()
}
