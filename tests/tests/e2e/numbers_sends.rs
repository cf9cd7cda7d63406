//! Sends from a chosen number through the real `wabridge serve` (issue 21): with two numbers
//! registered, `POST /sends` and `wabridge send` take `from` (a label or a phone_number_id); it
//! is required, and an unknown one is refused with 422 `unknown_number`. Each send goes to Meta
//! under its own number's path with its own token: Prism (Meta's spec) checks every request,
//! behind a loopback front that records which path and token each one used.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_tests::gateway::{http_client, Gateway};
use wabridge_tests::prism::Prism;

const SECRET: &str = "numbers-sends-secret";
const API_KEY: &str = "numbers-sends-api-key";
const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const WABA: &str = "102290129340398";
/// The front answers Meta's 131026 for sends to this number.
const UNDELIVERABLE: &str = "525512340026";

/// What the front saw: path, `Authorization` header, Prism's status.
pub(crate) type Seen = Arc<Mutex<Vec<(String, String, u16)>>>;

/// A loopback "Graph API" that forwards every request to Prism and records it.
pub(crate) async fn front(prism: &Prism) -> (String, Seen) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    let seen: Seen = Arc::default();
    let upstream = prism.url().to_string();
    let kept = seen.clone();
    let forward = move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (upstream, kept) = (upstream.clone(), kept.clone());
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            // Meta's 131026 (undeliverable) for one recipient: that send ends without a status.
            if String::from_utf8_lossy(&body).contains(UNDELIVERABLE) {
                kept.lock()
                    .unwrap()
                    .push((uri.path().to_string(), header("authorization"), 400));
                let error = json!({"error": {"message": "Message undeliverable", "type": "OAuthException",
                    "code": 131026, "error_data": {"messaging_product": "whatsapp",
                    "details": "Message undeliverable"}, "fbtrace_id": "AbC"}});
                return (
                    StatusCode::BAD_REQUEST,
                    [("content-type", "application/json")],
                    error.to_string(),
                )
                    .into_response();
            }
            let r = reqwest::Client::new()
                .post(format!("{upstream}{}", uri.path()))
                .header("authorization", header("authorization"))
                .header("user-agent", header("user-agent"))
                .header("content-type", header("content-type"))
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            kept.lock()
                .unwrap()
                .push((uri.path().to_string(), header("authorization"), status));
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                text,
            )
                .into_response()
        }
    };
    let app = axum::Router::new().fallback(axum::routing::post(forward));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn registry() -> String {
    format!(
        r#"
[[number]]
label = "ventas-mx"
phone_number_id = "{MX}"
waba_id = "{WABA}"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}

[[number]]
label = "soporte-co"
phone_number_id = "{CO}"
waba_id = "{WABA}"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
sends_per_second = 20
crm = {{ kind = "local" }}
"#
    )
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

