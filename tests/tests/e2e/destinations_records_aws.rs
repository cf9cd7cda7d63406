//! A `records` destination on AWS (docs/destinations.md#the-records-kind) over moto's DynamoDB,
//! SNS and SQS: the relay Lambda with `DESTINATION_KIND=records` reads the table's numbers
//! registry for each number's mapping, and posts each event's canonical records to the
//! destination, signed the Standard Webhooks way (verified as a receiver does), once each though
//! SQS hands the batch over twice, with the contact ids the CRM's crm-sync resolved and although
//! the CRM's crm-sync confirmed the same effects in the same table's ledger. A person the CRM's
//! crm-sync has not resolved yet waits for it. Bad settings name their variable.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_core::event::Event;
use wabridge_core::mapping::Mapping;
use wabridge_core::numbers::destinations::DestinationKind;
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sync::CrmSync;
use wabridge_crm::webhook::WebhookCrm;

use crate::destinations_aws::{stack, MX, REGISTRY, WABA_MX};
use crate::destinations_records::{receiver, verify, Got, RECORDS_SECRET};
use wabridge_tests::{create_table, require_aws, unique_name};

const ANA: &str = "5215512345678";
const LUIS: &str = "5215587654321";

fn message(wamid: &str, wa_id: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_MX, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": MX},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": "1763780000", "type": "text",
                      "text": {"body": "¿Tienen envío a Monterrey?"}}]}}]}]})
}

/// The records the destination got, each checked as a Standard Webhooks receiver does.
fn records(got: &Got) -> Vec<(String, Value)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(body, headers)| {
            let id = verify(headers, body).expect("signed under the destination's secret");
            (id, serde_json::from_str(body).unwrap())
        })
        .collect()
}

/// The records the CRM got (signed under the CRM's secret, not checked here).
fn crm_records(got: &Got) -> Vec<(String, Value)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(body, _)| (String::new(), serde_json::from_str(body).unwrap()))
        .collect()
}

/// The activities' (message id, contact id) of `records`.
fn activities(records: &[(String, Value)]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|(_, r)| r["kind"] == "activity")
        .map(|(_, r)| {
            let id = |k: &str| r[k].as_str().unwrap().to_string();
            (id("message_id"), id("contact_id"))
        })
        .collect()
}

