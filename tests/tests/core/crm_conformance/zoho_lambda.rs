//! A new adapter through the crm-sync Lambda (issue 22): Zoho CRM behind crm-sync's Lambda
//! handler, with the AWS engine over moto (DynamoDB identity store, effects ledger and OAuth
//! token item; SQS queue and DLQ), built from settings the way the Lambda's cold start builds
//! it. Two Lambda instances share one OAuth token through DynamoDB; a redelivered event writes
//! nothing twice; a Zoho 400 ends in the SQS DLQ with Zoho's message; refused credentials
//! make the event wait (a batch item failure), not a dead letter.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::json;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::{OutgoingMessage, Queue};
use wabridge_core::sync::NoHooks;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

use super::zoho::CONCURRENCY;
use super::zoho_fake::{serve, ZohoFake, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

/// One cold start: the CRM from settings (`CRM_KIND`, its example mapping) with the stack's
/// token store.
pub(super) fn cold_start(
    aws: &wabridge_tests::Aws,
    table: &str,
    queue: Arc<SqsQueue>,
    settings: &HashMap<String, String>,
) -> crm_sync::App {
    let engine = aws.engine(table);
    let mapping = Mapping::example(&settings["CRM_KIND"]).unwrap();
    let lookup = |name: &str| settings.get(name).cloned();
    let crm = wabridge_crm::from_lookup_with(
        &mapping,
        None,
        None,
        Some(crm_sync::token_stores(&engine)),
        lookup,
    )
    .unwrap();
    let sync = engine.crm_sync(
        crm,
        mapping,
        Default::default(),
        Duration::from_secs(86_400),
        Arc::new(NoHooks),
    );
    crm_sync::App {
        handler: Arc::new(sync),
        queue,
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
    }
}

pub(super) fn text(wamid: &str, body: &str) -> String {
    json!({"v": 1, "key": format!("m:{wamid}"), "kind": "message", "field": "messages",
        "waba_id": "102290129340398", "phone_number_id": "106540352242922",
        "contact": {"profile": {"name": "Mariana Torres"}, "wa_id": "5215512345678"},
        "item": {"from": "5215512345678", "id": wamid, "timestamp": "1763780000", "type": "text",
                 "text": {"body": body}},
        "received_at": 1763780000123i64})
    .to_string()
}

/// Sends `bodies` to the queue and hands what the queue gives back to `app` as one batch.
pub(super) async fn invoke(
    aws: &wabridge_tests::Aws,
    queue: &SqsQueue,
    url: &str,
    app: &crm_sync::App,
    bodies: &[String],
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    for (i, body) in bodies.iter().enumerate() {
        let message = OutgoingMessage {
            id: format!("m{i}"),
            body: body.clone(),
            delay: None,
        };
        queue.send_batch(&[message]).await.unwrap();
    }
    let mut batch = SqsEvent::default();
    while batch.records.len() < bodies.len() {
        batch
            .records
            .extend(wabridge_tests::receive_lambda_records(&aws.sqs, url).await);
    }
    crm_sync::handle(app, batch, None).await
}

#[tokio::test]
async fn zoho_through_the_crm_sync_lambda_over_moto() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("zoho")).await;
    let queues = create_queues(&aws.sqs, &unique_name("zoho-events"), 5).await;
    let queue = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        queues.url.clone(),
        queues.dlq_url.clone(),
    ));
    let fake = Arc::new(ZohoFake::new(CONCURRENCY).with_latency(Duration::from_millis(5)));
    let base = format!("http://{}", serve(fake.clone()).await);
    let settings: HashMap<String, String> = [
        ("CRM_KIND", "zoho"),
        ("ZOHO_API_URL", base.as_str()),
        ("ZOHO_ACCOUNTS_URL", base.as_str()),
        ("ZOHO_CLIENT_ID", CLIENT_ID),
        ("ZOHO_CLIENT_SECRET", CLIENT_SECRET),
        ("ZOHO_REFRESH_TOKEN", REFRESH_TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    // Instance A: two messages, then Meta's redelivery of the first (another SQS message).
    let a = cold_start(&aws, &table, queue.clone(), &settings);
    let first = text("wamid.Z1", "Hola, ¿tienen envíos a Monterrey?");
    let bodies = [first.clone(), text("wamid.Z2", "Gracias")];
    let response = invoke(&aws, &queue, &queues.url, &a, &bodies).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let response = invoke(&aws, &queue, &queues.url, &a, &[first]).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let problems = fake.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(fake.contacts.lock().unwrap().len(), 1, "one contact");
    assert_eq!(fake.notes.lock().unwrap().len(), 2, "each message once");
    assert_eq!(fake.grants.lock().unwrap().len(), 1, "one token");

    // Instance B (another cold start): the token stored in DynamoDB serves it too.
    let b = cold_start(&aws, &table, queue.clone(), &settings);
    let response = invoke(
        &aws,
        &queue,
        &queues.url,
        &b,
        &[text("wamid.Z3", "¿Y el precio?")],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(fake.notes.lock().unwrap().len(), 3);
    assert_eq!(fake.contacts.lock().unwrap().len(), 1);
    assert_eq!(
        fake.grants.lock().unwrap().len(),
        1,
        "no refresh: the token came from the table"
    );

    // Zoho refuses a record (400): the event ends in the DLQ with Zoho's words.
    fake.fail_once.lock().unwrap().insert(
        "POST /crm/v8/Notes".into(),
        crate::crm_http::fake::Fault::BadRequest,
    );
    let response = invoke(
        &aws,
        &queue,
        &queues.url,
        &b,
        &[text("wamid.Z4", "RECHAZAR")],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("zoho") && reason.contains("INVALID_DATA"),
        "{reason}"
    );
    assert!(!reason.contains("5215512345678"), "masked: {reason}");

    // The credentials stop working and refreshing is refused: the event waits (retried by
    // SQS), nothing is dead-lettered, nothing is written.
    fake.expire_tokens();
    fake.refuse_refreshes.store(100, Ordering::SeqCst);
    let response = invoke(&aws, &queue, &queues.url, &b, &[text("wamid.Z5", "¿Hola?")]).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    assert_eq!(queue.dead_letters(10).await.unwrap().len(), 1);
    assert_eq!(fake.notes.lock().unwrap().len(), 3);
}
