//! The AWS side of inbound media (docs/media.md), over moto's SQS, S3 and DynamoDB and a local
//! server playing Meta's media endpoint and CDN (`media_fetch::start`):
//! - the media Lambda's handler takes a job off the media queue: the file lands in the bucket
//!   under its SHA-256, the table's media index names its sender, and a `media_result` event
//!   with the stored file and its link is on the events queue; a redelivery downloads nothing
//!   again, a media id Meta does not know reports `failed`;
//! - the link opens through ingest's `GET /media/{id}`: a 302 to a presigned S3 URL that serves
//!   the bytes with the type; a tampered, foreign or expired token is a 403;
//! - the DynamoDB media index and erasure: a person's files leave the bucket unless another
//!   person (whose item has not expired) sent the same file; an erasure without the bucket
//!   fails rather than leave files behind; every item family is in erasure's `FAMILIES`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use sha2::Digest;
use wabridge_aws::dynamo::erasure::FAMILIES;
use wabridge_aws::dynamo::{PK, SK};
use wabridge_aws::s3_media::S3MediaStore;
use wabridge_aws::s3_media_links::S3MediaLinks;
use wabridge_core::clock::now_ms;
use wabridge_core::consent::ContactRef;
use wabridge_core::erasure::ErasureError;
use wabridge_core::ingest::IngestConfig;
use wabridge_core::media::job::{MediaJob, MEDIA_JOB_VERSION};
use wabridge_core::media::links::LinkSigner;
use wabridge_core::media::store::{MediaIndex, MediaStore};
use wabridge_core::media::{MediaKind, Sha256Digest};
use wabridge_core::queue::Queue;
use wabridge_tests::stores::dynamo_items;
use wabridge_tests::{
    create_bucket, create_queues, create_table, object_keys, receive_lambda_records, require_aws,
    unique_name, Aws, TestQueues,
};

use crate::claim_check_s3::APP_SECRET;
use crate::infra_e2e::lambda_service::lambda_request;
use crate::media_fetch::{start, File, Meta, TOKEN};

pub(crate) const LINK_KEY: &str = "media-lambda-test-link-key-0123456789abcdef";
pub(crate) const GATEWAY: &str = "https://gw.example.com";
const PHONE_NUMBER_ID: &str = "106540352242922";

pub(crate) struct Setup {
    pub(crate) aws: Aws,
    pub(crate) table: String,
    pub(crate) bucket: String,
    pub(crate) media: TestQueues,
    pub(crate) events: TestQueues,
    pub(crate) meta: Meta,
    pub(crate) meta_url: String,
}

pub(crate) async fn setup(aws: Aws) -> Setup {
    let table = create_table(&aws.dynamo, &unique_name("media")).await;
    let bucket = create_bucket(&aws.s3, &unique_name("media")).await;
    let media = create_queues(&aws.sqs, &unique_name("media-jobs"), 5).await;
    let events = create_queues(&aws.sqs, &unique_name("media-events"), 5).await;
    let (meta, meta_url) = start().await;
    Setup {
        aws,
        table,
        bucket,
        media,
        events,
        meta,
        meta_url,
    }
}

impl Setup {
    /// The media function as its cold start builds it, from these settings.
    pub(crate) fn media_app(&self) -> media::App {
        let settings = media::Settings::from_lookup(|name| {
            Some(match name {
                "WABRIDGE_TABLE" => self.table.clone(),
                "MEDIA_QUEUE_URL" => self.media.url.clone(),
                "MEDIA_DLQ_URL" => self.media.dlq_url.clone(),
                "EVENTS_QUEUE_URL" => self.events.url.clone(),
                "MEDIA_BUCKET" => self.bucket.clone(),
                "WHATSAPP_API_URL" => self.meta_url.clone(),
                "WHATSAPP_ACCESS_TOKEN" => TOKEN.to_string(),
                "WABRIDGE_MEDIA_LINK_KEY" => LINK_KEY.to_string(),
                "WABRIDGE_PUBLIC_URL" => GATEWAY.to_string(),
                _ => return None,
            })
        })
        .unwrap();
        media::build(&self.aws.config, settings)
    }

