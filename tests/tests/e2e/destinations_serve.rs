//! Fan-out destinations through the real `wabridge serve` (issue 21, docs/destinations.md): two
//! numbers, each with its own CRM (the local CRM, a webhook receiver), and a bot (a `relay`
//! destination) filtered to `ventas-mx` and to `messages`. The bot receives exactly what its
//! filter selects, signed so that pywa's own signature check accepts it; while the bot is down
//! the CRMs get everything at once, and afterwards the bot gets everything exactly once; a
//! delivery the bot refuses is dead-lettered under its destination and redriven per
//! destination; bad destinations stop the start naming line and field.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use wabridge_tests::gateway::{self, Gateway};

const SECRET: &str = "destinations-serve-secret";
const BOT_SECRET: &str = "bot-secret-0123456789";
const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const WABA_MX: &str = "102290129340398";
const WABA_CO: &str = "202290129340398";

/// What a receiver got: each POST's body and `X-Hub-Signature-256`.
#[derive(Default)]
struct Bot {
    got: Mutex<Vec<(String, String)>>,
    /// The status it answers with (200 when up).
    answer: AtomicU16,
    attempts: AtomicUsize,
}

impl Bot {
    fn wamids(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(body, _)| {
                let v: Value = serde_json::from_str(body).unwrap();
                let value = &v["entry"][0]["changes"][0]["value"];
                value["messages"][0]["id"]
                    .as_str()
                    .or(value["statuses"][0]["id"].as_str())
                    .unwrap_or("other")
                    .to_string()
            })
            .collect()
    }

    /// Waits until it holds `n` deliveries (or `timeout`), then a moment more for any extra.
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        while self.got.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(700));
        self.wamids()
    }
}

async fn bot() -> (String, Arc<Bot>) {
    bot_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}

async fn bot_on(listener: tokio::net::TcpListener) -> (String, Arc<Bot>) {
    let bot = Arc::new(Bot::default());
    bot.answer.store(200, Ordering::SeqCst);
    let kept = bot.clone();
    let app = axum::Router::new().route(
        "/bot",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                kept.attempts.fetch_add(1, Ordering::SeqCst);
                let status = kept.answer.load(Ordering::SeqCst);
                if status == 200 {
                    let signature = headers
                        .get("x-hub-signature-256")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    kept.got.lock().unwrap().push((body, signature));
                }
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let url = format!("http://{}/bot", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bot)
}

/// A webhook CRM keeping the `message_id` of each activity it accepts.
async fn crm() -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/crm",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                let record: Value = serde_json::from_str(&body).unwrap();
                if record["kind"] == "activity" {
                    let id = record["message_id"].as_str().unwrap_or_default();
                    kept.lock().unwrap().push(id.to_string());
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/crm", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn registry(crm_url: &str, bot_url: &str) -> String {
    format!(
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

[[destination]]
name = "bot"
kind = "relay"
url = "{bot_url}"
secret_key = "BOT_SECRET"
events = ["messages"]
numbers = ["ventas-mx"]
"#
    )
}

const ENV: [(&str, &str); 6] = [
    ("WHATSAPP_APP_SECRET", SECRET),
    ("WHATSAPP_VERIFY_TOKEN", "t"),
    ("WHATSAPP_ACCESS_TOKEN_MX", "EAAG-mx-token-0000000001"),
    ("WHATSAPP_ACCESS_TOKEN_CO", "EAAG-co-token-0000000002"),
    ("CRM_WEBHOOK_SECRET_CO", "whsec_bnVtYmVycy1zZXJ2ZS1jbw=="),
    ("BOT_SECRET", BOT_SECRET),
];

fn start(data: &Path, file: &Path) -> Gateway {
    let mut env = ENV.to_vec();
    env.push(("WABRIDGE_NUMBERS", file.to_str().unwrap()));
    Gateway::start_in(data, &env)
}

fn message(waba: &str, number: &str, wamid: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": "5215512345678"}],
        "messages": [{"from": "5215512345678", "id": wamid, "timestamp": "1763780000", "type": "text",
                      "text": {"body": "¿Tienen envío a Monterrey?"}}]}}]}]})
}

fn status(waba: &str, number: &str, wamid: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "statuses": [{"id": wamid, "status": "delivered", "timestamp": "1763780001",
                      "recipient_id": "5215512345678"}]}}]}]})
}

