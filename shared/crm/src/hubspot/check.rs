//! HubSpot's side of `wabridge crm check`: the token works, and every property the adapter
//! writes exists (`GET /crm/v3/properties/{object}`, scope `crm.schemas.*.read`), the id
//! property with unique values.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use wabridge_core::mapping::Mapping;

use super::api::Client;
use crate::check::CheckReport;
use crate::timeline::{touch_field_names, LEAD_FIELDS};

/// Deal properties every deal carries besides the lead fields.
const DEAL_PROPERTIES: [&str; 3] = ["dealname", "pipeline", "dealstage"];

pub(crate) async fn run(
    base: &str,
    token: &str,
    mapping: &Mapping,
    timeout: Duration,
) -> Result<CheckReport, crate::ConfigError> {
    let client = Client::new(base, token, timeout)?;
    let mut report = CheckReport::default();
    let mut properties: HashMap<&str, Vec<Value>> = HashMap::new();
    for object in ["contacts", "communications", "deals", "notes"] {
        match client.get(&format!("/crm/v3/properties/{object}")).await {
            Ok(answer) => {
                let list = answer
                    .and_then(|a| a["results"].as_array().cloned())
                    .unwrap_or_default();
                properties.insert(object, list);
            }
            Err(e) => {
                report
                    .missing
                    .push(format!("reading {object} properties: {e}"));
                return Ok(report);
            }
        }
    }
    report.ok.push("credentials accepted".into());
    let has = |object: &str, name: &str| {
        properties[object]
            .iter()
            .any(|p| p["name"].as_str() == Some(name))
    };
    let contact_fields: Vec<String> = mapping
        .contact
        .iter()
        .chain(&mapping.consent_fields)
        .map(|f| f.to.clone())
        .chain(touch_field_names())
        .collect();
    report.fields(
        "contact property",
        contact_fields.iter().map(String::as_str),
        |n| has("contacts", n),
        true,
    );
    if let Some(id) = &mapping.id_property {
        let unique = properties["contacts"]
            .iter()
            .any(|p| p["name"].as_str() == Some(id) && p["hasUniqueValue"] == true);
        if has("contacts", id) && !unique {
            report.missing.push(format!(
                "contact property `{id}` must have \"Require unique values\" set"
            ));
        }
    }
    let activity: Vec<&str> = mapping.activity.iter().map(|f| f.to.as_str()).collect();
    report.fields(
        "communication property",
        activity,
        |n| has("communications", n),
        true,
    );
    report.fields(
        "deal property",
        DEAL_PROPERTIES.into_iter().chain(LEAD_FIELDS),
        |n| has("deals", n),
        true,
    );
    if let Some(effect) = &mapping.effect_property {
        for object in ["communications", "deals", "notes"] {
            report.fields(
                &format!("{object} property"),
                [effect.as_str()],
                |n| has(object, n),
                true,
            );
        }
    }
    Ok(report)
}
