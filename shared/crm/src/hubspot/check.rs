//! HubSpot's side of `wabridge crm check`: the token works, and every property the adapter
//! writes exists (`GET /crm/v3/properties/{object}`, scope `crm.schemas.*.read`), the id
//! property with unique values.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use wabridge_core::mapping::Mapping;

use super::api::Client;
use super::attribution::DealSettings;
use super::ticket_fields::{TicketSettings, CONVERSATION_PROPERTY, CUSTOM_PROPERTIES};
use crate::check::CheckReport;
use crate::timeline::{touch_field_names, LEAD_FIELDS};

/// Deal properties every deal carries besides the lead fields.
const DEAL_PROPERTIES: [&str; 3] = ["dealname", "pipeline", "dealstage"];

pub(crate) async fn run(
    base: &str,
    token: &str,
    mapping: &Mapping,
    tickets: &TicketSettings,
    deals: &DealSettings,
    timeout: Duration,
) -> Result<CheckReport, crate::ConfigError> {
    let client = Client::new(base, token, timeout)?;
    let mut report = CheckReport::default();
    let mut properties: HashMap<&str, Vec<Value>> = HashMap::new();
    for object in ["contacts", "communications", "deals", "notes", "tickets"] {
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
    report.fields(
        "ticket property",
        CUSTOM_PROPERTIES,
        |n| has("tickets", n),
        true,
    );
    let unique = properties["tickets"]
        .iter()
        .any(|p| p["name"].as_str() == Some(CONVERSATION_PROPERTY) && p["hasUniqueValue"] == true);
    if has("tickets", CONVERSATION_PROPERTY) && !unique {
        report.missing.push(format!(
            "ticket property `{CONVERSATION_PROPERTY}` must have \"Require unique values\" set"
        ));
    }
    let ticket_pipeline = Pipeline {
        object: "ticket",
        id: &tickets.pipeline,
        setting: "HUBSPOT_TICKET_PIPELINE",
        stages: tickets.stages(),
    };
    check_pipeline(&client, &ticket_pipeline, &mut report).await;
    let deal_pipeline = Pipeline {
        object: "deal",
        id: &deals.pipeline,
        setting: "HUBSPOT_DEAL_PIPELINE",
        stages: vec![deals.stage.as_str()],
    };
    check_pipeline(&client, &deal_pipeline, &mut report).await;
    Ok(report)
}

/// A pipeline the settings name, with the stages they use.
struct Pipeline<'a> {
    /// `ticket` or `deal`.
    object: &'a str,
    id: &'a str,
    setting: &'a str,
    stages: Vec<&'a str>,
}

/// The pipeline and every stage the settings name exist (`GET /crm/v3/pipelines/{object}s`,
/// scope `tickets` or `crm.objects.deals.read`).
async fn check_pipeline(client: &Client, wanted: &Pipeline<'_>, report: &mut CheckReport) {
    let object = wanted.object;
    let pipelines = match client.get(&format!("/crm/v3/pipelines/{object}s")).await {
        Ok(answer) => answer
            .and_then(|a| a["results"].as_array().cloned())
            .unwrap_or_default(),
        Err(e) => {
            report
                .missing
                .push(format!("reading {object} pipelines: {e}"));
            return;
        }
    };
    let Some(pipeline) = pipelines
        .iter()
        .find(|p| p["id"].as_str() == Some(wanted.id))
    else {
        report.missing.push(format!(
            "{object} pipeline `{}` ({})",
            wanted.id, wanted.setting
        ));
        return;
    };
    let stages: Vec<&str> = pipeline["stages"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    report.fields(
        &format!("stage of {object} pipeline `{}`", wanted.id),
        wanted.stages.iter().copied(),
        |id| stages.contains(&id),
        true,
    );
}