async fn wait_sent(gw: &Gateway, id: &str) -> Value {
    wabridge_tests::eventually(
        &format!("send {id} to be sent"),
        Duration::from_secs(45),
        || async {
            let v: Value = http_client()
                .get(format!("{}/sends/{id}", gw.url))
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v["state"] == "sent").then_some(v)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_send_goes_out_from_its_chosen_number_with_its_token() {
    let Some(prism) = Prism::start() else { return };
    let (graph, seen) = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    std::fs::write(&file, registry()).unwrap();
    let gw = Gateway::start_in(
        &dir.path().join("data"),
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WABRIDGE_API_KEY", API_KEY),
            ("WHATSAPP_API_URL", &graph),
            ("WABRIDGE_NUMBERS", file.to_str().unwrap()),
            ("WHATSAPP_ACCESS_TOKEN_MX", "EAAG-mx-token-0001"),
            ("WHATSAPP_ACCESS_TOKEN_CO", "EAAG-co-token-0002"),
        ],
    );
    // The template is approved for the WABA (the sends' guards check it).
    let approve = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1763780000,
        "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED",
        "message_template_id": 594425479261596_i64, "message_template_name": "pedido_enviado",
        "message_template_language": "es_MX", "reason": "NONE"}}]}]});
    let (status, v) = gw.post_signed(approve.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{v}");
    gw.wait_drained();

    let template = |from: Option<&str>| {
        let mut body = json!({"to": "+52 1 55 1234 5678", "template": "pedido_enviado",
                              "language": "es_MX", "category": "UTILITY"});
        if let Some(f) = from {
            body["from"] = json!(f);
        }
        body
    };
    let (status, v) = send(&gw, template(None)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("from_required")),
        "{v}"
    );
    let (status, v) = send(&gw, template(Some("ventas-ar"))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_number")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ventas-mx, soporte-co"),
        "{v}"
    );
    let (status, v) = send(&gw, template(Some("ventas mx"))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_from")),
        "{v}"
    );

    let (status, mx) = send(&gw, template(Some("ventas-mx"))).await;
    assert_eq!(status, 202, "{mx}");
    let (status, co) = send(&gw, template(Some(CO))).await;
    assert_eq!(status, 202, "{co}");
    wait_sent(&gw, mx["id"].as_str().unwrap()).await;
    wait_sent(&gw, co["id"].as_str().unwrap()).await;
    // The CLI's --from, by label.
    let out = gw.cli_ok(&[
        "send",
        "--to",
        "+57 300 1234567",
        "--template",
        "pedido_enviado",
        "--lang",
        "es_MX",
        "--category",
        "UTILITY",
        "--from",
        "soporte-co",
        "--url",
        &gw.url,
        "--api-key",
        API_KEY,
    ]);
    let cli: Value = serde_json::from_str(out.trim()).unwrap();
    wait_sent(&gw, cli["id"].as_str().unwrap()).await;

    // A send from CO that Meta refuses is reported in CO's records, under CO's label.
    let mut failing = template(Some("soporte-co"));
    failing["to"] = json!(format!("+{UNDELIVERABLE}"));
    let (status, failed) = send(&gw, failing).await;
    assert_eq!(status, 202, "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_string();
    let is_it = |r: &Value| r["kind"] == "activity" && r["send_id"] == failed_id.as_str();
    let activity = wabridge_tests::eventually(
        "the failed send's record",
        Duration::from_secs(45),
        || async { gw.records().into_iter().find(is_it) },
    )
    .await;
    assert_eq!(activity["status"], "failed", "{activity}");
    assert_eq!(
        activity["business_number"]["label"], "soporte-co",
        "{activity}"
    );
    assert_eq!(
        activity["business_number"]["phone_number_id"], CO,
        "{activity}"
    );

    // A free-form image from CO (the customer wrote to CO: CO's window is open): the file is
    // uploaded to Meta from CO, with CO's token, then sent by id from CO.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let inbound = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
         "metadata": {"display_phone_number": "576015002222", "phone_number_id": CO},
         "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5215512340003"}],
         "messages": [{"from": "5215512340003", "id": "wamid.in.co", "timestamp": now.to_string(),
                       "type": "text", "text": {"body": "¿me mandas el boleto?"}}]}}]}]});
    let (status, v) = gw.post_signed(inbound.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{v}");
    gw.wait_drained();
    // The window is CO's only: the same free-form text from MX is refused before Meta.
    let (status, refused) = send(
        &gw,
        json!({"to": "+525512340003", "from": "ventas-mx", "text": "Hola, te escribe ventas"}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("outside_customer_service_window")),
        "{refused}"
    );
    let mut ticket = b"\x89PNG\r\n\x1a\n".to_vec();
    ticket.extend((0..20_000u32).map(|i| (i * 13 % 256) as u8));
    let r = http_client()
        .post(format!("{}/media", gw.url))
        .bearer_auth(API_KEY)
        .header("content-type", "image/png")
        .body(ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let object: Value = r.json().await.unwrap();
    let (status, image) = send(
        &gw,
        json!({"to": "+525512340003", "from": "soporte-co",
               "media": {"type": "image", "object": object["object"]}}),
    )
    .await;
    assert_eq!(status, 202, "{image}");
    wait_sent(&gw, image["id"].as_str().unwrap()).await;

    let mut calls = seen.lock().unwrap().clone();
    calls.sort();
    let mx_call = (
        format!("/v23.0/{MX}/messages"),
        "Bearer EAAG-mx-token-0001".to_string(),
        200,
    );
    let co_call = (
        format!("/v23.0/{CO}/messages"),
        "Bearer EAAG-co-token-0002".to_string(),
        200,
    );
    assert_eq!(
        calls,
        vec![
            mx_call,
            (format!("/v23.0/{CO}/media"), co_call.1.clone(), 200),
            co_call.clone(),
            co_call.clone(),
            co_call.clone(),
            (co_call.0, co_call.1, 400),
        ],
        "each send used its own number's path and token, and Prism accepted it"
    );
}
