//! A local fake of Meta's template management and review: it keeps the WABA's templates, serves
//! the documented endpoints (list with paging, create, edit, delete, the Resumable Upload API),
//! checks the request shapes it is sent, enforces Meta's rules where wabridge must not break
//! them (one template per name and language, edits of an approved template at most once in 24
//! hours), and, on [`MetaTemplates::review`], moves templates through review and posts the
//! matching `message_template_status_update` webhooks signed as Meta signs them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};

pub(super) const WABA: &str = "104996122399160";
pub(super) const APP: &str = "987654321098765";
pub(super) const TOKEN: &str = "EAAGtemplatesAsCodeToken";

/// One template as the fake keeps it.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) language: String,
    pub(super) category: String,
    pub(super) status: String,
    pub(super) parameter_format: Option<String>,
    pub(super) components: Vec<Value>,
    pub(super) reason: Option<String>,
    pub(super) quality: String,
    /// When an approved template was last edited (ms since the fake started counting).
    pub(super) edited_at: Option<std::time::Instant>,
}

impl Stored {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id, "name": self.name, "language": self.language,
            "category": self.category, "status": self.status, "components": self.components,
            "quality_score": {"score": self.quality},
            "rejected_reason": self.reason.clone().unwrap_or_else(|| "NONE".into()),
        });
        if let Some(f) = &self.parameter_format {
            v["parameter_format"] = json!(f);
        }
        v
    }
}

/// What the fake saw of one request.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) authorization: Option<String>,
    pub(super) body: Vec<u8>,
}

#[derive(Default)]
struct State {
    templates: Vec<Stored>,
    next_id: u64,
    requests: Vec<Request>,
    uploads: Vec<(String, u64, Vec<u8>)>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    delay: Duration,
    page_size: usize,
}

pub(super) struct MetaTemplates {
    pub(super) url: String,
    shared: Shared,
}

