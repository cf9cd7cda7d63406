//! Outbound media on the AWS engine, against moto (DynamoDB, SQS, S3 through the real SDK) and
//! Prism on Meta's OpenAPI spec behind the recording front of `media_out`:
//!
//! - ingest's `POST /sends` (its Function URL handler, built with `MEDIA_BUCKET`) takes a
//!   template with a PDF of the media bucket as its document header, checked against the
//!   upload's details in the table; the sender Lambda's handler (wired as its cold start wires
//!   it, [`sender::media_uploader`]) uploads the file from S3 to Meta, then sends the message by
//!   the id Meta answered; a second send of the file goes by the same id without a second
//!   upload; an object the bucket does not hold ends `failed` with `media_object_not_found`
//!   (reported to the events queue), and nothing reaches Meta for it;
//! - the DynamoDB stores: the items' TTLs, expired items read as absent, ids per number, and
//!   both families listed in erasure's `FAMILIES`.
//!
//! What would break them: a sender without the uploader (the send fails `media_unavailable`), a
//! lost reuse cache (a second upload), a message by link or with another id, a missing file
//! retried or sent, an item without its TTL or a family erasure does not list.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wabridge_aws::dynamo::erasure::FAMILIES;
use wabridge_aws::dynamo::media_uploads::{DynamoMediaUploads, META_ID_FAMILY, UPLOAD_FAMILY};
use wabridge_aws::dynamo::{EXPIRES_AT, PK};
use wabridge_aws::s3_media::S3MediaStore;
use wabridge_core::clock::now_ms;
use wabridge_core::ingest::IngestConfig;
use wabridge_core::media::store::MediaStore;
use wabridge_core::media::upload::{MediaCatalog, ObjectInfo};
use wabridge_core::media::Sha256Digest;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::media::{CachedUpload, UploadCache, REUSE_UPLOADS_FOR};
use wabridge_core::sends::store::{SendState, SendStore};
use wabridge_graph::GraphClient;
use wabridge_tests::prism::Prism;
use wabridge_tests::stores::dynamo_items;
use wabridge_tests::{create_bucket, create_queues, create_table, require_aws, unique_name};

use crate::infra_e2e::lambda_service::{call_ingest, lambda_request};
use crate::media_out::{check_upload, front, pdf};
use crate::sends_lambda::receive;

const API_KEY: &str = "sends-media-lambda-key-5521";
const PHONE_NUMBER_ID: &str = "106540352242922";

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Ingest's API as its cold start builds it, with a sends queue and the media bucket.
fn ingest_api(
    aws: &wabridge_tests::Aws,
    table: &str,
    sends_url: &str,
    bucket: &str,
) -> wabridge_core::api::Api {
    let keys = json!([{"id": "crm", "scopes": ["sends"], "key": API_KEY}]).to_string();
    let lookup = |name: &str| match name {
        "WABRIDGE_API_KEYS" => Some(keys.clone()),
        _ => None,
    };
    ingest::build_api(
        &aws.config,
        ingest::Settings {
            table: table.to_string(),
            events_queue_url: "http://unused.invalid/events".into(),
            ingest: IngestConfig::from_lookup(lookup).unwrap(),
            sends_queue_url: Some(sends_url.to_string()),
            api_keys: Arc::new(wabridge_core::auth::ApiKeys::from_lookup(lookup).unwrap()),
            claim_check_bucket: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            content_retention: wabridge_tests::CONTENT_RETENTION,
            template_languages: Default::default(),
            media_bucket: Some(bucket.to_string()),
            media_links: None,
            catalogues: Default::default(),
            conversation_idle_ms: 24 * 3_600_000,
            consent_scope: Default::default(),
        },
    )
}