async fn post(gw: &Gateway, body: &Value) {
    let (status, answer) = gw.post_signed(body.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
}

fn local_activities(gw: &Gateway) -> Vec<String> {
    let mut ids: Vec<String> = gw
        .records()
        .iter()
        .filter(|r| r["kind"] == "activity")
        .map(|r| r["message_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

/// The python of the venv the tests use (`WABRIDGE_VENV`, else `./.venv`), if pywa is there.
pub(crate) fn pywa_python() -> Option<PathBuf> {
    let venv = std::env::var("WABRIDGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| wabridge_tests::workspace_root().join(".venv"));
    let python = venv.join("bin/python");
    let has = Command::new(&python)
        .args(["-c", "import pywa"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    has.then_some(python)
}

/// pywa's verdict on each delivery under `secret`.
pub(crate) fn pywa_verdicts(python: &Path, secret: &str, got: &[(String, String)]) -> Vec<String> {
    use std::io::Write;
    let script = wabridge_tests::workspace_root().join("tests/scripts/pywa_verify.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (body, signature) in got {
        writeln!(stdin, "{}", json!({"body": body, "signature": signature})).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_gets_exactly_its_filter_signed_and_everything_once_after_an_outage() {
    let python = pywa_python();
    if python.is_none() && wabridge_tests::services_required() {
        panic!("pywa is not in the venv: scripts/requirements.txt installs it");
    }
    let (crm_url, co_crm) = crm().await;
    let (bot_url, bot) = bot().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    std::fs::write(&file, registry(&crm_url, &bot_url)).unwrap();
    let gw = start(&dir.path().join("data"), &file);

    // Interleaved: both numbers' messages, a status, a template update, and Meta redelivering
    // a message it already sent.
    let template = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_MX, "time": 1763780000, "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED", "message_template_id": 7,
         "message_template_name": "pedido_enviado", "message_template_language": "es", "reason": "NONE"}}]}]});
    for body in [
        message(WABA_MX, MX, "wamid.MX.1"),
        message(WABA_CO, CO, "wamid.CO.1"),
        status(WABA_MX, MX, "wamid.MX.1"),
        template,
        message(WABA_CO, CO, "wamid.CO.2"),
        message(WABA_MX, MX, "wamid.MX.2"),
        message(WABA_MX, MX, "wamid.MX.1"),
    ] {
        post(&gw, &body).await;
    }
    gw.wait_drained();
    assert_eq!(local_activities(&gw), ["wamid.MX.1", "wamid.MX.2"]);
    let mut co = co_crm.lock().unwrap().clone();
    co.sort();
    assert_eq!(co, ["wamid.CO.1", "wamid.CO.2"]);
    let mut got = bot.wait_for(2, Duration::from_secs(20));
    got.sort();
    assert_eq!(
        got,
        ["wamid.MX.1", "wamid.MX.2"],
        "the bot gets ventas-mx's messages only, once each"
    );
    // Meta's envelope around the change, as Meta sent it.
    let bodies: Vec<Value> = bot
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(body, _)| serde_json::from_str(body).unwrap())
        .collect();
    assert!(
        bodies.contains(&message(WABA_MX, MX, "wamid.MX.1")),
        "{bodies:?}"
    );

    // The bot is down: the CRMs get everything at once; the bot's deliveries wait.
    bot.answer.store(503, Ordering::SeqCst);
    for body in [
        message(WABA_MX, MX, "wamid.MX.3"),
        message(WABA_CO, CO, "wamid.CO.3"),
        message(WABA_MX, MX, "wamid.MX.4"),
        message(WABA_MX, MX, "wamid.MX.5"),
    ] {
        post(&gw, &body).await;
    }
    gw.wait_drained_for(Duration::from_secs(10));
    assert_eq!(
        local_activities(&gw),
        [
            "wamid.MX.1",
            "wamid.MX.2",
            "wamid.MX.3",
            "wamid.MX.4",
            "wamid.MX.5"
        ]
    );
    assert_eq!(co_crm.lock().unwrap().len(), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bot.attempts.load(Ordering::SeqCst) < 2 + 3 + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        bot.attempts.load(Ordering::SeqCst) >= 2 + 3 + 3,
        "each waiting delivery was retried"
    );
    assert_eq!(bot.got.lock().unwrap().len(), 2);

    // Back up: everything, exactly once.
    bot.answer.store(200, Ordering::SeqCst);
    let mut got = bot.wait_for(5, Duration::from_secs(60));
    got.sort();
    assert_eq!(
        got,
        [
            "wamid.MX.1",
            "wamid.MX.2",
            "wamid.MX.3",
            "wamid.MX.4",
            "wamid.MX.5"
        ]
    );

    // A standard receiver verifies every delivery: pywa's own check, with the bot's secret
    // (and not with the app's, which signed what Meta sent wabridge).
    match &python {
        Some(python) => {
            let got = bot.got.lock().unwrap().clone();
            assert_eq!(pywa_verdicts(python, BOT_SECRET, &got), vec!["valid"; 5]);
            assert_eq!(pywa_verdicts(python, SECRET, &got), vec!["invalid"; 5]);
        }
        None => eprintln!("pywa check skipped: run scripts/test.sh (installs pywa)"),
    }

    // A delivery the bot refuses is dead-lettered under its destination, then redriven.
    bot.answer.store(400, Ordering::SeqCst);
    post(&gw, &message(WABA_MX, MX, "wamid.MX.6")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let letters = gateway::json_lines(&gw.cli_ok(&["dead-letters", "list", "--json"]));
        if !letters.is_empty() || Instant::now() > deadline {
            break letters;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["queue"], "destination:bot");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("destination bot: refused the delivery: HTTP 400"),
        "{reason}"
    );
    // The CRM's queue is not the bot's: it gets the event all the same, on its own time.
    wabridge_tests::eventually(
        "the CRM got it all the same",
        Duration::from_secs(20),
        || {
            let n = local_activities(&gw).len();
            async move { (n == 6).then_some(()) }
        },
    )
    .await;
    bot.answer.store(200, Ordering::SeqCst);
    gw.cli_ok(&["dead-letters", "redrive", "--queue", "destination:bot"]);
    let got = bot.wait_for(6, Duration::from_secs(20));
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got.last().unwrap(), "wamid.MX.6");
    assert!(gw.terminate(), "serve stops cleanly");
}

