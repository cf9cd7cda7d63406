//! Logs proven clean on AWS: ingest's and crm-sync's Lambda handlers over moto, their logs
//! captured through the Lambdas' own subscriber at `debug`, fed every sample webhook and a CRM
//! that refuses with bodies quoting the phone number, fails and hangs. No line may carry a
//! person's data (numbers, BSUIDs, names, texts) or a secret (app secret, CRM secret, the CRM
//! webhook URL's token).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::{queue_depth, require_aws};

use crate::claim_check_s3::{handle, post_webhook, setup, APP_SECRET};
use crate::local_gateway::clean_logs::{
    crm, leaks, personal_data, samples, CRM_SECRET, HOOK_TOKEN,
};

/// One thread runs the whole test, so the thread's subscriber sees every line.
#[tokio::test(flavor = "current_thread")]
async fn lambda_logs_at_debug_carry_no_personal_data_and_no_secret() {
    let buffer = wabridge_tests::LogBuffer::default();
    let subscriber = wabridge_core::telemetry::lambda_subscriber(buffer.clone(), Some("debug"));
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = setup(require_aws!()).await;
    let (crm_url, calls) = crm().await;
    let client = WebhookCrm::new(&crm_url, CRM_SECRET, Duration::from_secs(2)).unwrap();
    let app = s.crm_sync_with(Arc::new(client));
    let api = s.ingest(Some(&s.bucket));

    let mut people = BTreeSet::new();
    for (file, body) in samples() {
        personal_data(&serde_json::from_slice(&body).unwrap(), &mut people);
        let (status, answer) = post_webhook(&api, &body).await;
        assert_eq!(status, 200, "{}: {answer}", file.display());
    }

    // The Lambda service's part: batches to crm-sync for 30 s, or until the queue is empty
    // (the refused events dead-letter at once; the 503s and timeouts wait out their backoff).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let records = s.records().await;
        if !records.is_empty() {
            handle(&app, records).await;
        }
        if queue_depth(&s.aws.sqs, &s.queues.url).await == (0, 0) {
            break;
        }
    }
    assert!(*calls.lock().unwrap() > 10, "the CRM was called");
    assert!(
        !app.queue.dead_letters(100).await.unwrap().is_empty(),
        "some events were refused"
    );

    let text = buffer.text();
    assert!(text.contains("\"DEBUG\""), "captured at debug");
    let found = leaks(
        text.lines().map(|l| ("log", l)),
        &people,
        &[APP_SECRET, CRM_SECRET, HOOK_TOKEN],
    );
    assert!(
        found.is_empty(),
        "{} leaks:\n{}",
        found.len(),
        found.join("\n")
    );
}
