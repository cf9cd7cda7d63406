//! `wabridge crm check` against the fakes: a complete account passes; a missing field, a
//! non-unique id property and refused credentials are each named; the token never shows.

use std::collections::HashMap;
use std::sync::Arc;

use wabridge_core::mapping::Mapping;
use wabridge_crm::check::{check, CheckError, CheckReport};

use super::pipedrive_fake::{self, PipedriveFake};
use crate::crm_http::fake::{self, Fake};
use crate::crm_http::TOKEN;

async fn run(kind: &str, pairs: &[(&str, String)]) -> Result<CheckReport, CheckError> {
    let settings: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain([("CRM_KIND".to_string(), kind.to_string())])
        .collect();
    let mapping = Mapping::example(kind).unwrap();
    check(&mapping, move |name| settings.get(name).cloned()).await
}

#[tokio::test]
async fn hubspot_check_names_missing_properties_and_refused_credentials() {
    let fake = Arc::new(Fake::default());
    let url = format!("http://{}", fake::serve(fake.clone()).await);
    let settings = |token: &str| {
        vec![
            ("HUBSPOT_API_URL", url.clone()),
            ("HUBSPOT_TOKEN", token.to_string()),
        ]
    };
    let report = run("hubspot", &settings(TOKEN)).await.unwrap();
    assert!(report.passed(), "{report:?}");
    assert!(report.ok.iter().any(|o| o == "credentials accepted"));

    fake.missing_properties.lock().unwrap().extend([
        "contacts/whatsapp_bsuid".to_string(),
        "deals/wabridge_effect_id".to_string(),
        "contacts/unique".to_string(),
    ]);
    let report = run("hubspot", &settings(TOKEN)).await.unwrap();
    assert!(!report.passed());
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("contact property `whatsapp_bsuid`"),
        "{missing}"
    );
    assert!(
        missing.contains("deals property `wabridge_effect_id`"),
        "{missing}"
    );
    assert!(
        missing.contains("`whatsapp_id` must have \"Require unique values\""),
        "{missing}"
    );
    assert_eq!(report.missing.len(), 3, "{missing}");

    let report = run("hubspot", &settings("pat-na1-revoked-secret"))
        .await
        .unwrap();
    let missing = report.missing.join("\n");
    assert!(
        !report.passed() && missing.contains("credentials"),
        "{missing}"
    );
    assert!(!missing.contains("pat-na1-revoked-secret"), "{missing}");
}

#[tokio::test]
async fn pipedrive_check_names_missing_fields_and_refused_credentials() {
    let fake = Arc::new(PipedriveFake::new((100, 10)));
    let url = format!("http://{}", pipedrive_fake::serve(fake.clone()).await);
    let settings = |token: &str| {
        vec![
            ("PIPEDRIVE_API_URL", url.clone()),
            ("PIPEDRIVE_API_TOKEN", token.to_string()),
        ]
    };
    let report = run("pipedrive", &settings(pipedrive_fake::TOKEN))
        .await
        .unwrap();
    assert!(report.passed(), "{report:?}");
    // The fake company has no `utm_term` deal field: optional, named, not a failure.
    assert!(
        report.optional.iter().any(|o| o == "deal field `utm_term`"),
        "{report:?}"
    );

    fake.missing_fields.lock().unwrap().extend([
        "whatsapp_bsuid".to_string(),
        "wabridge_effect_id".to_string(),
    ]);
    let report = run("pipedrive", &settings(pipedrive_fake::TOKEN))
        .await
        .unwrap();
    assert_eq!(
        report.missing,
        [
            "person field `whatsapp_bsuid`",
            "deal field `wabridge_effect_id`"
        ],
        "{report:?}"
    );

    let report = run("pipedrive", &settings("revoked-token-secret"))
        .await
        .unwrap();
    let missing = report.missing.join("\n");
    assert!(
        !report.passed() && missing.contains("credentials"),
        "{missing}"
    );
    assert!(!missing.contains("revoked-token-secret"), "{missing}");
    assert!(fake.problems.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_crm_without_a_schema_has_nothing_to_check() {
    let e = run("webhook", &[]).await.expect_err("refused");
    assert!(matches!(e, CheckError::NothingToCheck(_)), "{e}");
    let e = run("pipedrive", &[]).await.expect_err("refused");
    assert!(e.to_string().contains("PIPEDRIVE_API_TOKEN"), "{e}");
}

#[tokio::test]
async fn hubspot_check_names_the_ticket_pipeline_stages_and_properties() {
    let fake = Arc::new(Fake::default());
    let url = format!("http://{}", fake::serve(fake.clone()).await);
    let base = vec![
        ("HUBSPOT_API_URL", url.clone()),
        ("HUBSPOT_TOKEN", TOKEN.to_string()),
    ];
    // A closed stage the pipeline lacks.
    let mut settings = base.clone();
    settings.push(("HUBSPOT_TICKET_CLOSED_STAGE", "9".to_string()));
    let report = run("hubspot", &settings).await.unwrap();
    assert_eq!(
        report.missing,
        vec!["stage of ticket pipeline `0` `9`".to_string()],
        "{report:?}"
    );
    // A pipeline the portal lacks.
    let mut settings = base.clone();
    settings.push(("HUBSPOT_TICKET_PIPELINE", "support-mx".to_string()));
    let report = run("hubspot", &settings).await.unwrap();
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("ticket pipeline `support-mx` (HUBSPOT_TICKET_PIPELINE)"),
        "{missing}"
    );
    // A deal pipeline the portal lacks, then a stage its pipeline lacks.
    let mut settings = base.clone();
    settings.push(("HUBSPOT_DEAL_PIPELINE", "ventas-co".to_string()));
    let report = run("hubspot", &settings).await.unwrap();
    assert_eq!(
        report.missing,
        vec!["deal pipeline `ventas-co` (HUBSPOT_DEAL_PIPELINE)".to_string()],
        "{report:?}"
    );
    let mut settings = base.clone();
    settings.push(("HUBSPOT_DEAL_PIPELINE", "ventas-mx".to_string()));
    settings.push(("HUBSPOT_DEAL_STAGE", "appointmentscheduled".to_string()));
    let report = run("hubspot", &settings).await.unwrap();
    assert_eq!(
        report.missing,
        vec!["stage of deal pipeline `ventas-mx` `appointmentscheduled`".to_string()],
        "{report:?}"
    );
    settings.pop();
    settings.push(("HUBSPOT_DEAL_STAGE", "nuevo-lead".to_string()));
    let report = run("hubspot", &settings).await.unwrap();
    assert!(report.missing.is_empty(), "{report:?}");
    // Ticket properties: one missing, and the conversation id without unique values.
    fake.missing_properties.lock().unwrap().extend([
        "tickets/wabridge_revision".to_string(),
        "tickets/unique".to_string(),
    ]);
    let report = run("hubspot", &base).await.unwrap();
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("ticket property `wabridge_revision`"),
        "{missing}"
    );
    assert!(
        missing.contains("`wabridge_conversation_id` must have \"Require unique values\""),
        "{missing}"
    );
    assert_eq!(report.missing.len(), 2, "{missing}");
}