/// A file with a destination and no `[[number]]`: today's one-number gateway, plus a bot. The
/// bot is not listening at first (connection refused): the CRM gets the events at once, the bot
/// once it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_without_numbers_keep_the_one_number_gateway() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bot_url = format!("http://{addr}/bot");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    std::fs::write(
        &file,
        format!(
            "[[destination]]\nname = \"n8n\"\nkind = \"relay\"\nurl = \"{bot_url}\"\nsecret_key = \"BOT_SECRET\"\n"
        ),
    )
    .unwrap();
    let gw = Gateway::start_in(
        &dir.path().join("data"),
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("BOT_SECRET", BOT_SECRET),
            ("WABRIDGE_NUMBERS", file.to_str().unwrap()),
        ],
    );
    post(&gw, &message(WABA_MX, MX, "wamid.1")).await;
    post(&gw, &status(WABA_MX, MX, "wamid.1")).await;
    gw.wait_drained();
    assert_eq!(local_activities(&gw), ["wamid.1"]);
    std::thread::sleep(Duration::from_millis(1500)); // refused attempts meanwhile
    let (_, bot) = bot_on(tokio::net::TcpListener::bind(addr).await.unwrap()).await;
    let mut got = bot.wait_for(2, Duration::from_secs(20));
    got.sort();
    assert_eq!(got, ["wamid.1", "wamid.1"], "a message and its status");
    assert!(gw.terminate());
}

/// Bad destinations stop `serve`, naming the file, line and field.
#[test]
fn bad_destinations_stop_the_start_naming_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    let good = registry("http://127.0.0.1:9/crm", "http://127.0.0.1:9/bot");
    let cases = [
        (
            good.replace("http://127.0.0.1:9/bot", "ftp://bot.example/x"),
            &ENV[..],
            "line 24: destination `bot`: `url` must be an http or https URL (scheme: ftp)",
        ),
        (
            good.clone(),
            &ENV[..5],
            "line 22: destination `bot`: `secret_key` names BOT_SECRET, which is not in the secret store",
        ),
        (
            good.replace("secret_key = \"BOT_SECRET\"\n", ""),
            &ENV[..],
            "line 22: destination `bot`: `secret_key` is required",
        ),
        (
            good.replace("[\"ventas-mx\"]", "[\"ventas-ar\"]"),
            &ENV[..],
            "line 27: destination `bot`: `numbers` names \"ventas-ar\", which is not the label of a number",
        ),
        (
            good.replace("[\"messages\"]", "[\"reactions\"]"),
            &ENV[..],
            "line 26: destination `bot`: `events` names \"reactions\"",
        ),
        (
            format!("{good}\n[[destination]]\nname = \"bot\"\nkind = \"relay\"\nurl = \"https://x.example\"\nsecret_key = \"BOT_SECRET\"\n"),
            &ENV[..],
            "line 30: destination `bot`: `name` duplicates the destination on line 22",
        ),
    ];
    for (text, env, expected) in cases {
        std::fs::write(&file, text).unwrap();
        let mut all = vec![("WABRIDGE_NUMBERS", file.to_str().unwrap())];
        all.extend_from_slice(env);
        let out = gateway::command(&all)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
        assert!(stderr.contains("WABRIDGE_NUMBERS"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
