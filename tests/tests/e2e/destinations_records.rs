//! `records` destinations and `wabridge replay` through the real `wabridge serve` (issue 21,
//! docs/destinations.md): a records destination gets the canonical records of the events its
//! filter selects, signed the webhook CRM's way (verified here as a Standard Webhooks receiver
//! does), once each under Meta's redelivery; `wabridge replay` sends a relay bot and the
//! records destination a period's events again, nothing outside the period, and nothing of a
//! person erased meanwhile; bad arguments are refused naming the flag.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use wabridge_tests::gateway::Gateway;

const SECRET: &str = "destinations-records-secret";
const BOT_SECRET: &str = "bot-secret-0123456789";
/// Standard Webhooks form: `whsec_` + base64 of the key.
pub(crate) const RECORDS_SECRET: &str = "whsec_cmVjb3Jkcy1kZXN0aW5hdGlvbi1rZXk=";
const MX: &str = "106540352242922";
const WABA: &str = "102290129340398";
const ANA: &str = "5215512345678";
const LUIS: &str = "5215587654321";

/// What a receiver accepted: each POST's body and headers.
pub(crate) type Got = Arc<Mutex<Vec<(String, HeaderMap)>>>;

pub(crate) async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/in",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push((body, headers));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The Standard Webhooks check of the webhook CRM's receiver (tests/core/crm_http).
pub(crate) fn verify(headers: &HeaderMap, body: &str) -> Result<String, String> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (Some(id), Some(ts), Some(sig)) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    ) else {
        return Err("missing Standard Webhooks headers".into());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts.parse::<i64>().map_err(|e| e.to_string())?).abs() > 300 {
        return Err("webhook-timestamp outside tolerance".into());
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(RECORDS_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    match sig.split(' ').any(|s| s == expected) {
        true => Ok(id),
        false => Err(format!("bad signature {sig}")),
    }
}

/// The message ids of the activities a records receiver got, in order.
pub(crate) fn activities(got: &Got) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .filter_map(|(body, _)| {
            let r: Value = serde_json::from_str(body).unwrap();
            (r["kind"] == "activity").then(|| r["message_id"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The message ids a relay bot got, in order.
fn relayed(got: &Got) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(body, _)| {
            let v: Value = serde_json::from_str(body).unwrap();
            v["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
                .as_str()
                .unwrap_or("other")
                .to_string()
        })
        .collect()
}

/// Waits until `read` gives `n` items (or 30 s), then a moment more for any extra.
fn wait_for(n: usize, read: impl Fn() -> Vec<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while read().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    read()
}

fn registry(records_url: &str, bot_url: &str) -> String {
    format!(
        r#"
[[number]]
label = "ventas-mx"
phone_number_id = "{MX}"
waba_id = "{WABA}"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}

[[destination]]
name = "warehouse"
kind = "records"
url = "{records_url}"
secret_key = "RECORDS_SECRET"
events = ["messages"]

[[destination]]
name = "bot"
kind = "relay"
url = "{bot_url}"
secret_key = "BOT_SECRET"
events = ["messages"]
"#
    )
}

fn start(data: &Path, file: &Path) -> Gateway {
    let file = file.to_str().unwrap();
    Gateway::start_in(
        data,
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WHATSAPP_VERIFY_TOKEN", "t"),
            ("WHATSAPP_ACCESS_TOKEN_MX", "EAAG-mx-token-0000000001"),
            ("RECORDS_SECRET", RECORDS_SECRET),
            ("BOT_SECRET", BOT_SECRET),
            ("WABRIDGE_NUMBERS", file),
        ],
    )
}

fn message(from: &str, wamid: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": MX},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": "1763780000", "type": "text",
                      "text": {"body": "¿Tienen envío a Monterrey?"}}]}}]}]})
}

fn status(wamid: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": MX},
        "statuses": [{"id": wamid, "status": "delivered", "timestamp": "1763780001",
                      "recipient_id": ANA}]}}]}]})
}

