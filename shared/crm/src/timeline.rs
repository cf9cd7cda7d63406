//! What the CRMs with a timeline write the same way: the text of an outbound status, and the
//! contact fields of a first or last touch.

use serde_json::{json, Map, Value};
use wabridge_core::attribution::records::AttributionRecord;
use wabridge_core::records::ActivityRecord;

/// Timeline text of an outbound status: `WhatsApp message wamid.X delivered`, with the errors
/// of a failed (or refused) one.
pub(crate) fn status_text(a: &ActivityRecord) -> String {
    let status = a.status.as_deref().unwrap_or("unknown");
    // A `send_result` (a send that ended without a status webhook) has a send id, no wamid.
    let mut text = match (&a.message_id, &a.send_id) {
        (Some(wamid), _) => format!("WhatsApp message {wamid} {status}"),
        (None, Some(send)) => format!("WhatsApp send {send} {status}"),
        (None, None) => format!("WhatsApp message {status}"),
    };
    if !a.errors.is_empty() {
        let why: Vec<String> = a
            .errors
            .iter()
            .map(|e| {
                let mut s = e.code.map(|c| c.to_string()).unwrap_or_default();
                for part in [&e.title, &e.message, &e.details].into_iter().flatten() {
                    if !s.contains(part.as_str()) {
                        s.push(' ');
                        s.push_str(part);
                    }
                }
                s.trim().to_string()
            })
            .collect();
        text.push_str(": ");
        text.push_str(&why.join("; "));
    }
    if let Some(category) = &a.pricing_category {
        text.push_str(&format!(" ({category})"));
    }
    text
}

/// Contact properties of a first or last touch (merge into the contact upsert's `properties`).
pub fn contact_properties(a: &AttributionRecord) -> Map<String, Value> {
    let prefix = format!("wabridge_{}_", a.touch.as_str());
    let mut props = Map::new();
    for (name, value) in [
        ("utm_source", &a.utm_source),
        ("utm_medium", &a.utm_medium),
        ("utm_campaign", &a.utm_campaign),
        ("utm_content", &a.utm_content),
        ("utm_term", &a.utm_term),
        ("ctwa_clid", &a.ctwa_clid),
        ("ref_code", &a.ref_code),
    ] {
        put(&mut props, &format!("{prefix}{name}"), value);
    }
    props.insert(format!("{prefix}at"), json!(a.at.to_string()));
    props
}

/// Every contact field name [`contact_properties`] may write (first and last touch).
pub fn touch_field_names() -> Vec<String> {
    let names = [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "ctwa_clid",
        "ref_code",
        "at",
    ];
    ["first", "last"]
        .iter()
        .flat_map(|touch| names.iter().map(move |n| format!("wabridge_{touch}_{n}")))
        .collect()
}

/// Deal fields a lead carries besides its title (its UTM values, click id, lead id, ref code).
pub const LEAD_FIELDS: [&str; 8] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "ctwa_clid",
    "wabridge_lead_id",
    "wabridge_ref_code",
];

fn put(props: &mut Map<String, Value>, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        props.insert(name.to_string(), json!(v));
    }
}

/// The detail fields of a conversation's Case (Salesforce, Zoho: the same names, `suffix` added,
/// `__c` for Salesforce's custom fields) that the record has a value for, its time written by
/// `time` (each CRM's date-time form) and its tags `;`-joined within a text field's 255.
#[cfg(any(feature = "salesforce", feature = "zoho"))]
pub(crate) fn case_details(
    r: &wabridge_core::conversations::ConversationRecord,
    suffix: &str,
    time: fn(i64) -> String,
) -> Vec<(String, serde_json::Value)> {
    use serde_json::{json, Value};
    let details = [
        ("Agent", r.agent.clone().map(Value::from)),
        ("Origin", r.origin.map(|o| json!(o.as_str()))),
        ("First_Response_Ms", r.first_response_ms.map(Value::from)),
        ("Tags", Some(json!(clip(&r.tags.join(";"), 255)))),
        ("Outcome", r.outcome.clone().map(Value::from)),
        ("Close_Reason", r.close_reason.map(|c| json!(c.as_str()))),
        (
            "SLA_Breached_At",
            r.sla_breached_at.map(|at| json!(time(at))),
        ),
    ];
    details
        .into_iter()
        .filter_map(|(name, v)| Some((format!("wabridge_{name}{suffix}"), v?)))
        .collect()
}

/// At most `max` characters of `text` (a CRM field's length limit).
#[cfg(any(feature = "salesforce", feature = "zoho"))]
pub(crate) fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
