//! Media sends over the embedded engine: files uploaded into the local media store (the core's
//! streamed upload, as `POST /media` runs it), `POST /sends` with a template's media header
//! or a free-form media message checked against what is stored, and the sender uploading each
//! file to a local stand-in for Meta's media endpoint (multipart, parsed here part by part)
//! before it sends the message by id, once per file and number.
//!
//! What would break each test: a file sent by link or without its upload, an upload repeated
//! for a file already uploaded, a refused or unknown object accepted at `POST /sends`, a media
//! message let through outside the window, an upload failure not classified like a send's, a
//! partial or refused upload left in the store.

mod refusals;
mod sending;
mod uploads;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::media::upload::{MediaLibrary, ObjectInfo};
use wabridge_core::queue::Queue;
use wabridge_core::retry::RetryPolicy;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::media::MediaUploader;
use wabridge_core::sends::ratelimit::RateLimiter;
use wabridge_core::sends::sender::Sender;
use wabridge_core::sends::service::Sends;
use wabridge_graph::{GraphClient, GraphUploads};
use wabridge_sqlite::{
    Db, LocalMediaStore, SqliteEngine, SqliteMediaIndex, SqliteMediaUploads, SqliteQueue,
    SENDS_QUEUE,
};
use wabridge_tests::multipart::{parts, Part};

const PHONE_NUMBER_ID: &str = "106540352242922";

/// One request Meta's media endpoint received.
#[derive(Debug, Clone)]
struct UploadSeen {
    content_type: String,
    content_length: Option<u64>,
    authorization: String,
    body: Vec<u8>,
}

/// A stand-in for Meta: the media endpoint answers the next scripted (status, body) or a new
/// id (`M1`, `M2`, …); the messages endpoint answers a wamid.
#[derive(Clone, Default)]
struct Meta {
    upload_script: Arc<Mutex<Vec<(u16, Value)>>>,
    uploads: Arc<Mutex<Vec<UploadSeen>>>,
    messages: Arc<Mutex<Vec<Value>>>,
}

impl Meta {
    fn uploads(&self) -> Vec<UploadSeen> {
        self.uploads.lock().unwrap().clone()
    }
    fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }
    fn script_upload(&self, status: u16, body: Value) {
        self.upload_script.lock().unwrap().push((status, body));
    }
}

async fn media(
    State(meta): State<Meta>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    meta.uploads.lock().unwrap().push(UploadSeen {
        content_type: header("content-type"),
        content_length: header("content-length").parse().ok(),
        authorization: header("authorization"),
        body: body.to_vec(),
    });
    let next = {
        let mut s = meta.upload_script.lock().unwrap();
        (!s.is_empty()).then(|| s.remove(0))
    };
    match next {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), Json(body)),
        None => {
            let n = meta.uploads.lock().unwrap().len();
            (StatusCode::OK, Json(json!({"id": format!("M{n}")})))
        }
    }
}

async fn messages(State(meta): State<Meta>, Json(body): Json<Value>) -> Json<Value> {
    meta.messages.lock().unwrap().push(body.clone());
    let n = meta.messages.lock().unwrap().len();
    Json(json!({"messaging_product": "whatsapp",
        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
        "messages": [{"id": format!("wamid.M{n}")}]}))
}

struct Setup {
    sends: Sends,
    sender: Sender,
    queue: Arc<SqliteQueue>,
    meta: Meta,
    library: MediaLibrary,
    dir: tempfile::TempDir,
}

