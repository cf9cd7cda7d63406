//! The template tools per WABA (issue 21), through the binary, with a numbers registry of two
//! numbers in two WABAs and a stand-in for Meta that keeps each WABA's templates apart and
//! accepts only that WABA's token (`GET`/`POST /{version}/{waba-id}/message_templates`):
//! `templates status` and `report health` show each WABA's templates with its numbers,
//! `--waba` picks one and an unknown one is refused naming the flag and the WABAs; `plan` needs
//! `--waba` with two WABAs, and against CO's WABA does not see MX's templates; `apply` creates
//! in CO's WABA with CO's token; the history is CO's alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wabridge_tests::gateway::{cli, json_lines};

const MX: &str = "106540352242922";
const CO: &str = "206540352242922";
const WABA_MX: &str = "102290129340398";
const WABA_CO: &str = "202290129340398";
const TOKEN_MX: &str = "EAAG-mx-token-0001";
const TOKEN_CO: &str = "EAAG-co-token-0002";

#[derive(Default)]
struct Meta {
    /// Each WABA's templates.
    templates: BTreeMap<String, Vec<Value>>,
    /// Every request: method, WABA, bearer token, template name (creates).
    requests: Vec<(String, String, String, Option<String>)>,
}

type Shared = Arc<Mutex<Meta>>;

fn token_of(waba: &str) -> &'static str {
    if waba == WABA_MX {
        TOKEN_MX
    } else {
        TOKEN_CO
    }
}

fn bearer(headers: &HeaderMap) -> String {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    auth.unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string()
}