#[tokio::test]
async fn a_records_destination_on_aws_posts_each_record_once_signed_beside_the_crm() {
    let s = stack(require_aws!()).await;
    let engine = s.aws.engine(&s.table);
    // The registry crm-sync reads, in the table: ventas-mx's mapping is the local CRM's example.
    let split = wabridge_core::numbers::items::split("numbers.toml", REGISTRY.as_bytes()).unwrap();
    DynamoNumbers::new(s.aws.dynamo.clone(), &s.table)
        .put(split.settings.as_deref(), &split.entries)
        .await
        .unwrap();
    let (crm_url, crm_got) = receiver().await;
    let (url, got) = receiver().await;

    // The CRM's crm-sync over the same table: it writes identities and confirms its effects in
    // the unscoped ledger.
    let crm = CrmSync::new(
        Arc::new(engine.identities()),
        Arc::new(engine.ledger(Duration::from_secs(86_400))),
        Arc::new(WebhookCrm::new(&crm_url, "crm-secret", Duration::from_secs(5)).unwrap()),
        Arc::new(Mapping::example("local").unwrap()),
    );
    let crm_takes_all = || async {
        let event = s.batch(&s.events.url).await;
        for record in &event.records {
            let e = Event::from_json(record.body.as_deref().unwrap()).unwrap();
            assert!(matches!(
                crm.handle_event(&e, 1).await,
                wabridge_core::consumer::Outcome::Done
            ));
        }
        s.finish(&s.events.url, &event).await;
    };

    let destination = relay::Destination {
        name: "warehouse".into(),
        kind: DestinationKind::Records,
        url,
        secret_key: "WAREHOUSE_SECRET".into(),
        queue_url: s.bot.url.clone(),
        dlq_url: s.bot.dlq_url.clone(),
    };
    let settings = relay::records(&engine, &destination, |_| None)
        .await
        .unwrap();
    assert!(settings.numbers.is_some(), "the table's registry is read");
    let app = relay::build_records(
        &engine,
        &destination,
        RECORDS_SECRET,
        settings,
        RetryPolicy::EVENTS,
    )
    .unwrap();

    // Ana writes; the CRM's crm-sync takes it first (it resolves Ana and confirms its effects).
    s.post(&message("wamid.ANA1", ANA)).await;
    crm_takes_all().await;
    let crm_contact = activities(&crm_records(&crm_got))[0].1.clone();

    // SQS hands the destination's batch over twice: its records are posted once, all of them
    // although the CRM's ledger holds the same effects, with the CRM's contact id.
    let event = s.batch(&s.bot.url).await;
    assert_eq!(event.records.len(), 1);
    for _ in 0..2 {
        let answer = relay::handle(&app, event.clone(), None).await;
        assert!(answer.batch_item_failures.is_empty());
    }
    s.finish(&s.bot.url, &event).await;
    let posted = records(&got);
    let kinds: Vec<&str> = posted
        .iter()
        .map(|(_, r)| r["kind"].as_str().unwrap())
        .collect();
    let crm_kinds: Vec<String> = crm_records(&crm_got)
        .iter()
        .map(|(_, r)| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"contact"), "{kinds:?}");
    assert_eq!(
        activities(&posted),
        [("wamid.ANA1".to_string(), crm_contact.clone())]
    );
    let mut ids: Vec<&String> = posted.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), posted.len(), "nothing posted twice: {posted:?}");
    for kind in &kinds {
        assert!(crm_kinds.iter().any(|k| k == kind), "{kind} not the CRM's");
    }
    let activity = posted
        .iter()
        .find(|(_, r)| r["kind"] == "activity")
        .unwrap();
    assert_eq!(activity.1["business_number"]["label"], "ventas-mx");
    // Still logged for replay, once.
    let logged = engine.deliveries().logged("warehouse", 0, i64::MAX).await;
    assert_eq!(logged.unwrap().len(), 1);

    // Luis's event reaches the destination before the CRM's crm-sync resolved him: it waits
    // (left on the queue), then goes out with the contact id the CRM's crm-sync gave him.
    s.post(&message("wamid.LUIS1", LUIS)).await;
    let event = s.batch(&s.bot.url).await;
    let receipt = event.records[0].receipt_handle.clone().unwrap();
    let answer = relay::handle(&app, event, None).await;
    assert_eq!(answer.batch_item_failures.len(), 1);
    assert_eq!(activities(&records(&got)).len(), 1, "nothing posted yet");
    crm_takes_all().await;
    let luis = activities(&crm_records(&crm_got))
        .into_iter()
        .find(|(m, _)| m == "wamid.LUIS1")
        .unwrap();
    s.visible_now(&s.bot.url, receipt).await;
    let event = s.batch(&s.bot.url).await;
    assert!(relay::handle(&app, event.clone(), None)
        .await
        .batch_item_failures
        .is_empty());
    s.finish(&s.bot.url, &event).await;
    assert_eq!(activities(&records(&got))[1], luis);
    assert_ne!(luis.1, crm_contact);
}

#[tokio::test]
async fn a_records_destinations_bad_mapping_settings_name_their_variable() {
    let aws = require_aws!();
    // A table without registry items: the mapping is crm-sync's one-CRM mapping.
    let table = create_table(&aws.dynamo, &unique_name("records-settings")).await;
    let engine = aws.engine(&table);
    let destination = relay::Destination {
        name: "warehouse".into(),
        kind: DestinationKind::Records,
        url: "http://127.0.0.1:9/in".into(),
        secret_key: "WAREHOUSE_SECRET".into(),
        queue_url: "http://q/warehouse".into(),
        dlq_url: "http://q/warehouse-dlq".into(),
    };
    let refused = |pairs: &'static [(&'static str, &'static str)]| {
        let engine = engine.clone();
        let destination = destination.clone();
        async move {
            let lookup = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            match relay::records(&engine, &destination, lookup).await {
                Ok(_) => panic!("accepted {pairs:?}"),
                Err(e) => e,
            }
        }
    };
    let e = refused(&[("WABRIDGE_MAPPING", "/nonexistent/mapping.toml")]).await;
    assert!(
        e.contains("destination warehouse") && e.contains("WABRIDGE_MAPPING"),
        "{e}"
    );
    let e = refused(&[("CRM_KIND", "notacrm")]).await;
    assert!(e.contains("CRM_KIND notacrm"), "{e}");
    // Without either: the example mapping of the default CRM kind.
    let ok = relay::records(&engine, &destination, |_| None)
        .await
        .unwrap();
    assert!(ok.numbers.is_none());
}
