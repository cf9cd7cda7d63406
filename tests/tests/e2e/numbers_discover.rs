//! `wabridge numbers discover` (the real binary) against Prism serving Meta's spec, behind a
//! loopback front: every request goes to Prism first (a request that breaks Meta's schema gets
//! Prism's error back, and the command fails), then the front answers the canned body of the
//! scene: two WABAs, the first listed over two pages with one number already registered and
//! one registered number it no longer lists, the second subscribed with a callback override
//! elsewhere, one number with its own override.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wabridge_core::numbers::Numbers;
use wabridge_tests::gateway::cli;
use wabridge_tests::prism::{spec_keeping, Prism};

pub(crate) const A: &str = "102290129340398";
pub(crate) const B: &str = "202290129340398";
/// Registered (ventas-mx), on A's first page.
pub(crate) const MX: &str = "106540352242922";
/// New, on A's first page, with its own override.
pub(crate) const MX2: &str = "106540352243333";
/// New, on A's second page.
pub(crate) const MX3: &str = "106540352244444";
/// New, B's only number.
pub(crate) const US: &str = "206540352245555";
pub(crate) const MX_TOKEN: &str = "EAAG-discover-mx-0001";
pub(crate) const B_TOKEN: &str = "EAAG-discover-b-0002";
const ELSEWHERE: &str = "https://elsewhere.example/webhook";
const BOT: &str = "https://bot.example/hook";

/// What the front saw: path, query, `Authorization`, Prism's status.
type Seen = Arc<Mutex<Vec<(String, String, String, u16)>>>;

fn number(id: &str, display: &str, name: &str, cc: &str) -> Value {
    json!({"id": id, "display_phone_number": display, "verified_name": name, "status": "CONNECTED",
           "quality_rating": "GREEN", "country_code": cc})
}

/// Meta's answer to `path?query` once Prism accepted the request.
fn canned(path: &str, query: &str, auth: &str) -> (u16, Value) {
    if auth == "Bearer bad-token" {
        return (
            401,
            json!({"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": "AbC"}}),
        );
    }
    let after = query.contains("after=QVFIUPAGE2");
    let path = path.trim_start_matches("/v23.0/");
    let body = match path.split_once('/') {
        Some((A, "phone_numbers")) if !after => json!({
            "data": [number(MX, "+52 55 5000 1111", "Ventas", "MX"),
                     number(MX2, "+52 55 5000 3333", "Panadería Núñez", "MX")],
            "paging": {"cursors": {"before": "QVFIUPAGE1", "after": "QVFIUPAGE2"},
                       "next": format!("https://graph.facebook.com/v23.0/{A}/phone_numbers?after=QVFIUPAGE2")}}),
        Some((A, "phone_numbers")) => json!({
            "data": [number(MX3, "+52 55 5000 4444", "Ventas Norte", "MX")],
            "paging": {"cursors": {"before": "QVFIUPAGE2", "after": "QVFIUPAGE3"}}}),
        Some((B, "phone_numbers")) => json!({
            "data": [number(US, "+1 631-555-5555", "Jasper's Market", "US")]}),
        Some((A, "subscribed_apps")) => json!({
            "data": [{"whatsapp_business_api_data": {"id": "11", "name": "wabridge"}}]}),
        Some((B, "subscribed_apps")) => json!({
            "data": [{"whatsapp_business_api_data": {"id": "11", "name": "wabridge"},
                      "override_callback_uri": ELSEWHERE}]}),
        None if path == MX2 => json!({"id": MX2, "webhook_configuration": {"phone_number": BOT}}),
        None => json!({"id": path}),
        _ => {
            return (
                404,
                json!({"error": {"message": "unknown path", "type": "x", "code": 100}}),
            )
        }
    };
    (200, body)
}

/// A loopback "Graph API": each GET goes to Prism, then gets the canned answer.
pub(crate) async fn front(prism: &Prism) -> (String, Seen) {
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    let seen: Seen = Arc::default();
    let upstream = prism.url().to_string();
    let kept = seen.clone();
    let forward = move |uri: Uri, headers: HeaderMap| {
        let (upstream, kept) = (upstream.clone(), kept.clone());
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let query = uri.query().unwrap_or_default().to_string();
            let r = reqwest::Client::new()
                .get(format!("{upstream}{uri}"))
                .header("authorization", header("authorization"))
                .header("user-agent", header("user-agent"))
                .header("accept", header("accept"))
                .send()
                .await
                .unwrap();
            let prism_status = r.status().as_u16();
            let prism_body = r.text().await.unwrap_or_default();
            kept.lock().unwrap().push((
                uri.path().to_string(),
                query.clone(),
                header("authorization"),
                prism_status,
            ));
            let (status, body) = if (200..300).contains(&prism_status) {
                let (s, b) = canned(uri.path(), &query, &header("authorization"));
                (s, b.to_string())
            } else {
                (prism_status, prism_body)
            };
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body,
            )
                .into_response()
        }
    };
    let app = axum::Router::new().fallback(axum::routing::get(forward));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

const REGISTRY: &str = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "local" }