async fn post_send(api: &wabridge_core::api::Api, body: Value) -> (u16, Value) {
    let req = lambda_request(
        "POST",
        "/sends",
        &[
            ("authorization", &format!("Bearer {API_KEY}")),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    let (status, text) = call_ingest(api, req).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn factura(to: &str, object: &str) -> Value {
    json!({"to": to, "template": "factura_emitida", "language": "es_MX",
           "category": "UTILITY", "parameters": ["1042"],
           "header": {"type": "document", "object": object}})
}

/// Stores `bytes` in the bucket under their content address, as the media store writes.
async fn store_file(store: &S3MediaStore, bytes: &[u8]) -> Sha256Digest {
    let mut pending = store.begin().await.unwrap();
    pending.write(bytes).await.unwrap();
    let digest = Sha256Digest::of(bytes);
    pending.commit(&digest.object_key()).await.unwrap();
    digest
}

#[tokio::test]
async fn the_sender_lambda_uploads_a_file_from_s3_once_and_sends_it_by_id() {
    let aws = require_aws!();
    let Some(prism) = Prism::start() else { return };
    let front = front(prism.url()).await;
    let table = create_table(&aws.dynamo, &unique_name("media-out-l")).await;
    let sends_q = create_queues(&aws.sqs, &unique_name("media-out-l-sends"), 5).await;
    let events_q = create_queues(&aws.sqs, &unique_name("media-out-l-events"), 5).await;
    let bucket = create_bucket(&aws.s3, &unique_name("media-out-l")).await;

    // The invoice in the bucket, and what its upload said in the table.
    let invoice = pdf(200 * 1024);
    let store = S3MediaStore::new(&aws.config, &bucket);
    let digest = store_file(&store, &invoice).await;
    let object = sha256_hex(&invoice);
    let engine = aws.engine(&table);
    engine
        .media_uploads()
        .put(&ObjectInfo {
            sha256: digest,
            size: invoice.len() as u64,
            mime_type: "application/pdf".into(),
            filename: Some("factura-1042.pdf".into()),
            created_at: now_ms(),
        })
        .await
        .unwrap();

    let graph_config = GraphConfig {
        base_url: front.url.clone(),
        version: "v23.0".into(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        access_token: "EAAGtestToken123".into(),
        timeout: Duration::from_secs(10),
    };
    let uploader = sender::media_uploader(&aws.config, &engine, &bucket, graph_config.clone());
    let app = sender::build_with_media(
        engine.clone(),
        sender::Names {
            queue_url: sends_q.url.clone(),
            dlq_url: sends_q.dlq_url.clone(),
            events_url: events_q.url.clone(),
        },
        GraphClient::new(graph_config),
        wabridge_core::sends::ratelimit::RateLimiter::for_instances(80.0, 1),
        wabridge_core::retry::RetryPolicy::SENDS,
        Some(Arc::new(uploader)),
    );
    let api = ingest_api(&aws, &table, &sends_q.url, &bucket);
    let sends = wabridge_aws::dynamo::sends::DynamoSends::new(aws.dynamo.clone(), table.clone());

    // First send: uploaded, then sent by the id; the upload's file name is the document's.
    let (status, v) = post_send(&api, factura("+525512340101", &object)).await;
    assert_eq!(status, 202, "{v}");
    let first = v["id"].as_str().unwrap().to_string();
    let response = sender::handle(&app, receive(&aws, &sends_q.url, 1).await, None).await;
    assert!(response.batch_item_failures.is_empty());
    let sent = sends.get(&first).await.unwrap().unwrap();
    assert_eq!(sent.state, SendState::Sent, "{sent:?}");
    let uploads = front.seen("/media");
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    check_upload(&uploads[0], "application/pdf", &invoice);
    let media_id = uploads[0].answer["id"].as_str().unwrap().to_string();
    let messages = front.seen("/messages");
    assert_eq!(messages.len(), 1);
    let message: Value = serde_json::from_slice(&messages[0].body).unwrap();
    assert_eq!(
        messages[0].status, 200,
        "Prism refused {message}: {}",
        messages[0].answer
    );
    assert_eq!(
        message["template"]["components"][0],
        json!({"type": "header", "parameters": [{"type": "document",
            "document": {"id": media_id, "filename": "factura-1042.pdf"}}]})
    );

    // Second send of the invoice: the same id, no second upload.
    let (status, v) = post_send(&api, factura("+525512340102", &object)).await;
    assert_eq!(status, 202, "{v}");
    let second = v["id"].as_str().unwrap().to_string();
    let response = sender::handle(&app, receive(&aws, &sends_q.url, 1).await, None).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        sends.get(&second).await.unwrap().unwrap().state,
        SendState::Sent
    );
    assert_eq!(front.seen("/media").len(), 1, "no second upload");
    let messages = front.seen("/messages");
    assert_eq!(messages.len(), 2);
    let message: Value = serde_json::from_slice(&messages[1].body).unwrap();
    assert_eq!(
        message["template"]["components"][0]["parameters"][0]["document"]["id"],
        media_id.as_str()
    );

    // An object the bucket does not hold. Without a type and unknown to the table: refused at
    // POST /sends. With its type: accepted (ingest does not call S3), failed by the sender.
    let unknown = sha256_hex(b"never stored");
    let (status, v) = post_send(&api, factura("+525512340103", &unknown)).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (422, &json!("media_type_unknown")),
        "{v}"
    );
    let mut with_type = factura("+525512340103", &unknown);
    with_type["header"]["mime_type"] = json!("application/pdf");
    let (status, v) = post_send(&api, with_type).await;
    assert_eq!(status, 202, "{v}");
    let missing = v["id"].as_str().unwrap().to_string();
    let response = sender::handle(&app, receive(&aws, &sends_q.url, 1).await, None).await;
    assert!(response.batch_item_failures.is_empty(), "not retried");
    let failed = sends.get(&missing).await.unwrap().unwrap();
    assert_eq!(failed.state, SendState::Failed, "{failed:?}");
    assert_eq!(failed.error.unwrap().code, "media_object_not_found");
    assert_eq!(front.seen("/media").len(), 1, "nothing uploaded for it");
    assert_eq!(front.seen("/messages").len(), 2, "nothing sent for it");
    let reported = receive(&aws, &events_q.url, 1).await;
    let body: Value = serde_json::from_str(reported.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["key"], format!("send:{missing}:failed"));
    assert_eq!(body["item"]["error"]["code"], "media_object_not_found");

    // The id is remembered per (file, number) until its reuse ends.
    let items = dynamo_items(&aws.dynamo, &table).await;
    let cached: Vec<_> = items
        .iter()
        .filter(|i| i[PK].as_s().unwrap() == &format!("{META_ID_FAMILY}#{object}"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(cached[0]["sk"].as_s().unwrap(), PHONE_NUMBER_ID);
    assert_eq!(cached[0]["media_id"].as_s().unwrap(), &media_id);
    let ttl: i64 = cached[0][EXPIRES_AT].as_n().unwrap().parse().unwrap();
    let reuse_end = wabridge_core::clock::now_secs() + REUSE_UPLOADS_FOR.as_secs() as i64;
    assert!(
        (reuse_end - 120..=reuse_end + 1).contains(&ttl),
        "{ttl} vs {reuse_end}"
    );
}

#[tokio::test]
async fn dynamo_media_uploads_expire_and_erasure_lists_them() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("media-uploads")).await;
    let retention = Duration::from_secs(30 * 86_400);
    let store =
        DynamoMediaUploads::new(aws.dynamo.clone(), table.clone()).with_retention(retention);
    let now = now_ms();

    // Uploads' details: kept for the retention from the upload, by content; the later upload wins.
    let info = ObjectInfo {
        sha256: Sha256Digest::of(b"%PDF-1.4 factura"),
        size: 16,
        mime_type: "application/pdf".into(),
        filename: Some("factura-ana.pdf".into()),
        created_at: now,
    };
    store.put(&info).await.unwrap();
    assert_eq!(store.get(&info.sha256).await.unwrap(), Some(info.clone()));
    let renamed = ObjectInfo {
        filename: None,
        ..info.clone()
    };
    store.put(&renamed).await.unwrap();
    assert_eq!(store.get(&info.sha256).await.unwrap(), Some(renamed));
    // An upload older than the retention reads as gone before DynamoDB's TTL sweeps it.
    let old = ObjectInfo {
        sha256: Sha256Digest::of(b"old"),
        created_at: now - retention.as_millis() as i64 - 1_000,
        ..info.clone()
    };
    store.put(&old).await.unwrap();
    assert_eq!(store.get(&old.sha256).await.unwrap(), None);
    assert_eq!(store.get(&Sha256Digest::of(b"none")).await.unwrap(), None);

    // Meta's ids: per number, until their end.
    let hex = info.sha256.hex();
    let upload = CachedUpload {
        object: hex.clone(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        media_id: "1001".into(),
        uploaded_at: now,
        expires_at: now + 7 * 86_400_000,
    };
    store.remember(&upload).await.unwrap();
    let id = |at: i64, number: &'static str| {
        let (store, hex) = (store.clone(), hex.clone());
        async move { store.media_id(&hex, number, at).await.unwrap() }
    };
    assert_eq!(
        id(now + 1_000, PHONE_NUMBER_ID).await.as_deref(),
        Some("1001")
    );
    assert_eq!(id(now, "999").await, None, "another number has its own ids");
    assert_eq!(
        id(upload.expires_at, PHONE_NUMBER_ID).await,
        None,
        "expired"
    );

    // Every item carries its TTL; both families say how erasure reaches them.
    let items = dynamo_items(&aws.dynamo, &table).await;
    assert_eq!(items.len(), 3, "{items:?}");
    for item in &items {
        let pk = item[PK].as_s().unwrap();
        let ttl: i64 = item[EXPIRES_AT].as_n().unwrap().parse().unwrap();
        let family = pk.split('#').next().unwrap();
        let want = if family == UPLOAD_FAMILY {
            let created: i64 = item["created_at"].as_n().unwrap().parse().unwrap();
            (created + retention.as_millis() as i64 + 999) / 1000
        } else {
            assert_eq!(family, META_ID_FAMILY);
            (upload.expires_at + 999) / 1000
        };
        assert_eq!(ttl, want, "{pk}");
        assert!(
            FAMILIES.iter().any(|(f, _)| *f == family),
            "{family} is not in erasure's FAMILIES"
        );
    }
}
