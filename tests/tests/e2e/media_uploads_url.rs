//! Uploads by URL (`POST /media/uploads`) on both engines: through the real `wabridge serve`
//! binary (the URL is the gateway's own signed `PUT /media/uploads/{sha256}`), and through
//! ingest's Function URL handler over moto's S3 and DynamoDB (a presigned S3 PUT to a pending
//! key, checked and copied to the content address by ingest). One flow runs on each:
//!
//! - a declaration outside Meta's limits is refused before any URL (413 / 422), and without
//!   the API key nothing is answered (401);
//! - declared, nothing there: 202 with the URL and the headers the PUT must carry;
//! - bytes that are not the declared file (same length, one byte changed): the next
//!   declaration answers 422 `media_checksum_mismatch` (locally the PUT itself does), and
//!   nothing is stored under the content address;
//! - the file PUT: the declaration answers 201 with the same body as `POST /media`, the stored
//!   bytes are the file's, and a send naming the object without a type is accepted (the upload
//!   recorded its type);
//! - declared once more: 201 at once, no second upload.
//!
//! What would break them: a URL handed out for a refused file, a tampered file committed under
//! the declared hash, an upload not recorded for sends, a route without its key check. On AWS
//! also: a URL that does not sign the type, length and checksum, a pending object left behind,
//! or a re-upload that does not restart the file's lifecycle (`refresh`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wabridge_core::ingest::IngestConfig;
use wabridge_tests::gateway::{http_client, Gateway};
use wabridge_tests::{create_bucket, create_queues, create_table, require_aws, unique_name};

use crate::infra_e2e::lambda_service::{call_ingest, lambda_request};
use crate::media_out::pdf;

const API_KEY: &str = "uploads-by-url-key-7781";

/// What the flow needs of an engine.
trait Engine {
    /// `POST /media/uploads` with `body`, with the API key or without.
    async fn declare(&self, body: &Value, keyed: bool) -> (u16, Value);
    /// The bytes stored under `media/<hex>`, if any.
    async fn stored(&self, hex: &str) -> Option<Vec<u8>>;
    /// `POST /sends` of a template naming `object` as its document header.
    async fn send(&self, object: &str) -> (u16, Value);
}

/// PUTs `body` to the declaration's upload URL with its headers (the length is the body's, as
/// any HTTP client sends it); the PUT's status and answer.
async fn put(answer: &Value, body: Vec<u8>) -> (u16, String) {
    let upload = &answer["upload"];
    assert_eq!(upload["method"], "PUT", "{answer}");
    let mut req = http_client()
        .put(upload["url"].as_str().unwrap())
        .body(body);
    for (name, value) in upload["headers"].as_object().unwrap() {
        if name != "content-length" {
            req = req.header(name.as_str(), value.as_str().unwrap());
        }
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn declaration(file: &[u8]) -> Value {
    json!({"mime_type": "application/pdf", "size": file.len(),
           "sha256": hex::encode(Sha256::digest(file)), "filename": "factura-1042.pdf"})
}

/// The flow of the module's doc on `engine`; `local` says whether a tampered PUT is refused at
/// the PUT (the gateway checks as it receives) rather than at the next declaration (S3 took
/// it). Returns the first 202's answer, for the engine's own checks.
async fn flow(engine: &impl Engine, local: bool) -> Value {
    let file = pdf(300 * 1024);
    let hex = hex::encode(Sha256::digest(&file));

    // Refused before any URL.
    let (status, v) = engine.declare(&declaration(&file), false).await;
    assert_eq!(status, 401, "{v}");
    let mut big = declaration(&file);
    big["size"] = json!(101 * 1024 * 1024);
    let (status, v) = engine.declare(&big, true).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (413, &json!("media_too_large")),
        "{v}"
    );
    let mut gif = declaration(&file);
    gif["mime_type"] = json!("image/gif");
    let (status, v) = engine.declare(&gif, true).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (422, &json!("media_type_not_allowed"))
    );
    assert!(v.get("upload").is_none());

    // Declared: where to PUT it.
    let (status, first) = engine.declare(&declaration(&file), true).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(
        (&first["object"], &first["status"]),
        (&json!(hex), &json!("awaiting_upload"))
    );
    let headers = &first["upload"]["headers"];
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["content-length"], file.len().to_string());

    // Tampered bytes of the same length: never stored under the declared hash.
    let mut tampered = file.clone();
    tampered[1000] ^= 0xff;
    let (status, text) = put(&first, tampered).await;
    if local {
        assert_eq!(status, 422, "{text}");
        assert!(text.contains("media_checksum_mismatch"), "{text}");
    } else {
        assert_eq!(status, 200, "{text}");
        let (status, v) = engine.declare(&declaration(&file), true).await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["error"]["code"], "media_checksum_mismatch");
    }
    assert_eq!(engine.stored(&hex).await, None);

    // The file itself.
    let (status, again) = engine.declare(&declaration(&file), true).await;
    assert_eq!(status, 202, "{again}");
    let (status, text) = put(&again, file.clone()).await;
    assert_eq!(status, 200, "{text}");
    let (status, v) = engine.declare(&declaration(&file), true).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        v,
        json!({"object": hex, "sha256": hex, "size": file.len(),
               "mime_type": "application/pdf", "kind": "document",
               "filename": "factura-1042.pdf"})
    );
    assert!(
        engine.stored(&hex).await == Some(file.clone()),
        "the file byte for byte"
    );
    let (status, v) = engine.send(&hex).await;
    assert_eq!(status, 202, "{v}");

    // Declared again: stored at once.
    let (status, v) = engine.declare(&declaration(&file), true).await;
    assert_eq!((status, &v["object"]), (201, &json!(hex)), "{v}");
    first
}