    /// ingest as its cold start builds it with the media bucket and the link key (webhooks
    /// signed with `claim_check_s3::APP_SECRET`).
    pub(crate) fn ingest(&self) -> wabridge_core::api::Api {
        ingest::build_api(
            &self.aws.config,
            ingest::Settings {
                table: self.table.clone(),
                events_queue_url: self.events.url.clone(),
                ingest: IngestConfig::from_lookup(|name| {
                    (name == "WHATSAPP_APP_SECRET").then(|| APP_SECRET.to_string())
                })
                .unwrap(),
                sends_queue_url: None,
                api_keys: Default::default(),
                claim_check_bucket: None,
                audit_retention: wabridge_tests::AUDIT_RETENTION,
                content_retention: wabridge_tests::CONTENT_RETENTION,
                template_languages: Default::default(),
                media_bucket: Some(self.bucket.clone()),
                media_links: LinkSigner::new(LINK_KEY.as_bytes()),
                catalogues: Default::default(),
                conversation_idle_ms: 24 * 3_600_000,
                consent_scope: Default::default(),
            },
        )
    }

    /// Puts `jobs` on the media queue and hands them to the function as Lambda's event source
    /// would; returns the ids it reported as failures.
    pub(crate) async fn run(&self, app: &media::App, jobs: &[MediaJob]) -> Vec<String> {
        let producer = self.aws.engine(&self.table).producer(&self.media.url);
        let messages: Vec<_> = jobs.iter().map(MediaJob::to_message).collect();
        producer.send_batch(&messages).await.unwrap();
        let mut records = Vec::new();
        while records.len() < jobs.len() {
            let got = receive_lambda_records(&self.aws.sqs, &self.media.url).await;
            assert!(!got.is_empty(), "the jobs are on the media queue");
            records.extend(got);
        }
        let mut event = SqsEvent::default();
        event.records = records;
        media::handle(app, event, None)
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    /// The items of every event on the events queue (as crm-sync would receive them).
    async fn results(&self) -> Vec<Value> {
        let mut items = Vec::new();
        loop {
            let got = receive_lambda_records(&self.aws.sqs, &self.events.url).await;
            if got.is_empty() {
                return items;
            }
            for r in got {
                let event: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
                assert_eq!(event["field"], "media_result", "{event}");
                items.push(event["item"].clone());
            }
        }
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .aws
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }
}

fn photo(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

fn job(media_id: &str, contact: &str) -> MediaJob {
    MediaJob {
        v: MEDIA_JOB_VERSION,
        activity_event_id: format!("msg:wamid.{media_id}"),
        message_id: Some(format!("wamid.{media_id}")),
        contact: contact.to_string(),
        phone: None,
        phone_number_id: Some(PHONE_NUMBER_ID.to_string()),
        media_id: media_id.to_string(),
        kind: MediaKind::Image,
        mime_type: Some("image/jpeg".to_string()),
        sha256: None,
        filename: None,
        animated: false,
        url: None,
        received_at: now_ms(),
    }
}

/// `(status, Location)` of ingest's answer to `GET uri`.
pub(crate) async fn get_media(api: &wabridge_core::api::Api, uri: &str) -> (u16, Option<String>) {
    let resp = ingest::handle(api, lambda_request("GET", uri, &[], b""))
        .await
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (resp.status().as_u16(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_lambda_stores_a_file_and_ingest_links_to_it() {
    let s = setup(require_aws!()).await;
    let bytes = photo(7, 150_000);
    let hex = hex::encode(sha2::Sha256::digest(&bytes));
    s.meta.files.lock().unwrap().insert(
        "1001".into(),
        File {
            bytes: bytes.clone(),
            mime: "image/jpeg".into(),
            ..File::default()
        },
    );
    let contact = "phone:525512345678";
    let app = s.media_app();
    assert_eq!(
        s.run(&app, &[job("1001", contact), job("404404", contact)])
            .await,
        Vec::<String>::new(),
        "no job stays on the queue"
    );

    // The file is in the bucket under its SHA-256, byte for byte, and nothing else is.
    let key = format!("media/{hex}");
    assert_eq!(
        object_keys(&s.aws.s3, &s.bucket, "").await,
        vec![key.clone()]
    );
    assert!(
        s.object(&key).await.unwrap() == bytes,
        "the stored bytes differ"
    );
    // The index names who sent it, with the content retention as its TTL.
    let index = s
        .aws
        .dynamo
        .get_item()
        .table_name(&s.table)
        .key(PK, wabridge_aws::dynamo::s(format!("mediafile#{key}")))
        .key(SK, wabridge_aws::dynamo::s(contact))
        .send()
        .await
        .unwrap()
        .item
        .expect("the media index item");
    let expires: i64 = index["expires_at"].as_n().unwrap().parse().unwrap();
    let retention = wabridge_tests::CONTENT_RETENTION.as_secs() as i64;
    assert!(
        (expires - now_ms() / 1000 - retention).abs() < 60,
        "{expires}"
    );

    // One result per job: the photo stored (with its link), the unknown id gone at Meta.
    let mut results = s.results().await;
    results.sort_by_key(|r| r["media_id"].as_str().unwrap_or("").to_string());
    assert_eq!(results.len(), 2, "{results:?}");
    let (stored, gone) = (&results[0], &results[1]);
    assert_eq!(stored["state"], "stored", "{stored}");
    assert_eq!(stored["contact"], contact);
    assert_eq!(stored["stored"]["sha256"], hex.as_str());
    assert_eq!(stored["stored"]["size"], bytes.len() as u64);
    assert_eq!(stored["stored"]["mime_type"], "image/jpeg");
    assert_eq!(gone["state"], "failed", "{gone}");
    assert_eq!(gone["error"]["code"], "media_gone");
    let link = stored["stored"]["link"].as_str().unwrap().to_string();
    let path = link
        .strip_prefix(GATEWAY)
        .unwrap_or_else(|| panic!("{link}"));
    assert!(path.starts_with(&format!("/media/{hex}.jpg?t=")), "{link}");

    // A redelivered job downloads nothing again and reports the same result.
    assert_eq!(*s.meta.downloads.lock().unwrap(), 1);
    assert_eq!(
        s.run(&app, &[job("1001", contact)]).await,
        Vec::<String>::new()
    );
    assert_eq!(*s.meta.downloads.lock().unwrap(), 1);
    let again = s.results().await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["stored"]["sha256"], hex.as_str());

    // The link opens through ingest: a redirect to S3 that serves the bytes and the type.
    let api = s.ingest();
    let (status, location) = get_media(&api, path).await;
    assert_eq!(status, 302);
    let location = location.expect("a Location");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(location.contains("X-Amz-Expires=300"), "{location}");
    let http = wabridge_tests::gateway::http_client();
    let served = http.get(&location).send().await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert!(
        served.bytes().await.unwrap() == bytes,
        "served bytes differ"
    );

    // A tampered token, another file's token and an expired one are 403 whatever the file.
    let last = if path.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &path[..path.len() - 1]);
    let signer = LinkSigner::new(LINK_KEY.as_bytes()).unwrap();
    let other = Sha256Digest::of(b"another file").hex();
    let foreign = format!(
        "/media/{hex}.jpg?t={}",
        signer.token(&format!("{other}.jpg"), now_ms() / 1000 + 3600)
    );
    let expired = format!(
        "/media/{hex}.jpg?t={}",
        signer.token(&format!("{hex}.jpg"), now_ms() / 1000 - 10)
    );
    for uri in [tampered.as_str(), &foreign, &expired] {
        assert_eq!(get_media(&api, uri).await, (403, None), "{uri}");
    }
    // A well-signed link to a file not stored still redirects (presigning is local, checking
    // would cost a request on every open), and S3 serves nothing. Real S3 answers 404 to a role
    // with s3:ListBucket; moto answers a presigned GET of a missing key 403, whoever signed it
    // (the SDK's own presigned URL too).
    let missing = format!(
        "/media/{other}.jpg?t={}",
        signer.token(&format!("{other}.jpg"), now_ms() / 1000 + 3600)
    );
    let (status, location) = get_media(&api, &missing).await;
    assert_eq!(status, 302);
    let answer = http.get(location.unwrap()).send().await.unwrap();
    let status = answer.status().as_u16();
    assert!(matches!(status, 403 | 404), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_a_persons_files_unless_another_person_sent_them() {
    let s = setup(require_aws!()).await;
    let key_of = |phone: &str| {
        ContactRef::parse_phone(phone)
            .unwrap()
            .identity_key()
            .as_string()
    };
    let (ana, beto) = (key_of("+52 55 1234 5678"), key_of("+55 11 98765 4321"));
    let engine = s
        .aws
        .engine(&s.table)
        .with_content_retention(Duration::from_secs(90 * 86_400));
    let store = S3MediaStore::new(&s.aws.config, &s.bucket);
    let mut keys = Vec::new();
    for seed in 1..=4u8 {
        let bytes = photo(seed, 1_000);
        let key = Sha256Digest::of(&bytes).object_key();
        let mut pending = store.begin().await.unwrap();
        pending.write(&bytes).await.unwrap();
        pending.commit(&key).await.unwrap();
        keys.push(key);
    }
    let (only_ana, shared, shared_long_ago, only_beto) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    let index = engine.media_index();
    let now = now_ms();
    for (key, who, at) in [
        (only_ana, &ana, now),
        (shared, &ana, now),
        (shared, &beto, now - 86_400_000),
        // Beto sent it 100 days ago: his item is past the retention (DynamoDB's TTL deletes
        // it lazily), so it no longer keeps the file.
        (shared_long_ago, &ana, now),
        (shared_long_ago, &beto, now - 100 * 86_400_000),
        (only_beto, &beto, now),
    ] {
        index.record(key, who, at).await.unwrap();
    }
    // An older message never shortens an item's life.
    index
        .record(shared, &beto, now - 5 * 86_400_000)
        .await
        .unwrap();

    // Without the bucket the erasure refuses, naming it, and deletes nothing.
    let audit = engine.audit(wabridge_tests::AUDIT_RETENTION);
    let blind = engine.erasure(&s.events.url, audit.clone());
    match blind.erase("+52 55 1234 5678", "test").await {
        Err(ErasureError::Store(e)) => assert!(e.to_string().contains("MEDIA_BUCKET"), "{e}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(object_keys(&s.aws.s3, &s.bucket, "media/").await.len(), 4);

    let erasure = engine
        .clone()
        .with_media(Arc::new(S3MediaLinks::new(&s.aws.config, &s.bucket)))
        .erasure(&s.events.url, audit);
    let erased = erasure.erase("+52 55 1234 5678", "test").await.unwrap();
    assert_eq!(erased.removed.get("media_files"), Some(&2), "{erased:?}");
    assert_eq!(erased.removed.get("mediafile"), Some(&3), "{erased:?}");
    let mut left = object_keys(&s.aws.s3, &s.bucket, "media/").await;
    left.sort();
    let mut want = vec![shared.clone(), only_beto.clone()];
    want.sort();
    assert_eq!(
        left, want,
        "Ana's own files and the one Beto sent long ago go"
    );

    // No item names Ana any more; Beto's stay; every family is one erasure knows.
    let items = dynamo_items(&s.aws.dynamo, &s.table).await;
    let families: BTreeSet<String> = items
        .iter()
        .filter_map(|i| {
            i.get(PK)?
                .as_s()
                .ok()?
                .split_once('#')
                .map(|(f, _)| f.to_string())
        })
        .collect();
    let known: BTreeSet<&str> = FAMILIES.iter().map(|(f, _)| *f).collect();
    let unknown: Vec<_> = families
        .iter()
        .filter(|f| !known.contains(f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "families erasure does not list: {unknown:?}"
    );
    let media_items: Vec<(String, String)> = items
        .iter()
        .filter_map(|i| {
            let pk = i.get(PK)?.as_s().ok()?;
            let file = pk.strip_prefix("mediafile#")?;
            Some((file.to_string(), i.get(SK)?.as_s().ok()?.clone()))
        })
        .collect();
    assert!(
        media_items.iter().all(|(_, who)| *who == beto),
        "{media_items:?}"
    );
    assert_eq!(media_items.len(), 3, "{media_items:?}");

    // A repeat finds the same erasure and deletes nothing more.
    let again = erasure.erase("+52 55 1234 5678", "test").await.unwrap();
    assert!(again.already_erased && again.erasure_id == erased.erasure_id);
    assert_eq!(object_keys(&s.aws.s3, &s.bucket, "media/").await.len(), 2);
}