/// The engine over a fresh file and media folder, the sender posting to a local Meta.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.sqlite")).unwrap();
    let meta = Meta::default();
    let app = Router::new()
        .route("/{version}/{phone}/media", post(media))
        .route("/{version}/{phone}/messages", post(messages))
        .with_state(meta.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let library = MediaLibrary::new(
        Arc::new(LocalMediaStore::open(dir.path()).unwrap()),
        Arc::new(SqliteMediaUploads::new(db.clone())),
    )
    .with_index(Arc::new(SqliteMediaIndex::new(db.clone())));
    let engine = SqliteEngine::new(db.clone());
    let sends = engine
        .sends(wabridge_tests::admin_keys("test-api-key"))
        .with_media(library.clone());
    let config = GraphConfig {
        base_url: format!("http://{addr}"),
        version: "v23.0".into(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        access_token: "EAAGtest".into(),
        timeout: Duration::from_secs(5),
    };
    let uploader = MediaUploader::new(
        library.clone(),
        Arc::new(SqliteMediaUploads::new(db.clone())),
        Arc::new(GraphUploads::new(config.clone())),
    );
    let sender = Sender::new(
        sends.clone(),
        Arc::new(GraphClient::new(config)),
        Arc::new(RateLimiter::new(1000.0, Duration::ZERO)),
    )
    .with_media(Arc::new(uploader));
    Setup {
        sends,
        sender,
        queue: Arc::new(engine.queue(SENDS_QUEUE)),
        meta,
        library,
        dir,
    }
}

/// Who the media index says uses the file `key` (`media_objects` rows: `upload`, recipients).
fn users_of(s: &Setup, key: &str) -> Vec<String> {
    let path = s.dir.path().join("wabridge.sqlite");
    let mut users: Vec<String> = wabridge_tests::stores::sqlite_rows(&path)
        .into_iter()
        .filter(|(table, row)| table == "media_objects" && row.contains(key))
        .filter_map(|(_, row)| row.split(" | ").nth(1).map(str::to_string))
        .collect();
    users.sort();
    users
}

/// Uploads `bytes` as `mime` the way `POST /media` does (in chunks).
async fn upload(
    library: &MediaLibrary,
    mime: &str,
    name: Option<&str>,
    bytes: &[u8],
) -> ObjectInfo {
    let mut u = library
        .begin(Some(mime), name, Some(bytes.len() as u64))
        .await
        .unwrap();
    for chunk in bytes.chunks(7 * 1024) {
        u.write(chunk).await.unwrap();
    }
    u.finish().await.unwrap()
}

/// A small PDF and PNG, real enough to be recognised by their first bytes.
fn pdf() -> Vec<u8> {
    let mut b = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    b.extend((0..40_000u32).map(|i| (i % 251) as u8));
    b.extend_from_slice(b"\n%%EOF\n");
    b
}

fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..9_000u32).map(|i| (i * 7 % 256) as u8));
    b
}

/// Receives and handles every visible message of the sends queue; returns the outcomes.
async fn drain(s: &Setup) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    loop {
        let batch = s.queue.receive(10, Duration::from_secs(30)).await.unwrap();
        if batch.is_empty() {
            return outcomes;
        }
        for d in batch {
            let o = s.sender.handle(&d).await;
            let how = wabridge_core::consumer::Settle::new(RetryPolicy::SENDS, true);
            wabridge_core::consumer::settle(s.queue.as_ref(), &d, o.clone(), &how)
                .await
                .unwrap();
            outcomes.push(o);
        }
    }
}

/// The API's status and code for a refused send.
fn refusal(e: wabridge_core::sends::error::SendsError) -> (u16, &'static str, String) {
    let message = e.to_string();
    let e = wabridge_core::http::ApiError::from(e);
    (e.status(), e.code(), message)
}

/// The form Meta's media endpoint received: `messaging_product`, `type` and `file`, in order.
fn upload_form(seen: &UploadSeen) -> Vec<Part> {
    let form = parts(&seen.content_type, &seen.body);
    let names: Vec<&str> = form.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["messaging_product", "type", "file"], "{form:?}");
    assert_eq!(form[0].data, b"whatsapp");
    assert_eq!(seen.content_length, Some(seen.body.len() as u64));
    assert_eq!(seen.authorization, "Bearer EAAGtest");
    form
}