fn factura(object: &str) -> Value {
    json!({"to": "+525512340001", "template": "factura_emitida", "language": "es_MX",
           "category": "UTILITY", "parameters": ["1042"],
           "header": {"type": "document", "object": object}})
}

struct Local(Gateway);

impl Engine for Local {
    async fn declare(&self, body: &Value, keyed: bool) -> (u16, Value) {
        let mut req = http_client()
            .post(format!("{}/media/uploads", self.0.url))
            .json(body);
        if keyed {
            req = req.bearer_auth(API_KEY);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn stored(&self, hex: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.data_dir.join("media").join(hex)).ok()
    }

    async fn send(&self, object: &str) -> (u16, Value) {
        let r = http_client()
            .post(format!("{}/sends", self.0.url))
            .bearer_auth(API_KEY)
            .json(&factura(object))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn serve_takes_files_by_url_checks_them_and_refuses_forged_puts() {
    let gw = Local(Gateway::start(&[
        ("WHATSAPP_APP_SECRET", "uploads-by-url-secret"),
        ("WABRIDGE_API_KEY", API_KEY),
    ]));
    let first = flow(&gw, true).await;
    let url = first["upload"]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/media/uploads/", gw.0.url)) && url.contains("?t="),
        "{url}"
    );

    // The token binds the file, its length and its type: another of any is refused, and so is
    // a forged token; nothing is stored for them.
    let other = pdf(2048);
    let declared = gw.declare(&declaration(&other), true).await.1;
    let hex = declared["object"].as_str().unwrap().to_string();
    let mut as_image = declared.clone();
    as_image["upload"]["headers"]["content-type"] = json!("image/png");
    assert_eq!(put(&as_image, other.clone()).await.0, 403);
    let mut forged = declared.clone();
    let own = declared["upload"]["url"].as_str().unwrap();
    forged["upload"]["url"] = json!(format!(
        "{}?t=9999999999.AAAA",
        own.split("?t=").next().unwrap()
    ));
    assert_eq!(put(&forged, other.clone()).await.0, 403);
    assert_eq!(
        put(&declared, other[..1024].to_vec()).await.0,
        403,
        "another length"
    );
    assert_eq!(gw.stored(&hex).await, None);
    let pending = std::fs::read_dir(gw.0.data_dir.join("media").join(".pending"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(pending, 0, "nothing pending");

    // Each stored upload leaves an audit line naming the key and the file, nothing else.
    let lines = wabridge_tests::gateway::json_lines(&gw.0.cli_ok(&["audit", "--json"]));
    let uploads: Vec<&Value> = lines
        .iter()
        .filter(|l| l["action"] == "media_upload")
        .collect();
    assert_eq!(uploads.len(), 2, "{lines:?}");
    assert!(uploads
        .iter()
        .all(|l| l["actor"] == "key:default" && l["subject"] == first["object"]));
}

struct Aws {
    api: wabridge_core::api::Api,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Engine for Aws {
    async fn declare(&self, body: &Value, keyed: bool) -> (u16, Value) {
        let auth = format!("Bearer {API_KEY}");
        let mut headers = vec![("content-type", "application/json")];
        if keyed {
            headers.push(("authorization", auth.as_str()));
        }
        let req = lambda_request(
            "POST",
            "/media/uploads",
            &headers,
            body.to_string().as_bytes(),
        );
        let (status, text) = call_ingest(&self.api, req).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn stored(&self, hex: &str) -> Option<Vec<u8>> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(format!("media/{hex}"))
            .send()
            .await
            .ok()?;
        Some(got.body.collect().await.unwrap().into_bytes().to_vec())
    }

    async fn send(&self, object: &str) -> (u16, Value) {
        let auth = format!("Bearer {API_KEY}");
        let req = lambda_request(
            "POST",
            "/sends",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            factura(object).to_string().as_bytes(),
        );
        let (status, text) = call_ingest(&self.api, req).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Aws {
    async fn last_modified(&self, key: &str) -> aws_sdk_s3::primitives::DateTime {
        let head = self.s3.head_object().bucket(&self.bucket).key(key);
        *head.send().await.unwrap().last_modified().unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        let list = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        list.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}

#[tokio::test]
async fn ingest_takes_files_by_presigned_s3_url_and_checks_them() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("uploads-url")).await;
    let sends_q = create_queues(&aws.sqs, &unique_name("uploads-url-sends"), 5).await;
    let bucket = create_bucket(&aws.s3, &unique_name("uploads-url")).await;
    let keys = json!([{"id": "crm", "scopes": ["sends"], "key": API_KEY}]).to_string();
    let lookup = |name: &str| match name {
        "WABRIDGE_API_KEYS" => Some(keys.clone()),
        _ => None,
    };
    let api = ingest::build_api(
        &aws.config,
        ingest::Settings {
            table,
            events_queue_url: "http://unused.invalid/events".into(),
            ingest: IngestConfig::from_lookup(lookup).unwrap(),
            sends_queue_url: Some(sends_q.url.clone()),
            api_keys: Arc::new(wabridge_core::auth::ApiKeys::from_lookup(lookup).unwrap()),
            claim_check_bucket: None,
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            content_retention: wabridge_tests::CONTENT_RETENTION,
            template_languages: Default::default(),
            media_bucket: Some(bucket.clone()),
            media_links: None,
            catalogues: Default::default(),
            conversation_idle_ms: 24 * 3_600_000,
            consent_scope: Default::default(),
        },
    );
    let engine = Aws {
        api,
        s3: aws.s3.clone(),
        bucket,
    };
    let first = flow(&engine, false).await;

    // The URL is S3's, to the pending key, and signs what binds it to the declared file.
    let hex = first["object"].as_str().unwrap();
    let url = first["upload"]["url"].as_str().unwrap();
    assert!(
        url.contains(&format!("/media/.pending/upload-{hex}?")),
        "{url}"
    );
    assert!(
        url.contains(
            "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-sha256"
        ),
        "{url}"
    );
    let file = pdf(300 * 1024);
    assert_eq!(
        first["upload"]["headers"]["x-amz-checksum-sha256"],
        wabridge_core::media::Sha256Digest::of(&file).base64()
    );
    let key = format!("media/{hex}");
    assert_eq!(
        engine.keys().await,
        vec![key.clone()],
        "nothing pending left"
    );

    // Declared again: the stored file is rewritten onto itself, so the bucket's lifecycle
    // counts from this use.
    let before = engine.last_modified(&key).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(engine.declare(&declaration(&file), true).await.0, 201);
    let after = engine.last_modified(&key).await;
    assert!(after.secs() > before.secs(), "{before} then {after}");
    assert!(engine.stored(hex).await == Some(file), "the same bytes");
}