fn error(status: u16, message: &str, code: i64, subcode: Option<i64>) -> axum::response::Response {
    let mut e = json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "AbCdEf123"}});
    if let Some(s) = subcode {
        e["error"]["error_subcode"] = json!(s);
    }
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        e.to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> axum::response::Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    let query = uri.query().unwrap_or("").to_string();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut st = shared.state.lock().unwrap();
    st.requests.push(Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: query.clone(),
        authorization: authorization.clone(),
        body: body.to_vec(),
    });
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let [_version, rest @ ..] = segments.as_slice() else {
        return error(404, "Unknown path", 803, None);
    };
    // The upload step authenticates with `OAuth`; every other call with a bearer token.
    let bearer = authorization.as_deref() == Some(&format!("Bearer {TOKEN}"));
    match (method.as_str(), rest) {
        ("POST", [upload]) if upload.starts_with("upload:") => {
            if authorization.as_deref() != Some(&format!("OAuth {TOKEN}")) {
                return error(401, "Invalid OAuth access token", 190, None);
            }
            if headers.get("file_offset").and_then(|v| v.to_str().ok()) != Some("0") {
                return error(400, "file_offset header is required", 100, None);
            }
            let Some(session) = st.uploads.iter().find(|u| u.0 == *upload).cloned() else {
                return error(400, "Invalid upload session", 100, None);
            };
            if session.1 != body.len() as u64 {
                return error(400, "file_length does not match the bytes sent", 100, None);
            }
            let i = st.uploads.iter().position(|u| u.0 == *upload).unwrap();
            st.uploads[i].2 = body.to_vec();
            ok(json!({"h": format!("4::aW1hZ2UvcG5n:{}:e:1", &upload[7..])}))
        }
        _ if !bearer => error(401, "Invalid OAuth access token", 190, None),
        ("POST", [app, "uploads"]) if *app == APP => {
            let (Some(length), Some(_name), Some(kind)) = (
                param(&query, "file_length").and_then(|l| l.parse::<u64>().ok()),
                param(&query, "file_name"),
                param(&query, "file_type"),
            ) else {
                return error(
                    400,
                    "file_name, file_length and file_type are required",
                    100,
                    None,
                );
            };
            if !["image/jpeg", "image/png", "video/mp4", "application/pdf"].contains(&kind.as_str())
            {
                return error(400, "Unsupported file_type", 100, None);
            }
            st.next_id += 1;
            let id = format!("upload:MTpzZXNzaW9u{}", st.next_id);
            st.uploads.push((id.clone(), length, Vec::new()));
            ok(json!({"id": id}))
        }
        ("GET", [waba, "message_templates"]) if *waba == WABA => {
            let after: usize = param(&query, "after")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            let limit = param(&query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(25)
                .min(shared.page_size);
            let page: Vec<Value> = st
                .templates
                .iter()
                .skip(after)
                .take(limit)
                .map(Stored::to_json)
                .collect();
            let end = after + page.len();
            let mut answer = json!({"data": page, "paging": {"cursors": {"before": after.to_string(), "after": end.to_string()}}});
            if end < st.templates.len() {
                answer["paging"]["next"] = json!(format!(
                    "https://graph.facebook.com/v23.0/{WABA}/message_templates?after={end}"
                ));
            }
            ok(answer)
        }
        ("POST", [waba, "message_templates"]) if *waba == WABA => {
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return error(400, "Invalid JSON", 100, None);
            };
            let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(name), Some(language), Some(category)) =
                (text("name"), text("language"), text("category"))
            else {
                return error(400, "name, language and category are required", 100, None);
            };
            let Some(components) = b.get("components").and_then(Value::as_array).cloned() else {
                return error(400, "components is required", 100, None);
            };
            if let Some(problem) = shape_problem(&components) {
                return error(400, &problem, 100, Some(2388043));
            }
            if st
                .templates
                .iter()
                .any(|t| t.name == name && t.language == language)
            {
                return error(
                    400,
                    "Content in this language already exists",
                    100,
                    Some(2388024),
                );
            }
            st.next_id += 1;
            let id = format!("{}", 1_200_000_000_000_000 + st.next_id);
            st.templates.push(Stored {
                id: id.clone(),
                name,
                language,
                category: category.clone(),
                status: "PENDING".into(),
                parameter_format: text("parameter_format"),
                components,
                reason: None,
                quality: "UNKNOWN".into(),
                edited_at: None,
            });
            ok(json!({"id": id, "status": "PENDING", "category": category}))
        }
        ("DELETE", [waba, "message_templates"]) if *waba == WABA => {
            let (Some(name), Some(hsm)) = (param(&query, "name"), param(&query, "hsm_id")) else {
                return error(400, "name is required", 100, None);
            };
            let before = st.templates.len();
            st.templates.retain(|t| !(t.name == name && t.id == hsm));
            if st.templates.len() == before {
                return error(400, "Message template not found", 100, Some(2593002));
            }
            ok(json!({"success": true}))
        }
        ("POST", [id]) => {
            let Ok(b) = serde_json::from_slice::<Value>(&body) else {
                return error(400, "Invalid JSON", 100, None);
            };
            let Some(t) = st.templates.iter_mut().find(|t| t.id == *id) else {
                return error(400, "Unsupported post request", 100, Some(33));
            };
            if !["APPROVED", "REJECTED", "PAUSED"].contains(&t.status.as_str()) {
                return error(
                    400,
                    "Template cannot be edited in its current status",
                    100,
                    Some(2388026),
                );
            }
            if t.status == "APPROVED" {
                if t.edited_at
                    .is_some_and(|e| e.elapsed() < Duration::from_secs(86_400))
                {
                    return error(
                        400,
                        "Approved templates can be edited once a day",
                        100,
                        Some(2388025),
                    );
                }
                if b.get("category").is_some() {
                    return error(
                        400,
                        "An approved template's category cannot be changed",
                        100,
                        Some(2388023),
                    );
                }
                t.edited_at = Some(std::time::Instant::now());
            }
            if let Some(c) = b.get("category").and_then(Value::as_str) {
                t.category = c.to_string();
            }
            if let Some(c) = b.get("components").and_then(Value::as_array) {
                if let Some(problem) = shape_problem(c) {
                    return error(400, &problem, 100, Some(2388043));
                }
                t.components = c.clone();
            }
            t.status = "PENDING".into();
            t.reason = None;
            ok(json!({"success": true}))
        }
        _ => error(404, "Unknown path", 803, None),
    }
}

