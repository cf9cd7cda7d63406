//! A customer's photo through the whole AWS pipeline, over moto and the fake Meta of
//! `media_fetch`: the webhook through ingest's Function URL handler; crm-sync's Lambda handler,
//! wired with the media queue as its cold start wires it (`MEDIA_QUEUE_URL`), writes the activity
//! with the photo `pending` and enqueues the job; the media Lambda stores the file and reports
//! it; crm-sync turns the result into the CRM's `media` record with the link; the link opens the
//! photo through ingest and S3. The result redelivered lands no second record.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest;
use wabridge_core::mapping::Mapping;
use wabridge_core::queue::Queue;
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::{receive_lambda_records, require_aws};

use crate::claim_check_s3::{handle, post_webhook};
use crate::infra_e2e::crm_receiver::CrmReceiver;
use crate::media_fetch::File;
use crate::media_lambda::{get_media, setup, Setup, GATEWAY};

/// crm-sync's Lambda wiring over the setup's table and events queue, with the media queue.
fn crm_sync_app(s: &Setup, crm_url: &str) -> crm_sync::App {
    let engine = s.aws.engine(&s.table);
    let queue: Arc<dyn Queue> = Arc::new(engine.queue(&s.events.url, &s.events.dlq_url));
    let crm = WebhookCrm::new(crm_url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap();
    let sync = engine.crm_sync(
        Arc::new(crm),
        Mapping::example("webhook").unwrap(),
        Default::default(),
        Duration::from_secs(86_400),
        Arc::new(crm_sync::sending_hooks(&engine, queue.clone())),
    );
    let url =
        crm_sync::media_queue(|name| (name == "MEDIA_QUEUE_URL").then(|| s.media.url.clone()))
            .unwrap()
            .expect("media is on by default");
    let sync = crm_sync::with_media(&engine, sync, &url);
    crm_sync::App {
        handler: engine.claim_checked(Arc::new(sync)),
        queue,
        policy: wabridge_core::retry::RetryPolicy::EVENTS,
    }
}

/// Hands everything on `url` to crm-sync (`true`) or the media function (`false`) until the
/// queue is empty; returns how many messages went through.
async fn drain(s: &Setup, sync: &crm_sync::App, media: &media::App, crm: bool) -> usize {
    let url = if crm { &s.events.url } else { &s.media.url };
    let mut n = 0;
    loop {
        let records = receive_lambda_records(&s.aws.sqs, url).await;
        if records.is_empty() {
            return n;
        }
        n += records.len();
        let failures = if crm {
            handle(sync, records).await
        } else {
            let mut event = SqsEvent::default();
            event.records = records;
            media::handle(media, event, None)
                .await
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect()
        };
        assert!(failures.is_empty(), "failed: {failures:?}");
    }
}

fn records(crm: &CrmReceiver, kind: &str) -> Vec<Value> {
    crm.calls()
        .iter()
        .filter_map(|c| serde_json::from_str::<Value>(&c.body).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_photo_reaches_the_crm_and_opens_through_the_aws_pipeline() {
    let s = setup(require_aws!()).await;
    let crm = CrmReceiver::start().await;
    let sync = crm_sync_app(&s, &crm.url);
    let media = s.media_app();
    let api = s.ingest();

    let bytes: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain((0..80_000u32).map(|i| (i % 251) as u8))
        .collect();
    let digest = sha2::Sha256::digest(&bytes);
    s.meta.files.lock().unwrap().insert(
        "4001".into(),
        File {
            bytes: bytes.clone(),
            mime: "image/jpeg".into(),
            ..File::default()
        },
    );
    let webhook = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Lucía"}, "wa_id": "5215512345678"}],
            "messages": [{"from": "5215512345678", "id": "wamid.aws-photo", "timestamp": "1749416383",
                "type": "image", "image": {"id": "4001", "mime_type": "image/jpeg",
                    "sha256": base64::engine::general_purpose::STANDARD.encode(digest),
                    "caption": "Llegó roto"}}]
        }}]}]
    })
    .to_string();
    let (status, body) = post_webhook(&api, webhook.as_bytes()).await;
    assert_eq!(status, 200, "{body}");

    // crm-sync: the activity first, its photo pending, and the job on the media queue.
    assert_eq!(drain(&s, &sync, &media, true).await, 1);
    let activities = records(&crm, "activity");
    assert_eq!(activities.len(), 1, "{activities:?}");
    assert_eq!(
        activities[0]["media"][0]["state"], "pending",
        "{}",
        activities[0]
    );
    // The media function stores it and reports it; crm-sync makes the media record.
    let jobs = receive_lambda_records(&s.aws.sqs, &s.media.url).await;
    assert_eq!(jobs.len(), 1, "one job for one photo");
    let job_body = jobs[0].body.clone().unwrap();
    let mut event = SqsEvent::default();
    event.records = jobs;
    let response = media::handle(&media, event, None).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(drain(&s, &sync, &media, true).await, 1);
    let hex = hex::encode(digest);
    let stored = records(&crm, "media");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["state"], "stored", "{}", stored[0]);
    assert_eq!(stored[0]["media_id"], "4001");
    assert_eq!(stored[0]["stored"]["sha256"], hex.as_str());
    let link = stored[0]["stored"]["link"].as_str().unwrap();
    let path = link
        .strip_prefix(GATEWAY)
        .unwrap_or_else(|| panic!("{link}"));

    // The link opens the photo: ingest's 302, then S3's bytes.
    let (status, location) = get_media(&api, path).await;
    assert_eq!(status, 302);
    let served = wabridge_tests::gateway::http_client()
        .get(location.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert!(
        served.bytes().await.unwrap() == bytes,
        "served bytes differ"
    );

    // The media job redelivered (a Lambda timeout after the report, say): its result is
    // reported again and the CRM still has one media record; nothing is downloaded again.
    s.aws
        .sqs
        .send_message()
        .queue_url(&s.media.url)
        .message_body(job_body)
        .send()
        .await
        .unwrap();
    assert_eq!(drain(&s, &sync, &media, false).await, 1);
    assert_eq!(drain(&s, &sync, &media, true).await, 1);
    assert_eq!(records(&crm, "media").len(), 1, "the record landed once");
    assert_eq!(*s.meta.downloads.lock().unwrap(), 1, "downloaded once");
}
