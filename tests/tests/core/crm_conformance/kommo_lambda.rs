//! Kommo with OAuth behind crm-sync's Lambda handler, with the AWS engine over moto: the
//! rotated refresh tokens live in the stack's table (`oauth#<connection>`), built from settings
//! the way the Lambda's cold start builds them. Two Lambda instances share them: one refresh,
//! then none for the second instance; an access token refused early is refreshed once across
//! both; a refused refresh token makes the event wait (a batch item failure), not a dead
//! letter; no spent refresh token is ever sent.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use wabridge_aws::sqs::SqsQueue;
use wabridge_core::queue::Queue;
use wabridge_tests::{create_queues, create_table, require_aws, unique_name};

use super::kommo_fake::{serve, KommoFake};
use super::kommo_fake_oauth::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, REFRESH_TOKEN};
use super::zoho_lambda::{cold_start, invoke, text};

#[tokio::test]
async fn kommo_oauth_through_the_crm_sync_lambda_over_moto() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("kommo")).await;
    let queues = create_queues(&aws.sqs, &unique_name("kommo-events"), 5).await;
    let queue = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        queues.url.clone(),
        queues.dlq_url.clone(),
    ));
    let fake = Arc::new(KommoFake::with_latency(Duration::from_millis(5)));
    let base = format!("http://{}", serve(fake.clone()).await);
    let settings: HashMap<String, String> = [
        ("CRM_KIND", "kommo"),
        ("KOMMO_API_URL", base.as_str()),
        ("KOMMO_CLIENT_ID", CLIENT_ID),
        ("KOMMO_CLIENT_SECRET", CLIENT_SECRET),
        ("KOMMO_REFRESH_TOKEN", REFRESH_TOKEN),
        ("KOMMO_REDIRECT_URI", REDIRECT_URI),
        ("KOMMO_RATE_PER_SECOND", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let refreshes = || fake.oauth.refreshes.load(Ordering::SeqCst);

    let a = cold_start(&aws, &table, queue.clone(), &settings);
    let bodies = [text("wamid.K1", "Hola"), text("wamid.K2", "Gracias")];
    let response = invoke(&aws, &queue, &queues.url, &a, &bodies).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(refreshes(), 1);

    // Another cold start: the tokens stored in DynamoDB serve it, the refresh token unspent.
    let b = cold_start(&aws, &table, queue.clone(), &settings);
    let response = invoke(
        &aws,
        &queue,
        &queues.url,
        &b,
        &[text("wamid.K3", "¿Precio?")],
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(refreshes(), 1, "no refresh: the token came from the table");

    // Kommo stops taking the access token both instances hold: A refreshes after its 401, B's
    // 401 finds A's new token in the table.
    fake.oauth.expire_tokens();
    for (app, wamid) in [(&a, "wamid.K4"), (&b, "wamid.K5")] {
        let response = invoke(&aws, &queue, &queues.url, app, &[text(wamid, "x")]).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    assert_eq!(refreshes(), 2, "one refresh across both instances");
    assert_eq!(fake.notes.lock().unwrap().len(), 5, "each message once");
    let spent = fake.oauth.spent_sent.lock().unwrap().clone();
    assert!(spent.is_empty(), "{spent:?}");

    // The grant is revoked: the event waits (retried by SQS), nothing is dead-lettered.
    fake.oauth.revoke();
    fake.oauth.expire_tokens();
    let response = invoke(&aws, &queue, &queues.url, &b, &[text("wamid.K6", "¿Hola?")]).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    assert!(queue.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(fake.notes.lock().unwrap().len(), 5);
    let problems = fake.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:?}");
}
