//! Scoped API keys through `wabridge serve`: keys from the secrets file (and
//! `WABRIDGE_API_KEYS`), each route behind its scope, a bad key list stopping the start.

use std::path::Path;

use serde_json::json;

use super::*;

/// The secrets file `serve` reads at start, with scoped keys beside the admin key.
fn write_secrets(data: &Path, api_keys: serde_json::Value) {
    std::fs::create_dir_all(data).unwrap();
    let secrets = json!({
        "app_secret": SECRET,
        "verify_token": VERIFY_TOKEN,
        "api_key": "local-admin-key-0123456789",
        "api_keys": api_keys,
    });
    std::fs::write(data.join("secrets.json"), secrets.to_string()).unwrap();
}

async fn call(method: reqwest::Method, url: &str, key: &str) -> (u16, serde_json::Value) {
    let r = gateway::http_client()
        .request(method, url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn serve_puts_each_route_behind_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(
        dir.path(),
        json!([
            {"id": "crm-sends", "scopes": ["sends"], "key": "local-sends-key-0123456789"},
            {"id": "bi", "scopes": ["read"], "key": "local-read-key-0123456789"}
        ]),
    );
    let server = Gateway::start_in(dir.path(), &[]);
    let sends = format!("{}/sends", server.url);
    let send = format!("{}/sends/nope", server.url);
    let links = format!("{}/links", server.url);

    // The read key may look, not send; the sends key may send (400: an empty body), not look.
    let (status, body) = call(reqwest::Method::POST, &sends, "local-read-key-0123456789").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`sends`"),
        "{body}"
    );
    let (status, _) = call(reqwest::Method::GET, &send, "local-read-key-0123456789").await;
    assert_eq!(status, 404);
    let (status, body) = call(reqwest::Method::POST, &sends, "local-sends-key-0123456789").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(reqwest::Method::GET, &send, "local-sends-key-0123456789").await;
    assert_eq!(status, 403);
    // /links needs admin: the admin key of the same file reaches it.
    let (status, _) = call(reqwest::Method::POST, &links, "local-sends-key-0123456789").await;
    assert_eq!(status, 403);
    let (status, _) = call(reqwest::Method::POST, &links, "local-admin-key-0123456789").await;
    assert_eq!(
        status, 400,
        "past the key: the empty link request is refused"
    );
    let (status, _) = call(reqwest::Method::GET, &send, "not-a-key-0123456789").await;
    assert_eq!(status, 401);

    // Writes that took effect leave audit lines naming the key's id and the record, never the
    // key or the number; refused calls leave none.
    // Sent twice with one Idempotency-Key: one send, one line.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let accepted = gateway::http_client()
            .post(&sends)
            .bearer_auth("local-sends-key-0123456789")
            .header("idempotency-key", "crm-deal-77")
            .json(
                &json!({"to": "+52 1 55 1234 5678", "template": "order_update",
                "language": "es_MX", "category": "UTILITY"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status().as_u16(), 202);
        let body = accepted.json::<serde_json::Value>().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    let id = ids.remove(0);
    let link = gateway::http_client()
        .post(&links)
        .bearer_auth("local-admin-key-0123456789")
        .json(
            &json!({"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
            "phone_number": "+52 1 55 1234 5678"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(link.status().as_u16(), 201);
    let code = link.json::<serde_json::Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let out = server.cli_ok(&["audit", "--json"]);
    let lines = gateway::json_lines(&out);
    let seen: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["actor"].as_str().unwrap().to_string(),
                l["action"].as_str().unwrap().to_string(),
                l["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("key:crm-sends".to_string(), "send".to_string(), id),
            ("key:default".to_string(), "link".to_string(), code),
        ],
        "{out}"
    );
    for secret in ["5512345678", "key-0123456789"] {
        assert!(!out.contains(secret), "{secret} in the audit trail: {out}");
    }
    // The CLI's own writes are lines too.
    server.cli_ok(&[
        "link",
        "create",
        "--utm-source",
        "flyer",
        "--utm-medium",
        "print",
        "--utm-campaign",
        "expo",
        "--phone",
        "+52 1 55 1234 5678",
    ]);
    let lines = gateway::json_lines(&server.cli_ok(&["audit", "--json", "--since", "1h"]));
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["actor"], "cli");
    assert_eq!(lines[2]["action"], "link");
    assert!(server.terminate());
}

/// An unknown scope, in the secrets file or in `WABRIDGE_API_KEYS`, stops the start and names
/// it; the key itself never appears in the message.
#[test]
fn serve_refuses_an_unknown_scope() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(
        dir.path(),
        json!([{"id": "crm", "scopes": ["write"], "key": "local-secret-key-0123456789"}]),
    );
    let out = gateway::command(&[])
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("\"write\"") && err.contains("WABRIDGE_API_KEYS"),
        "{err}"
    );
    assert!(!err.contains("local-secret-key"), "{err}");

    let other = tempfile::tempdir().unwrap();
    let out = gateway::command(&[(
        "WABRIDGE_API_KEYS",
        r#"[{"id": "crm", "scopes": ["everything"], "key": "local-secret-key-0123456789"}]"#,
    )])
    .args(["serve", "--addr", "127.0.0.1:0", "--data"])
    .arg(other.path())
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("\"everything\""), "{err}");

    // A secret of the wrong type in the secrets file: the error says where, never the value.
    let typo = tempfile::tempdir().unwrap();
    std::fs::write(
        typo.path().join("secrets.json"),
        r#"{"app_secret": "s", "verify_token": "t", "api_key": 9876543210987654321}"#,
    )
    .unwrap();
    let out = gateway::command(&[])
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(typo.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("secrets.json") && err.contains("line 1"),
        "{err}"
    );
    assert!(!err.contains("9876543210987654321"), "{err}");
}