async fn post(gw: &Gateway, body: &Value) {
    let (status, answer) = gw.post_signed(body.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
}

fn replay(gw: &Gateway, args: &[&str]) -> String {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    gw.cli_ok(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_destination_and_replay_through_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (records_url, records) = receiver().await;
    let (bot_url, bot) = receiver().await;
    let file = dir.path().join("numbers.toml");
    std::fs::write(&file, registry(&records_url, &bot_url)).unwrap();
    let data = dir.path().join("data");
    let gw = start(&data, &file);
    assert!(
        gw.startup_lines
            .iter()
            .any(|l| l.contains("destination warehouse: records")),
        "{:?}",
        gw.startup_lines
    );

    // Ana's message (redelivered by Meta), a status (not `messages`), Luis's message.
    post(&gw, &message(ANA, "wamid.ANA")).await;
    post(&gw, &status("wamid.SENT")).await;
    post(&gw, &message(ANA, "wamid.ANA")).await;
    post(&gw, &message(LUIS, "wamid.LUIS")).await;
    gw.wait_drained();
    let mut got = wait_for(2, || activities(&records));
    got.sort();
    assert_eq!(got, ["wamid.ANA", "wamid.LUIS"], "once each, no status");
    let mut got = wait_for(2, || relayed(&bot));
    got.sort();
    assert_eq!(got, ["wamid.ANA", "wamid.LUIS"]);
    // Every record is signed under the destination's secret, each effect with its own id.
    let mut ids = Vec::new();
    for (body, headers) in records.lock().unwrap().iter() {
        ids.push(verify(headers, body).unwrap_or_else(|e| panic!("{e}: {body}")));
        assert_eq!(headers["content-type"], "application/json");
    }
    let kinds: Vec<String> = records
        .lock()
        .unwrap()
        .iter()
        .map(|(b, _)| serde_json::from_str::<Value>(b).unwrap()["kind"].to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "\"contact\""), "{kinds:?}");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no record posted twice: {ids:?}");
    // The same contact id as the CRM's (the identity store is shared).
    let local_contacts: Vec<String> = gw
        .records()
        .iter()
        .filter(|r| r["kind"] == "activity")
        .map(|r| r["contact_id"].as_str().unwrap().to_string())
        .collect();
    for (body, _) in records.lock().unwrap().iter() {
        let r: Value = serde_json::from_str(body).unwrap();
        if r["kind"] == "activity" {
            let id = r["contact_id"].as_str().unwrap().to_string();
            assert!(
                local_contacts.contains(&id),
                "{id} not in {local_contacts:?}"
            );
        }
    }

    // Ana's deliveries move three hours back: `--since 2h` leaves them out.
    let db = rusqlite::Connection::open(data.join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let moved = db
        .execute(
            "UPDATE destination_deliveries SET delivered_at = delivered_at - 3 * 3600000
             WHERE key LIKE '%wamid.ANA%'",
            [],
        )
        .unwrap();
    assert_eq!(moved, 2, "one per destination");
    let out = replay(&gw, &["--destination", "bot", "--since", "2h"]);
    assert!(
        out.contains("enqueued 1 deliveries on destination:bot"),
        "{out}"
    );
    // The first two were delivered concurrently, in either order; the replay comes after.
    assert_eq!(wait_for(3, || relayed(&bot))[2..], ["wamid.LUIS"]);
    let out = replay(
        &gw,
        &["--destination", "bot", "--since", "4h", "--until", "2h"],
    );
    assert!(out.contains("enqueued 1 deliveries"), "{out}");
    assert_eq!(
        wait_for(4, || relayed(&bot))[2..],
        ["wamid.LUIS", "wamid.ANA"]
    );

    // Luis is erased: his deliveries are not replayed; Ana's records are posted again.
    let erased = gw.cli_ok(&["erase", "--contact", "+52 1 55 8765 4321"]);
    assert!(erased.contains("erasure"), "{erased}");
    let out = replay(&gw, &["--destination", "warehouse", "--since", "4h"]);
    assert!(
        out.contains("enqueued 1 deliveries on destination:warehouse"),
        "{out}"
    );
    assert_eq!(wait_for(3, || activities(&records))[2..], ["wamid.ANA"]);
    let out = replay(&gw, &["--destination", "bot", "--since", "4h"]);
    assert!(out.contains("enqueued 1 deliveries"), "{out}");
    assert_eq!(wait_for(5, || relayed(&bot)).last().unwrap(), "wamid.ANA");
    assert_eq!(relayed(&bot).len(), 5);
    for (body, headers) in records.lock().unwrap().iter() {
        verify(headers, body).unwrap_or_else(|e| panic!("{e}: {body}"));
    }

    // Bad arguments name their flag.
    for (args, flag) in [
        (
            vec!["--destination", "nope", "--since", "2h"],
            "--destination",
        ),
        (vec!["--destination", "bot", "--since", "soon"], "--since"),
        (
            vec!["--destination", "bot", "--since", "1h", "--until", "2h"],
            "--until",
        ),
    ] {
        let mut all = vec!["replay"];
        all.extend_from_slice(&args);
        let out = gw.cli(&all, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    assert!(gw.terminate(), "serve stops cleanly");

    // On a stopped gateway, a replay waits in the queue for the next start.
    let out = wabridge_tests::gateway::cli_ok(
        &data,
        &["replay", "--destination", "bot", "--since", "4h"],
        &[("WABRIDGE_NUMBERS", file.to_str().unwrap())],
    );
    assert!(out.contains("enqueued 1 deliveries"), "{out}");
    let gw = start(&data, &file);
    assert_eq!(wait_for(6, || relayed(&bot)).len(), 6);
    assert!(gw.terminate());
}
