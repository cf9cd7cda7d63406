//! A number added to a running AWS stack reaches the destinations that filter on it (issue 21),
//! over moto's DynamoDB, SNS and SQS: ingest's instance was built when the table's registry had
//! only `ventas-mx`; `soporte-co` is added (as `numbers add --table` writes it); CO's first
//! webhook is published unlabelled (it reaches the CRM's queue, not the bot's, which filters on
//! `soporte-co`) and makes the instance read the registry again; CO's next webhook carries its
//! label and reaches the bot.

use std::sync::Arc;
use std::time::Duration;

use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_core::http::{Method, Request};
use wabridge_core::signature::{self, AppSecret};
use wabridge_tests::require_aws;

use crate::claim_check_s3::APP_SECRET;
use crate::destinations_aws::{message, queued_keys, topology, CO, REGISTRY, WABA_CO};

fn webhook(body: &serde_json::Value) -> Request {
    let payload = body.to_string().into_bytes();
    let secret = AppSecret::new(APP_SECRET.as_bytes().to_vec()).unwrap();
    Request {
        method: Method::Post,
        path: "/webhook".into(),
        query: None,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                "x-hub-signature-256".into(),
                signature::sign(&secret, &payload),
            ),
        ],
        body: payload,
    }
}

#[tokio::test]
async fn a_number_added_later_reaches_the_destinations_that_filter_on_it() {
    let aws = require_aws!();
    let (table, events, bot, topic_arn) = topology(&aws, "soporte-co").await;

    // The registry when ingest's instance starts: MX only (REGISTRY's first entry).
    let registry = DynamoNumbers::new(aws.dynamo.clone(), &table);
    let mx_only = &REGISTRY[..REGISTRY.rfind("[[number]]").unwrap()];
    let put = |text: &str| {
        let split = wabridge_core::numbers::items::split("numbers.toml", text.as_bytes()).unwrap();
        let registry = registry.clone();
        async move { registry.put(None, &split.entries).await.unwrap() }
    };
    put(mx_only).await;
    let numbers = registry.load().await.unwrap().map(Arc::new);
    let settings = ingest::Settings::from_lookup(|name| match name {
        "WABRIDGE_TABLE" => Some(table.clone()),
        "EVENTS_QUEUE_URL" => Some(events.url.clone()),
        "WHATSAPP_APP_SECRET" => Some(APP_SECRET.to_string()),
        _ => None,
    })
    .unwrap();
    let api = ingest::ReloadingApi::with_topic(
        &aws.config,
        settings,
        registry.clone(),
        numbers,
        Duration::ZERO,
        Some(topic_arn),
    );

    // `numbers add --table` of CO while the instance runs.
    put(REGISTRY).await;
    for wamid in ["wamid.CO1", "wamid.CO2"] {
        let response = api.handle(webhook(&message(WABA_CO, CO, wamid))).await;
        assert_eq!(response.status, 200, "{wamid}");
    }

    let crm: Vec<String> = queued_keys(&aws, &events.url)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(crm.len(), 2, "the CRM's queue gets both: {crm:?}");
    let bot = queued_keys(&aws, &bot.url).await;
    assert_eq!(bot.len(), 1, "only the webhook after the re-read: {bot:?}");
    assert!(bot[0].0.contains("wamid.CO2"), "{bot:?}");
    assert!(
        bot[0]
            .1
            .contains(&("number".to_string(), "soporte-co".to_string())),
        "{bot:?}"
    );
}