/// What Meta would refuse in a component list: the checks its API does on shape.
fn shape_problem(components: &[Value]) -> Option<String> {
    for c in components {
        let kind = c.get("type").and_then(Value::as_str)?;
        match kind {
            "HEADER" | "BODY" | "FOOTER" | "BUTTONS" => {}
            other => return Some(format!("Invalid component type {other}")),
        }
        let text = c.get("text").and_then(Value::as_str).unwrap_or("");
        if text.contains("{{") && c.get("example").is_none() {
            return Some(format!("{kind} has variables and no example"));
        }
        if kind == "HEADER"
            && ["IMAGE", "VIDEO", "DOCUMENT"].contains(&c["format"].as_str().unwrap_or(""))
        {
            let handle = c
                .pointer("/example/header_handle/0")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !handle.starts_with("4::") {
                return Some(
                    "A media header needs example.header_handle from the Resumable Upload API"
                        .into(),
                );
            }
        }
    }
    None
}

/// Unix seconds now: webhook times, newer than the sync's observations.
pub(super) fn now_s() -> i64 {
    wabridge_core::clock::now_secs()
}

impl MetaTemplates {
    pub(super) async fn start() -> MetaTemplates {
        MetaTemplates::start_with(Duration::ZERO, 100).await
    }

    /// `delay` before every answer; pages of at most `page_size` templates.
    pub(super) async fn start_with(delay: Duration, page_size: usize) -> MetaTemplates {
        let shared = Shared {
            state: Arc::new(Mutex::new(State::default())),
            delay,
            page_size,
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MetaTemplates { url, shared }
    }

    pub(super) fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    pub(super) fn templates(&self) -> Vec<Stored> {
        self.shared.state.lock().unwrap().templates.clone()
    }

    pub(super) fn uploaded(&self) -> Vec<Vec<u8>> {
        self.shared
            .state
            .lock()
            .unwrap()
            .uploads
            .iter()
            .map(|u| u.2.clone())
            .collect()
    }

    /// Puts a template as Meta holds it (state set up by hand).
    pub(super) fn put(&self, t: Stored) {
        self.shared.state.lock().unwrap().templates.push(t);
    }

    /// Changes a stored template in place.
    pub(super) fn with(&self, name: &str, language: &str, f: impl FnOnce(&mut Stored)) {
        let mut st = self.shared.state.lock().unwrap();
        let t = st
            .templates
            .iter_mut()
            .find(|t| t.name == name && t.language == language)
            .unwrap_or_else(|| panic!("{name} [{language}] at the fake"));
        f(t);
    }

    /// Meta's review: every PENDING template becomes APPROVED, or REJECTED when `reject` says
    /// so. Returns each decision's `message_template_status_update` webhook body.
    pub(super) fn review(&self, reject: impl Fn(&Stored) -> bool) -> Vec<Value> {
        let mut st = self.shared.state.lock().unwrap();
        let mut hooks = Vec::new();
        for t in st.templates.iter_mut().filter(|t| t.status == "PENDING") {
            let rejected = reject(t);
            t.status = if rejected { "REJECTED" } else { "APPROVED" }.into();
            t.reason = rejected.then(|| "INVALID_FORMAT".to_string());
            let value = json!({
                "event": t.status,
                "message_template_id": t.id.parse::<u64>().unwrap(),
                "message_template_name": t.name,
                "message_template_language": t.language,
                "message_template_category": t.category,
                "reason": t.reason.clone().unwrap_or_else(|| "NONE".into()),
            });
            hooks.push(json!({"object": "whatsapp_business_account", "entry": [{
                "id": WABA, "time": now_s(),
                "changes": [{"field": "message_template_status_update", "value": value}]}]}));
        }
        hooks
    }
}