[[number]]
label = "viejo-mx"
phone_number_id = "106540352249999"
waba_id = "102290129340398"
display_number = "+52 55 5000 9999"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "local" }
"#;

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_every_page_suggests_entries_and_warns_about_overrides() {
    let spec_dir = tempfile::tempdir().unwrap();
    let Some(spec) = spec_keeping(spec_dir.path(), "/{Version}/{Phone-Number-ID}") else {
        return;
    };
    let Some(prism) = Prism::start_with_spec(&spec) else {
        return;
    };
    let (graph, seen) = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("numbers.toml");
    std::fs::write(&file, REGISTRY).unwrap();
    let file = file.to_str().unwrap();
    let env = |b_token: &'static str| {
        vec![
            ("WHATSAPP_API_URL", graph.clone()),
            ("WABRIDGE_NUMBERS", file.to_string()),
            ("WHATSAPP_ACCESS_TOKEN_MX", MX_TOKEN.to_string()),
            ("WHATSAPP_ACCESS_TOKEN", b_token.to_string()),
        ]
    };
    let run = |args: &[&str], env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = vec!["numbers", "discover"];
        all.extend_from_slice(args);
        cli(&data, &all, &env)
    };

    let out = run(&["--waba", A, "--waba", B], &env(B_TOKEN));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // Every request was one Meta's spec accepts, with the token of its WABA.
    let requests = seen.lock().unwrap().clone();
    for (path, query, auth, status) in &requests {
        assert!(
            (200..300).contains(status),
            "Prism refused {path}?{query}: {status}"
        );
        let token = if path.contains(B) || path.ends_with(US) {
            B_TOKEN
        } else {
            MX_TOKEN
        };
        assert_eq!(auth, &format!("Bearer {token}"), "{path}");
    }
    let pages: Vec<&String> = requests
        .iter()
        .filter(|(p, ..)| p == &format!("/v23.0/{A}/phone_numbers"))
        .map(|(_, q, ..)| q)
        .collect();
    assert_eq!(pages.len(), 2, "{requests:?}");
    assert!(pages.iter().all(|q| q.contains("limit=100")), "{pages:?}");
    assert!(pages[1].contains("after=QVFIUPAGE2"), "{pages:?}");
    for id in [MX, MX2, MX3, US] {
        assert!(
            requests
                .iter()
                .any(|(p, q, ..)| p == &format!("/v23.0/{id}")
                    && q.contains("fields=webhook_configuration")),
            "{id}: {requests:?}"
        );
    }
    // The registered number is named; the three others come as entries that parse.
    assert!(
        stdout.contains(&format!("# ventas-mx ({MX}) is already in the registry")),
        "{stdout}"
    );
    let pasted = Numbers::parse("numbers.toml", format!("{}\n{stdout}", REGISTRY).as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let added: Vec<(&str, &str, &str)> = pasted.all()[2..]
        .iter()
        .map(|n| {
            (
                n.label.as_str(),
                n.phone_number_id.as_str(),
                n.waba_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        added,
        [
            ("panaderia-nunez-mx", MX2, A),
            ("ventas-norte-mx", MX3, A),
            ("jaspers-market-us", US, B)
        ]
    );
    assert_eq!(pasted.all()[4].token_key, "WHATSAPP_ACCESS_TOKEN");
    assert_eq!(pasted.all()[2].token_key, "WHATSAPP_ACCESS_TOKEN_MX");
    assert!(stdout.contains("# Jasper's Market (US): quality GREEN, status CONNECTED"));
    // Warnings: B's override elsewhere, MX2's own override, viejo-mx no longer listed.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 3, "{stderr}");
    assert!(stderr.contains(&format!("WABA {B}'s subscription of app wabridge (11) overrides the callback URL: Meta sends this WABA's messages, calls and echoes to {ELSEWHERE}")), "{stderr}");
    assert!(
        stderr.contains(&format!("number {MX2} of WABA {A} overrides the callback URL: Meta sends its messages, calls and echoes to {BOT}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("number viejo-mx (106540352249999) is in the registry under WABA {A}, which no longer lists it")),
        "{stderr}"
    );
    for token in [MX_TOKEN, B_TOKEN] {
        assert!(!stdout.contains(token) && !stderr.contains(token));
    }

    // --callback-url: an override pointing at wabridge is fine; one elsewhere names both.
    let out = run(
        &["--waba", A, "--waba", B, "--callback-url", BOT, "--json"],
        &env(B_TOKEN),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(&format!("number {MX2}")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "to {ELSEWHERE}, not to --callback-url {BOT}, so they never reach wabridge"
        )),
        "{stderr}"
    );
    let objects = wabridge_tests::gateway::json_lines(&text(&out.stdout));
    assert_eq!(objects.len(), 4);
    assert_eq!(objects[0]["registered"], "ventas-mx");
    assert_eq!(objects[1]["override_callback_uri"], BOT);
    assert_eq!(objects[3]["suggested_label"], "jaspers-market-us");

    // Without --waba: the registry's WABAs only (A).
    let before = seen.lock().unwrap().len();
    let out = run(&[], &env(B_TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(seen.lock().unwrap()[before..]
        .iter()
        .all(|(p, ..)| !p.contains(B) && !p.ends_with(US)));

    // A token Meta refuses: the error names the WABA and Meta's message, never the token.
    let out = run(&["--waba", B], &env("bad-token"));
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("error: cannot list the numbers of WABA {B}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Invalid OAuth access token - Cannot parse access token"),
        "{stderr}"
    );
    assert!(!stderr.contains("bad-token"), "{stderr}");

    // No token at all: refused before any request, naming the key.
    let before = seen.lock().unwrap().len();
    let mut no_token = env(B_TOKEN);
    no_token.retain(|(k, _)| *k != "WHATSAPP_ACCESS_TOKEN");
    let out = run(&["--waba", A, "--waba", B], &no_token);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "no token for WABA {B}: WHATSAPP_ACCESS_TOKEN is not set"
        )),
        "{stderr}"
    );
    assert_eq!(seen.lock().unwrap().len(), before);

    // No registry and no --waba: the error names --waba.
    let out = cli(
        &data,
        &["numbers", "discover"],
        &[("WHATSAPP_API_URL", graph.as_str())],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no WABA to discover: pass --waba ID"),
        "{}",
        text(&out.stderr)
    );
}
