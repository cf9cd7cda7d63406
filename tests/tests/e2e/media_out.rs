//! Outbound media end to end through the real `wabridge serve` binary: a PDF and an image
//! uploaded with `POST /media`, a `factura_emitida` template with the PDF as its document
//! header and a free-form image inside the 24-hour window sent with `POST /sends`, and Meta's
//! API played by Prism on Meta's OpenAPI spec behind a loopback front that records every request
//! (the upload's multipart form is parsed part by part here; Prism checks path, token,
//! `User-Agent` and content type of the upload, and the whole message against the spec).
//!
//! What would break each test: a file not uploaded before its message, a message by link or
//! without the upload's id, a second upload of a file already uploaded for the number, a
//! media message let through outside the window, an oversized or disallowed upload stored or
//! answered with anything but 413 / 422 naming the problem, an unknown object accepted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wabridge_tests::gateway::{http_client, Gateway};
use wabridge_tests::multipart::parts;
use wabridge_tests::prism::Prism;

const SECRET: &str = "media-out-test-secret";
const API_KEY: &str = "media-out-api-key";
const PHONE_NUMBER_ID: &str = "106540352242922";

/// One request the front passed to Prism, and Prism's answer.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
    pub(crate) status: u16,
    pub(crate) answer: Value,
}

