//! The flow through the stack: a signed webhook in, through the stack's queues, to the CRM.

use std::time::{Duration, Instant};

use serde_json::Value;
use wabridge_aws::sqs::SqsQueue;
use wabridge_core::config;
use wabridge_core::queue::Queue;
use wabridge_tests::{require_aws, workspace_root};

use super::crm_receiver::CrmReceiver;
use super::lambda_service::{call_ingest, lambda_poll, lambda_request};
use super::*;

/// The whole flow against the stack, with the handlers wired from each function's environment
/// as the stack deployed it and the secret as an operator fills it in:
/// a signed webhook in (ingest's Lambda handler: Api over StagedInbox(DynamoDedupe, SqsQueue)),
/// one event on the events queue (a retried POST adds none), crm-sync's Lambda handler (SQS
/// batch in, partial batch failures out) lands the contact and activity at the `webhook` CRM
/// (Standard Webhooks signatures), a redelivery changes nothing, and an event the CRM keeps
/// refusing with 503 is dead-lettered by SQS after maxReceiveCount receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_flows_through_the_stack_to_the_crm() {
    use std::sync::Arc;
    use wabridge_aws::dynamo::identity::DynamoIdentityStore;
    use wabridge_aws::dynamo::ledger::DynamoLedger;
    use wabridge_aws::secrets::Secrets;
    use wabridge_core::mapping::Mapping;
    use wabridge_core::signature::{self, AppSecret};
    use wabridge_core::sync::CrmSync;
    use wabridge_crm::webhook::{secret_key, sign};

    let aws = require_aws!();
    let endpoint = aws.config.endpoint_url().unwrap_or_default().to_string();
    let stack = stack(&endpoint);
    let _queue = EVENTS_QUEUE.lock().await;
    let started = Instant::now();
    let env_of = |function: &str| stack.env_of(function);

    // The operator fills in the secret (put-secret-value, keeping the generated verify token);
    // a cold start reads it once.
    let arn = stack.output("SecretArn").to_string();
    let current = aws
        .secrets
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    let mut value: serde_json::Map<String, Value> =
        serde_json::from_str(current.secret_string().unwrap()).unwrap();
    let app_secret = format!("app-{}", uuid::Uuid::new_v4().simple());
    let crm_secret = format!("crm-{}", uuid::Uuid::new_v4().simple());
    value.insert(
        config::WHATSAPP_APP_SECRET.into(),
        app_secret.clone().into(),
    );
    value.insert(config::CRM_WEBHOOK_SECRET.into(), crm_secret.clone().into());
    aws.secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(Value::Object(value).to_string())
        .send()
        .await
        .unwrap();

    // ingest, wired like its cold start from its deployed environment + the secret.
    let ingest_env = env_of("Ingest");
    assert_eq!(ingest_env[config::WABRIDGE_SECRETS_ARN], arn);
    let secrets =
        Secrets::from_secrets_manager(&aws.secrets, &ingest_env[config::WABRIDGE_SECRETS_ARN])
            .await
            .expect("the secret loads");
    let lookup = |name: &str| -> Option<String> {
        if config::SECRET_NAMES.contains(&name) {
            secrets.get(name).map(str::to_string)
        } else {
            ingest_env.get(name).cloned()
        }
    };
    let settings = ingest::Settings::from_lookup(lookup).expect("ingest's settings from the stack");
    let api = ingest::build_api(&aws.config, settings);

    // Meta's verification handshake with the generated token.
    let token = secrets
        .get(config::WHATSAPP_VERIFY_TOKEN)
        .unwrap()
        .to_string();
    let (status, body) = call_ingest(
        &api,
        lambda_request(
            "GET",
            &format!("/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=31337"),
            &[],
            b"",
        ),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "31337"));

    // A signed webhook, unique to this run.
    let wamid = format!("wamid.E2E{}", uuid::Uuid::new_v4().simple());
    let payload = std::fs::read_to_string(workspace_root().join("events/webhooks/text_es_mx.json"))
        .expect("events/webhooks/text_es_mx.json")
        .replace("wamid.HBgNNjI4QjQ5RDk2RENERTk3QTQzMERENEY1", &wamid);
    assert!(payload.contains(&wamid));
    let secret = AppSecret::new(app_secret.as_bytes().to_vec()).unwrap();
    let sig = signature::sign(&secret, payload.as_bytes());
    let post = |sig: String| {
        lambda_request(
            "POST",
            "/webhook",
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", sig.as_str()),
            ],
            payload.as_bytes(),
        )
    };
    let (status, body) = call_ingest(&api, post("sha256=".to_string() + &"0".repeat(64))).await;
    assert_eq!(status, 401, "forged signature: {body}");
    let (status, body) = call_ingest(&api, post(sig.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call_ingest(&api, post(sig.clone())).await;
    assert_eq!(status, 200, "Meta's retry is acknowledged: {body}");
    eprintln!(
        "ingest answered in {} ms so far",
        started.elapsed().as_millis()
    );

    // crm-sync's Lambda handler, wired like its cold start from its deployed environment and
    // the secret; the operator pointed the CrmWebhookUrl parameter at the receiver (its
    // default is empty). This test then plays the Lambda service: poll, invoke, delete.
    let crm_env = env_of("CrmSync");
    assert_eq!(crm_env[config::CRM_KIND], "webhook");
    assert_eq!(crm_env[config::WABRIDGE_SECRETS_ARN], arn);
    let receiver = CrmReceiver::start().await;
    let crm_lookup = |name: &str| -> Option<String> {
        if name == config::CRM_WEBHOOK_URL {
            return Some(receiver.url.clone());
        }
        if config::SECRET_NAMES.contains(&name) {
            secrets.get(name).map(str::to_string)
        } else {
            crm_env.get(name).cloned().filter(|v| !v.is_empty())
        }
    };
    let mapping = Mapping::example(&crm_env[config::CRM_KIND]).unwrap();
    let crm = wabridge_crm::from_lookup(&mapping, None, None, crm_lookup)
        .expect("the webhook CRM from the stack");
    let table = crm_env[config::WABRIDGE_TABLE].clone();
    let events_url = crm_env[config::EVENTS_QUEUE_URL].clone();
    let events = Arc::new(SqsQueue::new(
        aws.sqs.clone(),
        events_url.clone(),
        crm_env[config::EVENTS_DLQ_URL].clone(),
    ));
    let app = crm_sync::App {
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
        handler: Arc::new(CrmSync::new(
            Arc::new(DynamoIdentityStore::new(aws.dynamo.clone(), table.clone())),
            Arc::new(DynamoLedger::new(aws.dynamo.clone(), table)),
            crm,
            Arc::new(mapping),
        )),
        queue: events.clone(),
    };

    let first = lambda_poll(&aws, &events_url, &wamid, &app)
        .await
        .expect("the event is on the queue");
    assert_eq!(first.receive_count, 1);
    assert!(!first.failed, "handled and deleted");
    assert!(
        lambda_poll(&aws, &events_url, &wamid, &app).await.is_none(),
        "one event per message: the retried POST enqueued nothing"
    );

    let calls = receiver.calls();
    let bodies: Vec<Value> = calls
        .iter()
        .map(|c| serde_json::from_str::<Value>(&c.body).unwrap())
        .collect();
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(kinds.contains(&"contact"), "{kinds:?}");
    assert!(kinds.contains(&"activity"), "{kinds:?}");
    let key = secret_key(&crm_secret).unwrap();
    for call in &calls {
        let id = &call.headers["webhook-id"];
        let ts: i64 = call.headers["webhook-timestamp"].parse().unwrap();
        assert_eq!(
            call.headers["webhook-signature"],
            sign(&key, id, ts, &call.body)
        );
    }
    let activity = bodies.iter().find(|v| v["kind"] == "activity").unwrap();
    assert!(activity.to_string().contains(&wamid), "{activity}");

    // The same event delivered again (SQS delivers at least once; ingest may enqueue twice after
    // a crash between enqueue and dedupe mark) changes nothing at the CRM.
    aws.sqs
        .send_message()
        .queue_url(&events_url)
        .message_body(&first.body)
        .send()
        .await
        .unwrap();
    let again = lambda_poll(&aws, &events_url, &wamid, &app)
        .await
        .expect("redelivered");
    assert!(!again.failed);
    assert_eq!(
        receiver.calls().len(),
        calls.len(),
        "effects ledger: nothing twice"
    );
    eprintln!(
        "webhook -> queue -> CRM ({} records) in {} ms",
        calls.len(),
        started.elapsed().as_millis()
    );

    // An outage longer than the 5 receives that used to dead-letter: the CRM answers 503, the
    // handler reports the event as a batch item failure every time (the test makes it visible
    // at once rather than wait out the backoff and the visibility timeouts), and it stays on
    // the queue. When the CRM is back, it arrives once, and the DLQ never saw it.
    receiver.answer(503);
    let late_wamid = format!("wamid.OUTAGE{}", uuid::Uuid::new_v4().simple());
    let late = payload.replace(&wamid, &late_wamid);
    let (status, _) = call_ingest(
        &api,
        lambda_request(
            "POST",
            "/webhook",
            &[(
                "x-hub-signature-256",
                signature::sign(&secret, late.as_bytes()).as_str(),
            )],
            late.as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let visible_now = |receipt: String| {
        let (sqs, url) = (aws.sqs.clone(), events_url.clone());
        async move {
            sqs.change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    };
    let mut receives = 0;
    while receives < 8 {
        let polled = lambda_poll(&aws, &events_url, &late_wamid, &app)
            .await
            .expect("still on the queue during the outage");
        receives += 1;
        assert_eq!(polled.receive_count, receives);
        assert!(polled.failed, "reported as a batch item failure");
        visible_now(polled.receipt).await;
    }
    let calls_before = receiver.calls().len();
    receiver.answer(200);
    // The crm-sync instance's circuit is open by now: its next probe (within a few seconds)
    // finds the CRM back.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let polled = lambda_poll(&aws, &events_url, &late_wamid, &app)
            .await
            .expect("on the queue until delivered");
        receives += 1;
        if !polled.failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never delivered after the outage"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        visible_now(polled.receipt).await;
    }
    let delivered: Vec<_> = receiver.calls()[calls_before..]
        .iter()
        .filter(|c| c.body.contains(&late_wamid))
        .map(|c| c.headers["webhook-id"].clone())
        .collect();
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "each effect once: {delivered:?}"
    );
    assert!(
        delivered.iter().any(|id| id.ends_with("#activity")),
        "{delivered:?}"
    );
    let dead = events.dead_letters(10).await.unwrap();
    assert!(
        !dead.iter().any(|d| d.body.contains(&late_wamid)),
        "an outage within the horizon dead-letters nothing"
    );
    eprintln!(
        "flow through the moto stack done in {} ms ({receives} receives through the outage)",
        started.elapsed().as_millis()
    );
}
