//! Two numbers, two WABAs, two CRMs through the real `wabridge serve` (issue 21): `ventas-mx`
//! lands in the local CRM, `soporte-co` in a webhook CRM (a local HTTP receiver). Every event
//! lands in its own number's CRM only, its activities name the line, template and quality
//! updates find their number by WABA and by display digits, an erasure reaches both CRMs, and an
//! event of a number the registry does not know is dead-lettered as `unknown_number`, then
//! lands once the number is added and the dead letter redriven.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use wabridge_tests::gateway::{self, Gateway};

const SECRET: &str = "numbers-serve-secret";
const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const NEW: &str = "306540352242922";
const WABA_MX: &str = "102290129340398";
const WABA_CO: &str = "202290129340398";

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook CRM that keeps every record it accepts with its `webhook-id`.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/crm",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let record: Value = serde_json::from_str(&body).unwrap();
                kept.lock().unwrap().push((id, record));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn registry(crm_url: &str, with_new: bool) -> String {
    let mut text = format!(
        r#"
[[number]]
label = "ventas-mx"
phone_number_id = "{MX}"
waba_id = "{WABA_MX}"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}

[[number]]
label = "soporte-co"
phone_number_id = "{CO}"
waba_id = "{WABA_CO}"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
[number.crm]
kind = "webhook"
settings = {{ CRM_WEBHOOK_URL = "{crm_url}" }}
secrets = {{ CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_CO" }}
"#
    );
    if with_new {
        text.push_str(&format!(
            r#"
[[number]]
label = "nuevo-mx"
phone_number_id = "{NEW}"
waba_id = "{WABA_MX}"
display_number = "+52 55 5000 3333"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}
"#
        ));
    }
    text
}

fn start(data: &Path, file: &Path) -> Gateway {
    Gateway::start_in(
        data,
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WHATSAPP_VERIFY_TOKEN", "t"),
            ("WABRIDGE_NUMBERS", file.to_str().unwrap()),
            ("WHATSAPP_ACCESS_TOKEN_MX", "EAAG-mx-token-0000000001"),
            ("WHATSAPP_ACCESS_TOKEN_CO", "EAAG-co-token-0000000002"),
            ("CRM_WEBHOOK_SECRET_CO", "whsec_bnVtYmVycy1zZXJ2ZS1jbw=="),
        ],
    )
}

fn message(waba: &str, number: &str, wamid: &str, from: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": "1763780000", "type": "text",
                      "text": {"body": "Hola"}}]}}]}]})
}