/// The loopback "Graph API": forwards every request to Prism and records it with the answer.
pub(crate) struct Front {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Front {
    pub(crate) fn seen(&self, suffix: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

pub(crate) async fn front(upstream: &str) -> Front {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    type Shared = (String, Arc<Mutex<Vec<Seen>>>);
    async fn forward(
        State((upstream, seen)): State<Shared>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{upstream}{}", uri.path()))
            .body(body.to_vec());
        for name in ["authorization", "user-agent", "content-type"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                req = req.header(name, v);
            }
        }
        let (status, text) = match req.send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        };
        seen.lock().unwrap().push(Seen {
            path: uri.path().to_string(),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            body: body.to_vec(),
            status,
            answer: serde_json::from_str(&text).unwrap_or(Value::Null),
        });
        let status = StatusCode::from_u16(status).unwrap();
        (status, [("content-type", "application/json")], text).into_response()
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .fallback(axum::routing::post(forward))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state((upstream.to_string(), seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Front {
        url,
        seen,
        _task: task,
    }
}

/// The gateway, sending through `graph` (or not sending: `None`).
fn start(graph: Option<&str>) -> Gateway {
    let mut env = vec![
        ("WHATSAPP_APP_SECRET", SECRET),
        ("WABRIDGE_API_KEY", API_KEY),
    ];
    if let Some(url) = graph {
        env.extend([
            ("WHATSAPP_API_URL", url),
            ("WHATSAPP_ACCESS_TOKEN", "EAAGtestToken123"),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ]);
    }
    Gateway::start(&env)
}

/// `POST /media{query}` with `body` as `mime`.
async fn post_media(gw: &Gateway, mime: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = http_client()
        .post(format!("{}/media{query}", gw.url))
        .bearer_auth(API_KEY)
        .body(body);
    if let Some(m) = mime {
        req = req.header("content-type", m);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn send(gw: &Gateway, body: Value) -> (u16, Value) {
    let r = http_client()
        .post(format!("{}/sends", gw.url))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn wait_state(gw: &Gateway, id: &str, state: &str) -> Value {
    wabridge_tests::eventually(
        &format!("send {id} to be {state}"),
        Duration::from_secs(45),
        || async {
            let r = http_client()
                .get(format!("{}/sends/{id}", gw.url))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            assert!(v["state"] != "failed", "send {id} failed: {v}");
            (v["state"] == state).then_some(v)
        },
    )
    .await
}

/// A template send of `factura_emitida` with the document `object` in its header.
async fn send_factura(gw: &Gateway, to: &str, object: &str) -> String {
    let (status, v) = send(
        gw,
        json!({"to": to, "template": "factura_emitida", "language": "es_MX",
               "category": "UTILITY", "parameters": ["1042"],
               "header": {"type": "document", "object": object, "filename": "factura-1042.pdf"}}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// A PDF of `size` bytes (its first and last lines are a PDF's).
pub(crate) fn pdf(size: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.4\n".to_vec();
    b.extend((0..size.saturating_sub(16)).map(|i| (i % 251) as u8));
    b.extend_from_slice(b"\n%%EOF\n");
    b
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The upload Meta received: Meta's three fields, the file byte for byte, accepted by Prism.
pub(crate) fn check_upload(seen: &Seen, mime: &str, file: &[u8]) {
    assert_eq!(
        seen.status, 200,
        "Prism refused the upload: {}",
        seen.answer
    );
    assert!(
        seen.path.ends_with(&format!("/{PHONE_NUMBER_ID}/media")),
        "{}",
        seen.path
    );
    let form = parts(&seen.content_type, &seen.body);
    let names: Vec<&str> = form.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["messaging_product", "type", "file"]);
    assert_eq!(form[0].data, b"whatsapp");
    assert_eq!(form[1].data, mime.as_bytes());
    assert_eq!(form[2].content_type.as_deref(), Some(mime));
    assert!(form[2].data == file, "the file byte for byte");
}

async fn inbound(gw: &Gateway, wa_id: &str, id: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "time": now, "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": id, "timestamp": (now - 5).to_string(),
                      "type": "text", "text": {"body": "¿Me mandas el boleto?"}}]}}]}]});
    let (status, v) = gw.post_signed(body.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{v}");
    gw.wait_drained();
}

#[tokio::test]
async fn files_uploaded_to_serve_reach_meta_once_and_go_by_id() {
    let Some(prism) = Prism::start() else { return };
    let front = front(prism.url()).await;
    let gw = start(Some(&front.url));

    let factura = pdf(300 * 1024);
    let (status, v) = post_media(
        &gw,
        Some("application/pdf"),
        "?filename=factura-1042.pdf",
        factura.clone(),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let object = sha256_hex(&factura);
    assert_eq!(
        v,
        json!({"object": object, "sha256": object, "size": factura.len(),
               "mime_type": "application/pdf", "kind": "document",
               "filename": "factura-1042.pdf"})
    );

    let audit = wabridge_tests::gateway::json_lines(&gw.cli_ok(&["audit", "--json"]));
    assert!(
        audit
            .iter()
            .any(|l| l["action"] == "media_upload" && l["subject"] == object.as_str()),
        "{audit:?}"
    );

    let first = send_factura(&gw, "+525512340001", &object).await;
    wait_state(&gw, &first, "sent").await;
    let uploads = front.seen("/media");
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    check_upload(&uploads[0], "application/pdf", &factura);
    let media_id = uploads[0].answer["id"].as_str().unwrap().to_string();
    let messages = front.seen("/messages");
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

    // The media index keeps the invoice for its upload and for the customer it went to.
    let rows = wabridge_tests::stores::sqlite_rows(&gw.data_dir.join("wabridge.db"));
    let users: Vec<&str> = rows
        .iter()
        .filter(|(table, row)| table == "media_objects" && row.contains(&object))
        .map(|(_, row)| row.as_str())
        .collect();
    assert!(
        users.iter().any(|r| r.contains(r#"Text("upload")"#)),
        "{users:?}"
    );
    assert!(
        users.iter().any(|r| r.contains("phone:525512340001")),
        "{users:?}"
    );

    // The same invoice to another customer: sent by the same id, not uploaded again.
    let second = send_factura(&gw, "+525512340002", &object).await;
    wait_state(&gw, &second, "sent").await;
    assert_eq!(front.seen("/media").len(), 1, "no second upload");
    let message: Value = serde_json::from_slice(&front.seen("/messages")[1].body).unwrap();
    assert_eq!(
        message["template"]["components"][0]["parameters"][0]["document"]["id"],
        media_id.as_str()
    );

    // A free-form image: refused outside the window, like text; sent by id inside it.
    let mut ticket = b"\x89PNG\r\n\x1a\n".to_vec();
    ticket.extend((0..20_000u32).map(|i| (i * 13 % 256) as u8));
    let (status, v) = post_media(&gw, Some("image/png"), "", ticket.clone()).await;
    assert_eq!((status, &v["kind"]), (201, &json!("image")), "{v}");
    let image = json!({"to": "+525512340003",
        "media": {"type": "image", "object": v["object"], "caption": "Tu boleto"}});
    let (status, v) = send(&gw, image.clone()).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "outside_customer_service_window");
    inbound(&gw, "5215512340003", "wamid.media.out.1").await;
    let (status, v) = send(&gw, image).await;
    assert_eq!(status, 202, "{v}");
    wait_state(&gw, v["id"].as_str().unwrap(), "sent").await;
    let uploads = front.seen("/media");
    assert_eq!(uploads.len(), 2);
    check_upload(&uploads[1], "image/png", &ticket);
    let messages = front.seen("/messages");
    let message: Value = serde_json::from_slice(&messages[2].body).unwrap();
    assert_eq!(
        messages[2].status, 200,
        "Prism refused {message}: {}",
        messages[2].answer
    );
    assert_eq!(message["type"], "image");
    assert_eq!(
        message["image"],
        json!({"id": uploads[1].answer["id"], "caption": "Tu boleto"})
    );
}

#[tokio::test]
async fn uploads_and_sends_serve_refuses_name_the_problem_and_leave_nothing() {
    let gw = start(None);
    let limit = 5 * 1024 * 1024;

    // Over the image limit (declared): 413 naming Meta's limit.
    let (status, v) = post_media(&gw, Some("image/jpeg"), "", vec![0xff; limit + 1]).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "media_too_large");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string()),
        "{v}"
    );
    // A type outside Meta's list: 422 naming the allowed ones.
    let (status, v) = post_media(&gw, Some("image/gif"), "", b"GIF89a".to_vec()).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "media_type_not_allowed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image/png"),
        "{v}"
    );
    let (status, v) = post_media(&gw, Some("application/pdf"), "", Vec::new()).await;
    assert_eq!((status, &v["error"]["code"]), (422, &json!("media_empty")));
    let (status, v) = post_media(&gw, None, "", b"%PDF".to_vec()).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (400, &json!("missing_content_type"))
    );
    // Keyed like POST /sends; POST only.
    let r = http_client()
        .post(format!("{}/media", gw.url))
        .header("content-type", "application/pdf")
        .body(b"%PDF".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http_client()
        .get(format!("{}/media", gw.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    // A document far over the JSON routes' body limit streams in.
    let big = pdf(12 * 1024 * 1024);
    let (status, v) = post_media(&gw, Some("application/pdf"), "", big.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["size"], big.len());
    let object = v["object"].as_str().unwrap().to_string();

    // Sends: an unknown object, and the PDF as an image.
    let (status, v) = send(
        &gw,
        json!({"to": "+525512340009", "template": "factura_emitida", "language": "es_MX",
               "header": {"type": "document", "object": "0".repeat(64)}}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "media_object_not_found");
    let (status, v) = send(
        &gw,
        json!({"to": "+525512340009", "template": "ticket_evento", "language": "es_MX",
               "header": {"type": "image", "object": object}}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "media_type_not_allowed");

    // Only the one stored file: nothing of the refused uploads, nothing pending.
    let media = gw.data_dir.join("media");
    let mut names: Vec<String> = std::fs::read_dir(&media)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".pending".to_string(), object]);
    assert_eq!(
        std::fs::read_dir(media.join(".pending")).unwrap().count(),
        0
    );
}

/// Every media message kind the sender builds, and an upload of each kind, straight to Prism on
/// Meta's spec (no front): a request the spec refuses fails here.
#[tokio::test]
async fn every_media_request_matches_metas_spec() {
    use wabridge_core::media::MediaKind;
    use wabridge_core::sends::graph::{
        Address, Content, GraphConfig, MediaMessage, MessageApi, OutboundMessage,
    };
    use wabridge_core::sends::media::{MediaUploadApi, OutgoingFile};

    let Some(prism) = Prism::start() else { return };
    let config = GraphConfig {
        base_url: prism.url().to_string(),
        version: "v23.0".into(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        access_token: "EAAGtestToken123".into(),
        timeout: Duration::from_secs(10),
    };
    let uploads = wabridge_graph::GraphUploads::new(config.clone());
    let client = wabridge_graph::GraphClient::new(config);
    for (mime, bytes) in [
        ("application/pdf", pdf(4096)),
        ("image/jpeg", b"\xff\xd8\xff\xe0 jpeg".to_vec()),
        ("audio/ogg", b"OggS opus".to_vec()),
        ("video/mp4", b"\0\0\0\x18ftypmp42".to_vec()),
    ] {
        let file = OutgoingFile {
            mime_type: mime.into(),
            filename: "file.bin".into(),
            size: bytes.len() as u64,
            body: Box::pin(std::io::Cursor::new(bytes)),
        };
        let id = uploads
            .upload(file)
            .await
            .unwrap_or_else(|f| panic!("Prism refused the {mime} upload: {f:?}"));
        assert!(!id.is_empty());
    }
    let media = |kind, caption: Option<&str>, filename: Option<&str>| MediaMessage {
        kind,
        id: "4490709327384033".into(),
        caption: caption.map(str::to_string),
        filename: filename.map(str::to_string),
    };
    for m in [
        media(MediaKind::Image, Some("Tu boleto"), None),
        media(MediaKind::Image, None, None),
        media(
            MediaKind::Document,
            Some("Tu factura"),
            Some("factura-1042.pdf"),
        ),
        media(MediaKind::Video, Some("Cómo llegar"), None),
        media(MediaKind::Audio, None, None),
    ] {
        let message = OutboundMessage {
            address: Address::Phone("+5215512345678".into()),
            content: Content::Media(m),
            callback_data: "snd_m".into(),
        };
        let body = message.to_json();
        client
            .send(&message)
            .await
            .unwrap_or_else(|f| panic!("Prism refused {body}: {f:?}"));
    }
}
