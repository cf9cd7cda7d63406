//! Template registries per WABA through the real `wabridge serve` (issue 21): two numbers of
//! two WABAs; serve's sync reads each WABA's templates with the token of its number (a stand-in
//! for Meta's `GET /{waba}/message_templates` and `POST /{phone}/messages`). A template only
//! MX's WABA has is refused from `soporte-co` (422 `template_not_found`, naming the template,
//! the language and the number) and sent from `ventas-mx`; a template webhook of CO's WABA
//! (`entry[].id`) gives CO's registry a template that MX's then lacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use wabridge_tests::gateway::{http_client, Gateway};

const SECRET: &str = "numbers-templates-secret";
const API_KEY: &str = "numbers-templates-api-key";
const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const WABA_MX: &str = "102290129340398";
const WABA_CO: &str = "202290129340398";

/// Which WABA's list was read with which token.
type Reads = Arc<Mutex<Vec<(String, String)>>>;

async fn templates(
    State(reads): State<Reads>,
    Path((_version, waba)): Path<(String, String)>,
    headers: HeaderMap,
) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    reads
        .lock()
        .unwrap()
        .push((waba.clone(), token.to_string()));
    let data = if waba == WABA_MX {
        json!([{"id": "1", "name": "pedido_enviado", "language": "es_MX", "status": "APPROVED",
                "category": "UTILITY", "components": [{"type": "BODY", "text": "Tu pedido va en camino"}]}])
    } else {
        json!([])
    };
    Json(json!({"data": data, "paging": {"cursors": {"after": "end"}}}))
}

async fn messages(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({"messaging_product": "whatsapp",
        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
        "messages": [{"id": "wamid.TPL1"}]}))
}

async fn meta() -> (String, Reads) {
    let reads = Reads::default();
    let app = Router::new()
        .route("/{version}/{waba}/message_templates", get(templates))
        .route("/{version}/{phone}/messages", post(messages))
        .with_state(reads.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, reads)
}

fn registry() -> String {
    let number = |label: &str, id: &str, waba: &str, key: &str| {
        format!(
            "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"{waba}\"\n\
             display_number = \"+52 55 5000 {}\"\ntoken_key = \"WHATSAPP_ACCESS_TOKEN_{key}\"\n\
             crm = {{ kind = \"local\" }}\n",
            &id[..4]
        )
    };
    number("ventas-mx", MX, WABA_MX, "MX") + &number("soporte-co", CO, WABA_CO, "CO")
}

async fn send(gw: &Gateway, template: &str, from: &str) -> (u16, Value) {
    let body = json!({"to": "+52 1 55 1234 5678", "template": template, "language": "es_MX",
                      "category": "UTILITY", "from": from});
    let r = http_client()
        .post(format!("{}/sends", gw.url))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_number_sends_the_templates_of_its_own_waba() {
    let (graph, reads) = meta().await;
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
    // Serve syncs both WABAs at start; CO's registry, synced and empty, then refuses.
    let refused = wabridge_tests::eventually(
        "CO's WABA to be synced",
        Duration::from_secs(30),
        || async {
            let (status, v) = send(&gw, "pedido_enviado", "soporte-co").await;
            (status == 422).then_some(v)
        },
    )
    .await;
    assert_eq!(refused["error"]["code"], "template_not_found", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    for part in ["pedido_enviado", "es_MX", "soporte-co"] {
        assert!(message.contains(part), "{message}");
    }
    let mut got = reads.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got[..2],
        [
            (WABA_MX.to_string(), "Bearer EAAG-mx-token-0001".to_string()),
            (WABA_CO.to_string(), "Bearer EAAG-co-token-0002".to_string()),
        ]
    );
    let (status, v) = send(&gw, "pedido_enviado", "ventas-mx").await;
    assert_eq!(status, 202, "{v}");

    // A template approved in CO's WABA (its webhook names the WABA as entry[].id).
    let approve = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_CO, "time": 1763780000,
        "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED",
        "message_template_id": 594425479261597_i64, "message_template_name": "soporte_ticket",
        "message_template_language": "es_MX", "reason": "NONE"}}]}]});
    let (status, v) = gw.post_signed(approve.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{v}");
    gw.wait_drained();
    let (status, v) = send(&gw, "soporte_ticket", "soporte-co").await;
    assert_eq!(status, 202, "{v}");
    let (status, v) = send(&gw, "soporte_ticket", "ventas-mx").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("template_not_found")),
        "{v}"
    );
}
