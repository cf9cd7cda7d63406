//! Logs proven clean: `wabridge serve` at `debug`, fed every sample webhook of `events/webhooks/`
//! (texts, names, phone numbers, BSUIDs, user preferences), sends and consents through the API,
//! and a CRM that refuses with its own error bodies (which quote the phone number) or is down.
//! Every log line, and `dead-letters list`, is scanned for the people's data and the secrets
//! the test used: none may appear.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// Secrets of this test (each must never appear).
const API_KEY: &str = "clean-logs-api-key-4f1c2d9e";
pub(crate) const CRM_SECRET: &str = "whsec_Y2xlYW4tbG9ncy1jcm0tc2VjcmV0";
/// The CRM webhook URL's path carries a token, as Zapier-style hooks do: the URL is a secret.
pub(crate) const HOOK_TOKEN: &str = "hooktok-7d3a91e5b2";

/// A CRM that refuses records quoting the phone number (HubSpot's validation errors do),
/// answers 503 to every third call, hangs past the client's timeout now and then, and accepts
/// the rest.
pub(crate) async fn crm() -> (String, Arc<Mutex<usize>>) {
    let calls = Arc::new(Mutex::new(0usize));
    let count = calls.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let count = count.clone();
        async move {
            let n = {
                let mut c = count.lock().unwrap();
                *c += 1;
                *c
            };
            // The first phone-like run of digits of the record.
            let text = String::from_utf8_lossy(&body);
            let phone: String = text
                .split(|c: char| !c.is_ascii_digit())
                .find(|run| run.len() >= 10 && run.len() <= 15)
                .unwrap_or("")
                .to_string();
            if n % 7 == 5 {
                // Past the client's 2 s timeout: reqwest's error would name the URL.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            match n % 3 {
                0 => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "upstream down".to_string(),
                ),
                1 if !phone.is_empty() => (
                    axum::http::StatusCode::BAD_REQUEST,
                    json!({"status": "error", "category": "VALIDATION_ERROR",
                        "message": format!("Property values were not valid: phone={phone}")})
                    .to_string(),
                ),
                _ => (axum::http::StatusCode::NO_CONTENT, String::new()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks/{HOOK_TOKEN}"), calls)
}

/// What the samples say about people: phone numbers and wa_ids, BSUIDs, usernames, profile
/// names, message texts and captions.
pub(crate) fn personal_data(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if let Value::String(s) = v {
                    let personal = matches!(
                        k.as_str(),
                        "wa_id"
                            | "from"
                            | "recipient_id"
                            | "user_id"
                            | "from_user_id"
                            | "username"
                            | "name"
                            | "body"
                            | "caption"
                            | "phone"
                            | "new_wa_id"
                    );
                    // Short values (a status name, "Sent") say nothing about anyone.
                    if personal && s.chars().count() >= 8 {
                        out.insert(s.clone());
                    }
                }
                personal_data(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| personal_data(i, out)),
        _ => {}
    }
}

/// Every sample webhook of `events/webhooks/`, in name order: its path and bytes.
pub(crate) fn samples() -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(workspace_root().join("events/webhooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let body = std::fs::read(&f).unwrap();
            (f, body)
        })
        .collect()
}

/// Every line of `texts` (`(where, line)`) that contains one of `people` or `secrets`.
pub(crate) fn leaks<'a>(
    texts: impl Iterator<Item = (&'a str, &'a str)>,
    people: &BTreeSet<String>,
    secrets: &[&str],
) -> Vec<String> {
    let mut found = Vec::new();
    for (source, text) in texts {
        for needle in people
            .iter()
            .map(String::as_str)
            .chain(secrets.iter().copied())
        {
            if text.contains(needle) {
                found.push(format!("{source}: {needle:?} in {text}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_debug_carry_no_personal_data_and_no_secret() {
    let (crm_url, calls) = crm().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("WHATSAPP_APP_SECRET", SECRET),
        ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
        ("WABRIDGE_API_KEY", API_KEY),
        ("CRM_KIND", "webhook"),
        ("CRM_WEBHOOK_URL", crm_url.as_str()),
        ("CRM_WEBHOOK_SECRET", CRM_SECRET),
        ("CRM_TIMEOUT_MS", "2000"),
        ("RUST_LOG", "debug"),
    ];
    let server = Gateway::start_in(dir.path(), &env);

    let mut people = BTreeSet::new();
    for (file, body) in samples() {
        personal_data(&serde_json::from_slice(&body).unwrap(), &mut people);
        let (status, v) = post_signed(&server.webhook(), &body).await;
        assert_eq!(status, 200, "{}: {v}", file.display());
    }
    assert!(people.len() > 30, "the samples name people: {people:?}");
    assert!(people.contains("5215512345678"));

    // Sends and consents through the API, with a number of their own.
    let client = gateway::http_client();
    let to = "+52 1 81 8765 4321";
    people.insert("5218187654321".into());
    people.insert("8187654321".into());
    let r = client
        .post(format!("{}/sends", server.url))
        .bearer_auth(API_KEY)
        .json(
            &json!({"to": to, "template": "order_update", "language": "es_MX",
            "category": "UTILITY", "parameters": ["Rosalía Menéndez"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    people.insert("Rosalía Menéndez".into());
    let r = client
        .post(format!("{}/consents", server.url))
        .bearer_auth(API_KEY)
        .json(
            &json!({"to": to, "category": "marketing", "action": "opt_in",
            "source": "web_form", "evidence": "formulario-contacto-rosalia"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    people.insert("formulario-contacto-rosalia".into());
    // An erasure: its CRM record names the person's numbers, and the CRM may refuse it.
    let r = client
        .delete(format!("{}/contacts/%2B5491123456789", server.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());

    // Let crm-sync work through the events (refusals, retries, dead letters).
    server.wait_drained_for(Duration::from_secs(60));
    assert!(*calls.lock().unwrap() > 10, "the CRM was called");
    let listed = server.cli_ok(&["dead-letters", "list", "--limit", "1000"]);
    assert!(!listed.trim().is_empty(), "some events were dead-lettered");

    let logs = server.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("DEBUG") || l.contains("\"level\":\"DEBUG\"")),
        "the server logged at debug"
    );
    let found = leaks(
        logs.iter()
            .map(|l| ("log", l.as_str()))
            .chain(listed.lines().map(|l| ("dead-letters list", l))),
        &people,
        &[SECRET, VERIFY_TOKEN, API_KEY, CRM_SECRET, HOOK_TOKEN],
    );
    assert!(
        found.is_empty(),
        "{} leaks:\n{}",
        found.len(),
        found.join("\n")
    );
    assert!(server.terminate());
}
