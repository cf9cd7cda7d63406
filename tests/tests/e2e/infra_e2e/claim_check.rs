//! The claim-check through the stack: the bucket as deployed (KMS, no public access, expiry
//! with the events DLQ) and a 600 KiB event from ingest's Lambda handler to crm-sync's,
//! both wired from their deployed environments.

use std::sync::Arc;

use serde_json::json;
use wabridge_core::config;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Queue;
use wabridge_core::signature::{self, AppSecret};
use wabridge_tests::{object_keys, require_aws};

use super::crm_receiver::CrmReceiver;
use super::lambda_service::{call_ingest, lambda_poll, lambda_request};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_event_goes_through_the_stacks_claim_check_bucket() {
    let aws = require_aws!();
    let endpoint = aws.config.endpoint_url().unwrap_or_default().to_string();
    let stack = stack(&endpoint);
    let _queue = EVENTS_QUEUE.lock().await;
    let env_of = |function: &str| stack.env_of(function);
    let bucket = stack.output("ClaimCheckBucketName").to_string();
    let (ingest_env, crm_env) = (env_of("Ingest"), env_of("CrmSync"));
    assert_eq!(ingest_env[config::CLAIM_CHECK_BUCKET], bucket);
    assert_eq!(crm_env[config::CLAIM_CHECK_BUCKET], bucket);

    // The bucket as deployed.
    let s3 = &aws.s3;
    let block = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("a public access block")
        .public_access_block_configuration
        .expect("configured");
    assert_eq!(
        (
            block.block_public_acls(),
            block.block_public_policy(),
            block.ignore_public_acls(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let encryption = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("default encryption");
    let rule = &encryption
        .server_side_encryption_configuration()
        .expect("configured")
        .rules()[0];
    let default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(default.kms_master_key_id(), Some(stack.output("KeyArn")));
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("a lifecycle");
    let days = lifecycle.rules()[0].expiration().and_then(|e| e.days());
    let dlq = queue_attributes(&aws, stack.output("EventsDlqUrl")).await;
    let dlq_days = dlq["MessageRetentionPeriod"].parse::<i32>().unwrap() / 86_400;
    assert_eq!(days, Some(dlq_days), "objects expire with the dead letters");
    // The TLS-only bucket policy is checked in the template (infra_template/data.rs): moto
    // serves plain HTTP, so moto_deploy.py leaves it out.
    assert!(
        stack.raw["NotDeployed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["LogicalId"] == "ClaimCheckBucketPolicy")),
        "{}",
        stack.raw["NotDeployed"]
    );
    let queue = queue_attributes(&aws, stack.output("EventsQueueUrl")).await;
    assert_eq!(queue["MaximumMessageSize"], "262144");

    // ingest from its deployed environment (with an app secret of this test's own: the flow
    // test rewrites the stack's secret while it runs).
    let app_secret = format!("claim-{}", uuid::Uuid::new_v4().simple());
    let settings = ingest::Settings::from_lookup(|name| {
        if name == config::WHATSAPP_APP_SECRET {
            Some(app_secret.clone())
        } else if config::SECRET_NAMES.contains(&name) {
            None
        } else {
            ingest_env.get(name).cloned()
        }
    })
    .expect("ingest's settings from the stack");
    assert_eq!(
        settings.claim_check_bucket.as_deref(),
        Some(bucket.as_str())
    );
    let api = ingest::build_api(&aws.config, settings);
    let wamid = format!("wamid.LARGE{}", uuid::Uuid::new_v4().simple());
    let notes = "Pedido mayorista: 30 cajas de yerba, entrega en Rosario. ".repeat(600 * 1024 / 56);
    let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "107788990011223",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "541150001111", "phone_number_id": "112233445566778"},
            "contacts": [{"profile": {"name": "Lucía"}, "wa_id": "5493414567890"}],
            "messages": [{"from": "5493414567890", "id": wamid, "timestamp": "1763700061",
                "type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {
                    "name": "flow", "body": "Sent",
                    "response_json": json!({"flow_token": "pedido", "notas": notes}).to_string()}}}]}}]}]})
    .to_string();
    let secret = AppSecret::new(app_secret.as_bytes().to_vec()).unwrap();
    let sig = signature::sign(&secret, payload.as_bytes());
    let (status, body) = call_ingest(
        &api,
        lambda_request(
            "POST",
            "/webhook",
            &[("x-hub-signature-256", sig.as_str())],
            payload.as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // crm-sync from its deployed environment, reading the bucket back.
    let receiver = CrmReceiver::start().await;
    let crm_lookup = |name: &str| -> Option<String> {
        match name {
            config::CRM_WEBHOOK_URL => Some(receiver.url.clone()),
            config::CRM_WEBHOOK_SECRET => Some("whsec_c2VjcmV0".into()),
            _ => crm_env.get(name).cloned().filter(|v| !v.is_empty()),
        }
    };
    let mapping = Mapping::example(&crm_env[config::CRM_KIND]).unwrap();
    let crm = wabridge_crm::from_lookup(&mapping, None, None, crm_lookup).expect("the webhook CRM");
    let engine = aws
        .engine(&crm_env[config::WABRIDGE_TABLE])
        .with_claim_check(&aws.config, crm_lookup(config::CLAIM_CHECK_BUCKET));
    let events_url = crm_env[config::EVENTS_QUEUE_URL].clone();
    let queue: Arc<dyn Queue> =
        Arc::new(engine.queue(&events_url, &crm_env[config::EVENTS_DLQ_URL]));
    let sync = engine.crm_sync(
        crm,
        mapping,
        Default::default(),
        std::time::Duration::from_secs(86_400),
        Arc::new(crm_sync::sending_hooks(&engine, queue.clone())),
    );
    let app = crm_sync::App {
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
        handler: engine.claim_checked(Arc::new(sync)),
        queue,
    };
    let polled = lambda_poll(&aws, &events_url, "\"claim_check\"", &app)
        .await
        .expect("the pointer is on the queue");
    assert!(polled.body.len() < 1024, "a pointer, not the event");
    assert!(!polled.failed, "handled and deleted");
    let calls = receiver.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.body.contains(&wamid) && c.body.contains("\"activity\"")),
        "the activity reached the CRM"
    );
    assert!(object_keys(&aws.s3, &bucket, "events/").await.is_empty());
}