async fn post(gw: &Gateway, body: Value) {
    let (status, answer) = gw.post_signed(body.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
}

fn activities_of(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| r["kind"] == "activity")
        .map(|r| {
            (
                r["message_id"].as_str().unwrap_or_default().to_string(),
                r["business_number"]["label"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            )
        })
        .collect()
}

fn kinds(records: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k.dedup();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_numbers_land_in_their_own_crms_and_an_unknown_number_waits_for_redrive() {
    let (url, received) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    std::fs::write(&file, registry(&url, false)).unwrap();
    let data = dir.path().join("data");
    let gw = start(&data, &file);

    post(&gw, message(WABA_MX, MX, "wamid.MX.1", "5215512345678")).await;
    post(&gw, message(WABA_CO, CO, "wamid.CO.1", "573001234567")).await;
    // Templates name only their WABA; quality updates only the display digits.
    post(&gw, json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_CO, "time": 1763780000, "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED", "message_template_id": 7,
         "message_template_name": "pedido_enviado", "message_template_language": "es", "reason": "NONE"}}]}]})).await;
    post(&gw, json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_MX, "time": 1763780001, "changes": [
        {"field": "phone_number_quality_update", "value": {"display_phone_number": "525550001111",
         "event": "FLAGGED", "current_limit": "TIER_1K"}}]}]})).await;
    post(&gw, message(WABA_MX, NEW, "wamid.NEW.1", "5215599999999")).await;
    gw.wait_drained();

    let local = gw.records();
    assert_eq!(
        activities_of(&local),
        vec![("wamid.MX.1".to_string(), "ventas-mx".to_string())],
        "the local CRM has the MX line's message only: {local:?}"
    );
    let mx = local.iter().find(|r| r["kind"] == "activity").unwrap();
    assert_eq!(mx["business_number"]["phone_number_id"], MX);
    assert_eq!(kinds(&local), ["activity", "contact", "lead", "quality"]);
    let remote: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(
        activities_of(&remote),
        vec![("wamid.CO.1".to_string(), "soporte-co".to_string())],
        "the webhook CRM has the CO line's message only: {remote:?}"
    );
    assert_eq!(
        kinds(&remote),
        ["activity", "contact", "lead", "template_status"]
    );

    // The unknown number's event is kept with its own reason, not dropped.
    let letters = gateway::json_lines(&gw.cli_ok(&["dead-letters", "list", "--json"]));
    assert_eq!(letters.len(), 1, "{letters:?}");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "unknown_number: phone_number_id {NEW} is not in the registry"
        )),
        "{reason}"
    );

    // An erasure reaches both CRMs: the local one deletes the MX customer's records, the
    // webhook CRM is told too (it may hold them from another line).
    let erased = gw.cli_ok(&["erase", "--contact", "+52 1 55 1234 5678"]);
    assert!(erased.contains("erasure"), "{erased}");
    gw.wait_drained();
    assert_eq!(activities_of(&gw.records()), vec![]);
    assert!(received
        .lock()
        .unwrap()
        .iter()
        .any(|(_, r)| r["kind"] == "erasure"));
    assert!(gw.terminate(), "serve stops cleanly");

    // Once the number is in the registry, the redriven event lands under its label.
    std::fs::write(&file, registry(&url, true)).unwrap();
    let gw = start(&data, &file);
    gw.cli_ok(&["dead-letters", "redrive"]);
    gw.wait_drained();
    assert_eq!(
        gateway::json_lines(&gw.cli_ok(&["dead-letters", "list", "--json"])).len(),
        0
    );
    let mut local = activities_of(&gw.records());
    local.sort();
    assert_eq!(
        local,
        vec![("wamid.NEW.1".to_string(), "nuevo-mx".to_string())]
    );
    let remote_activities = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["kind"] == "activity")
        .count();
    assert_eq!(remote_activities, 1, "nothing new reached the CO CRM");
}

/// A registry that cannot be used stops `serve` with a message naming the file, line and field.
#[test]
fn a_bad_registry_stops_the_start_naming_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    let run = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&file, text).unwrap();
        let mut all = vec![("WABRIDGE_NUMBERS", file.to_str().unwrap())];
        all.extend_from_slice(env);
        let out = gateway::command(&all)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let good = registry("http://127.0.0.1:9/crm", false);
    let tokens = [
        ("WHATSAPP_ACCESS_TOKEN_MX", "t1"),
        ("WHATSAPP_ACCESS_TOKEN_CO", "t2"),
        ("CRM_WEBHOOK_SECRET_CO", "s"),
    ];
    let cases = [
        (good.replace("[[number]]\nlabel = \"soporte-co\"", "[[number]\nlabel = \"soporte-co\""), &tokens[..], "line 10, column 10: unclosed array table"),
        (good.replace("label = \"soporte-co\"", "label = \"ventas-mx\""), &tokens[..], "line 11: number `ventas-mx`: `label` duplicates the number on line 3"),
        (good.replace(CO, MX), &tokens[..], "line 11: number `soporte-co`: `phone_number_id` duplicates the number on line 3"),
        (good.clone(), &tokens[..1], "line 11: number `soporte-co`: `token_key` names WHATSAPP_ACCESS_TOKEN_CO, which is not in the secret store"),
        (good.replace("kind = \"webhook\"", "kind = \"salesforce\""), &tokens[..], "line 11: number `soporte-co`: cannot set up its CRM target"),
    ];
    for (text, env, expected) in cases {
        let stderr = run(&text, env);
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
        assert!(stderr.contains("WABRIDGE_NUMBERS"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