fn refused() -> axum::response::Response {
    let e = json!({"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}});
    (StatusCode::UNAUTHORIZED, Json(e)).into_response()
}

async fn list(
    State(meta): State<Shared>,
    UrlPath((_version, waba)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    let mut m = meta.lock().unwrap();
    let token = bearer(&headers);
    m.requests
        .push(("GET".into(), waba.clone(), token.clone(), None));
    if token != token_of(&waba) {
        return refused();
    }
    let data = m.templates.get(&waba).cloned().unwrap_or_default();
    Json(json!({"data": data, "paging": {"cursors": {"after": "end"}}})).into_response()
}

async fn create(
    State(meta): State<Shared>,
    UrlPath((_version, waba)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let mut m = meta.lock().unwrap();
    let token = bearer(&headers);
    let name = body["name"].as_str().map(str::to_string);
    m.requests
        .push(("POST".into(), waba.clone(), token.clone(), name));
    if token != token_of(&waba) {
        return refused();
    }
    let id = format!("13000000000000{:02}", m.requests.len());
    let mut created = body.clone();
    created["id"] = json!(id);
    created["status"] = json!("PENDING");
    m.templates.entry(waba).or_default().push(created);
    Json(json!({"id": id, "status": "PENDING", "category": body["category"]})).into_response()
}

async fn meta() -> (String, Shared) {
    let shared = Shared::default();
    {
        let mut m = shared.lock().unwrap();
        m.templates.insert(WABA_MX.into(), vec![json!({"id": "1200000000000001",
            "name": "pedido_enviado", "language": "es_MX", "status": "APPROVED",
            "category": "UTILITY", "components": [{"type": "BODY", "text": "Tu pedido {{1}} va en camino",
            "example": {"body_text": [["MX-1"]]}}]})]);
        m.templates.insert(
            WABA_CO.into(),
            vec![json!({"id": "2200000000000001",
            "name": "aviso_cita", "language": "es_CO", "status": "REJECTED",
            "rejected_reason": "INVALID_FORMAT", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Tu cita es mañana"}]})],
        );
    }
    let app = Router::new()
        .route(
            "/{version}/{waba}/message_templates",
            get(list).post(create),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, shared)
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

const PEDIDO: &str = r#"name = "pedido_enviado"
category = "UTILITY"
[languages.es_MX]
body.text = "Tu pedido {{1}} va en camino"
body.examples = ["MX-1"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_tool_works_per_waba() {
    let (url, meta) = meta().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numbers.toml");
    std::fs::write(&file, registry()).unwrap();
    let folder = dir.path().join("templates");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("pedido_enviado.toml"), PEDIDO).unwrap();
    let data = dir.path().join("data");
    let env: Vec<(String, String)> = [
        ("WHATSAPP_API_URL", url.as_str()),
        ("WABRIDGE_NUMBERS", file.to_str().unwrap()),
        ("WHATSAPP_ACCESS_TOKEN_MX", TOKEN_MX),
        ("WHATSAPP_ACCESS_TOKEN_CO", TOKEN_CO),
        ("WABRIDGE_TEMPLATES", folder.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let run = |args: Vec<&str>| {
        let (data, env) = (data.clone(), env.clone());
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cli(&data, &args, &env);
            let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
            (out.status.code(), text(&out.stdout), text(&out.stderr))
        })
    };

    let (code, _, err) = run(vec!["templates", "sync"]).await.unwrap();
    assert_eq!(code, Some(0), "{err}");

    // Status: both WABAs' templates, each with its WABA and numbers.
    let (code, out, err) = run(vec!["templates", "status", "--json"]).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<(String, String, Value)> = json_lines(&out)
        .into_iter()
        .map(|r| {
            (
                r["waba_id"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
                r["numbers"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                WABA_MX.into(),
                "pedido_enviado".into(),
                json!(["ventas-mx"])
            ),
            (WABA_CO.into(), "aviso_cita".into(), json!(["soporte-co"])),
        ]
    );
    let (_, out, _) = run(vec!["templates", "status"]).await.unwrap();
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("pedido_enviado").starts_with(WABA_MX), "{out}");
    assert!(
        line("aviso_cita").starts_with(WABA_CO) && line("aviso_cita").contains("soporte-co"),
        "{out}"
    );
    let (_, out, _) = run(vec![
        "templates",
        "status",
        "--waba",
        "soporte-co",
        "--json",
    ])
    .await
    .unwrap();
    let names: Vec<Value> = json_lines(&out).iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, [json!("aviso_cita")]);
    let (code, _, err) = run(vec!["templates", "status", "--waba", "ventas-ar"])
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    for part in [
        "--waba",
        "\"ventas-ar\"",
        &format!("{WABA_MX} (ventas-mx)"),
        &format!("{WABA_CO} (soporte-co)"),
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }

    // Health: the rejected template, with its WABA; none for MX's alone.
    let (code, out, err) = run(vec!["report", "health", "--format", "json"])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let health: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(health["templates"][0]["name"], "aviso_cita", "{health}");
    assert_eq!(health["templates"][0]["waba_id"], WABA_CO, "{health}");
    assert_eq!(
        health["templates"][0]["numbers"],
        json!(["soporte-co"]),
        "{health}"
    );
    let (_, out, _) = run(vec!["report", "health", "--waba", WABA_MX])
        .await
        .unwrap();
    assert!(out.contains("TEMPLATES NOT APPROVED\n  none"), "{out}");

    // Plan: which WABA the files are for is required with two.
    let (code, _, err) = run(vec!["templates", "plan"]).await.unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--waba") && err.contains("several WABAs") && err.contains(WABA_CO),
        "{err}"
    );
    // CO's WABA lacks MX's pedido_enviado: a create there; MX's has it.
    let (code, out, err) = run(vec!["templates", "plan", "--waba", "soporte-co"])
        .await
        .unwrap();
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains(&format!("WABA {WABA_CO} (soporte-co)")),
        "{out}"
    );
    assert!(out.contains("+ pedido_enviado [es_MX]"), "{out}");
    let (_, out, err) = run(vec!["templates", "plan", "--waba", "ventas-mx"])
        .await
        .unwrap();
    assert!(!out.contains("+ pedido_enviado"), "{out}{err}");

    // Apply: the create goes to CO's WABA with CO's token, and only there.
    meta.lock().unwrap().requests.clear();
    let (code, out, err) = run(vec![
        "templates",
        "apply",
        "--waba",
        "soporte-co",
        "--by",
        "ci:co",
    ])
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("created pedido_enviado [es_MX]"), "{out}");
    let posts: Vec<_> = meta
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.0 == "POST")
        .cloned()
        .collect();
    assert_eq!(
        posts,
        [(
            "POST".to_string(),
            WABA_CO.to_string(),
            TOKEN_CO.to_string(),
            Some("pedido_enviado".to_string())
        )]
    );
    assert!(meta
        .lock()
        .unwrap()
        .requests
        .iter()
        .all(|r| r.1 == WABA_CO && r.2 == TOKEN_CO));

    // The history is CO's.
    let (code, out, err) = run(vec![
        "templates",
        "history",
        "pedido_enviado",
        "--waba",
        WABA_CO,
        "--json",
    ])
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let changes = json_lines(&out);
    assert_eq!(changes.len(), 1, "{out}");
    assert_eq!(
        (
            changes[0]["action"].as_str(),
            changes[0]["applied_by"].as_str()
        ),
        (Some("create"), Some("ci:co"))
    );
    let (_, out, err) = run(vec![
        "templates",
        "history",
        "pedido_enviado",
        "--waba",
        "ventas-mx",
    ])
    .await
    .unwrap();
    assert!(
        out.is_empty() && err.contains("no change applied"),
        "{out}{err}"
    );
}