/// Why the check matters: HubSpot refuses a write naming a property the portal lacks, and the
/// fake does the same, so no adapter can write a property its docs do not ask for.
#[tokio::test]
async fn hubspot_refuses_a_property_the_portal_lacks() {
    use wabridge_core::crm::{Crm, CrmError, Effect};
    use wabridge_core::records::{ContactRecord, Record};

    let fake = Arc::new(Fake::default());
    fake.missing_properties
        .lock()
        .unwrap()
        .insert("contacts/whatsapp_bsuid".to_string());
    let url = format!("http://{}", fake::serve(fake.clone()).await);
    let crm = wabridge_crm::hubspot::HubSpotCrm::new(
        &url,
        TOKEN,
        "whatsapp_id",
        None,
        crate::crm_http::TIMEOUT,
    )
    .unwrap();
    let mut fields = serde_json::Map::new();
    fields.insert("whatsapp_id".into(), "+525512340007".into());
    fields.insert("whatsapp_bsuid".into(), "MX.abc123".into());
    let effect = Effect {
        id: "wamid.P1#contact".into(),
        record: Record::Contact(ContactRecord {
            id: "c1".into(),
            phone_e164: Some("+525512340007".into()),
            bsuid: Some("MX.abc123".into()),
            ..Default::default()
        }),
        fields,
        contact: None,
        in_doubt: false,
    };
    match crm.apply(&effect).await {
        Err(CrmError::Rejected(m)) => assert!(m.contains("PROPERTY_DOESNT_EXIST"), "{m}"),
        other => panic!("expected a 400, got {other:?}"),
    }
    let problems = fake.problems.lock().unwrap().clone();
    assert!(
        problems.iter().any(|p| p.contains("whatsapp_bsuid")),
        "{problems:?}"
    );
}

/// `HUBSPOT_DEAL_PIPELINE` and `HUBSPOT_DEAL_STAGE` choose where a lead's deal lands; the fake
/// refuses a deal in a pipeline or stage the portal lacks.
#[tokio::test]
async fn hubspot_deals_land_in_the_configured_pipeline_and_stage() {
    use wabridge_core::attribution::LeadRecord;
    use wabridge_core::crm::Effect;
    use wabridge_core::records::{ContactRecord, Record};

    let fake = Arc::new(Fake::default());
    let url = format!("http://{}", fake::serve(fake.clone()).await);
    let settings: HashMap<String, String> = [
        ("CRM_KIND", "hubspot"),
        ("HUBSPOT_API_URL", url.as_str()),
        ("HUBSPOT_TOKEN", TOKEN),
        ("HUBSPOT_DEAL_PIPELINE", "ventas-mx"),
        ("HUBSPOT_DEAL_STAGE", "nuevo-lead"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mapping = Mapping::example("hubspot").unwrap();
    let crm =
        wabridge_crm::from_lookup(&mapping, None, None, |n| settings.get(n).cloned()).unwrap();
    let mut fields = serde_json::Map::new();
    fields.insert("whatsapp_id".into(), "+5215512345678".into());
    let lead = LeadRecord {
        v: Default::default(),
        event_id: "wamid.DEAL1".into(),
        contact_id: "ct_1".into(),
        reason: "first_conversation".into(),
        utm_source: None,
        utm_medium: None,
        utm_campaign: Some("verano".into()),
        utm_content: None,
        utm_term: None,
        ctwa_clid: None,
        ref_code: None,
        touch_in_conversation: true,
        created_at: 1_763_780_000_000,
        conversation_id: None,
    };
    let effect = Effect {
        id: "wamid.DEAL1#lead".into(),
        record: Record::Lead(lead),
        fields: serde_json::Map::new(),
        contact: Some((
            Record::Contact(ContactRecord {
                id: "ct_1".into(),
                phone_e164: Some("+5215512345678".into()),
                ..Default::default()
            }),
            fields,
        )),
        in_doubt: false,
    };
    crm.apply(&effect).await.unwrap();
    let deals = fake.deals.lock().unwrap().clone();
    assert_eq!(deals.len(), 1, "{deals:?}");
    let p = &deals[0]["properties"];
    assert_eq!(
        (p["pipeline"].as_str(), p["dealstage"].as_str()),
        (Some("ventas-mx"), Some("nuevo-lead")),
        "{p}"
    );
}
