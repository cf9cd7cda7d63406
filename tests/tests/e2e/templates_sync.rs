//! The template registry learns templates from Meta: `GET /{version}/{waba-id}/message_templates`
//! read page by page (a local Graph server in the test answering realistic template JSON, and
//! Prism serving Meta's own spec), the BODY's distinct placeholders counted (POSITIONAL `{{1}}`
//! and NAMED `{{first_name}}`; header and button placeholders are not body parameters), and
//! then `POST /sends` (through `Sends::submit`) checked for real: wrong parameter count refused,
//! PAUSED refused, Meta's MARKETING category wins over the caller's. A webhook status newer
//! than the sync keeps its status. `wabridge templates sync` / `templates list --json` and the
//! sync `wabridge serve` runs at start go through the binary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use wabridge_core::config;
use wabridge_core::consent::ConsentService;
use wabridge_core::http::ApiError;
use wabridge_core::sends::policy::Policy;
use wabridge_core::sends::service::{NoEvents, Sends};
use wabridge_core::sends::store::SendState;
use wabridge_core::sends::template_sync::{SyncError, TemplateSyncConfig};
use wabridge_core::templates::{TemplateRegistry, TemplateStatus};
use wabridge_core::window::WindowService;
use wabridge_sqlite::{
    Db, SqliteConsent, SqliteQueue, SqliteSends, SqliteTemplates, SqliteWindow, SENDS_QUEUE,
};
use wabridge_tests::gateway::{cli, cli_ok, json_lines, Gateway};
use wabridge_tests::prism::Prism;

const WABA: &str = "102290129340398";
const TOKEN: &str = "EAAGtemplateSyncToken";

// ---------------------------------------------------------------- the local Graph server

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<String>,
    user_agent: Option<String>,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a request given its `after` cursor: status and JSON body.
type Answer = Arc<dyn Fn(Option<&str>) -> (u16, String) + Send + Sync>;

#[derive(Clone)]
struct GraphState {
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Duration,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn graph_handler(
    axum::extract::State(state): axum::extract::State<GraphState>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::response::Response {
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        path: uri.path().to_string(),
        query,
        authorization: header("authorization"),
        user_agent: header("user-agent"),
    };
    let after = seen.param("after").map(str::to_string);
    state.seen.lock().unwrap().push(seen);
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let (status, body) = (state.answer)(after.as_deref());
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

struct GraphServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl GraphServer {
    async fn start(answer: Answer) -> GraphServer {
        GraphServer::start_with_delay(answer, Duration::ZERO).await
    }

    async fn start_with_delay(answer: Answer, delay: Duration) -> GraphServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(graph_handler)
            .with_state(GraphState {
                answer,
                seen: seen.clone(),
                delay,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GraphServer { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn config(&self) -> TemplateSyncConfig {
        TemplateSyncConfig::from_lookup(|n| match n {
            config::WHATSAPP_ACCESS_TOKEN => Some(TOKEN.into()),
            config::WHATSAPP_BUSINESS_ACCOUNT_ID => Some(WABA.into()),
            config::WHATSAPP_API_URL => Some(self.url.clone()),
            _ => None,
        })
        .unwrap()
    }
}

// ---------------------------------------------------------------- Meta's template JSON

/// Page 1: a POSITIONAL utility template (header and URL button placeholders, `{{1}}` twice in
/// the body), a NAMED marketing template, and an item without a name; `paging.next` says
/// there is more.
fn page_one() -> Value {
    json!({
        "data": [
            {
                "name": "order_confirmation",
                "parameter_format": "POSITIONAL",
                "components": [
                    {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}",
                     "example": {"header_text": ["1042"]}},
                    {"type": "BODY",
                     "text": "Hola {{1}}, tu pedido {{2}} por {{3}} está confirmado. ¡Gracias, {{1}}!",
                     "example": {"body_text": [["Ana", "1042", "$1,250.00 MXN"]]}},
                    {"type": "FOOTER", "text": "Tienda Ejemplo"},
                    {"type": "BUTTONS", "buttons": [
                        {"type": "URL", "text": "Ver pedido",
                         "url": "https://tienda.example.mx/pedidos/{{1}}",
                         "example": ["https://tienda.example.mx/pedidos/1042"]}
                    ]}
                ],
                "language": "es_MX",
                "status": "APPROVED",
                "category": "UTILITY",
                "id": "1407680676729941"
            },
            {
                "name": "promo_named",
                "parameter_format": "NAMED",
                "components": [
                    {"type": "HEADER", "format": "TEXT", "text": "Oferta para {{first_name}}",
                     "example": {"header_text_named_params": [
                         {"param_name": "first_name", "example": "Ana"}]}},
                    {"type": "BODY",
                     "text": "Olá {{first_name}}, use o cupom {{coupon_code}} até {{end_date}}. {{first_name}}, não perca!",
                     "example": {"body_text_named_params": [
                         {"param_name": "first_name", "example": "Ana"},
                         {"param_name": "coupon_code", "example": "VERAO25"},
                         {"param_name": "end_date", "example": "31/12"}]}},
                    {"type": "BUTTONS", "buttons": [
                        {"type": "QUICK_REPLY", "text": "Parar promoções"}]}
                ],
                "language": "pt_BR",
                "status": "APPROVED",
                "category": "MARKETING",
                "id": "1407680676729942"
            },
            {"language": "en_US", "status": "APPROVED", "components": [], "id": "3"}
        ],
        "paging": {
            "cursors": {"before": "QVFIUmJlZA", "after": "QVFIUpage1"},
            "next": format!("https://graph.facebook.com/v23.0/{WABA}/message_templates?limit=100&after=QVFIUpage1")
        }
    })
}

/// Page 2 (the last: no `paging.next`): a PAUSED marketing template and one without
/// parameters.
fn page_two() -> Value {
    json!({
        "data": [
            {
                "name": "cart_reminder",
                "components": [
                    {"type": "BODY", "text": "{{1}}, olvidaste algo en tu carrito.",
                     "example": {"body_text": [["Ana"]]}}
                ],
                "language": "es_MX",
                "status": "PAUSED",
                "category": "MARKETING",
                "id": "4"
            },
            {
                "name": "hello_world",
                "parameter_format": "POSITIONAL",
                "components": [
                    {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                    {"type": "BODY", "text": "Welcome and congratulations!!"}
                ],
                "language": "en_US",
                "status": "APPROVED",
                "category": "UTILITY",
                "id": "5"
            }
        ],
        "paging": {"cursors": {"before": "QVFIUpage1", "after": "QVFIUpage2"}}
    })
}

fn two_pages() -> Answer {
    Arc::new(|after| match after {
        None => (200, page_one().to_string()),
        Some("QVFIUpage1") => (200, page_two().to_string()),
        Some(other) => (
            400,
            json!({"error": {"message": format!("unknown cursor {other}"), "code": 100}})
                .to_string(),
        ),
    })
}

fn temp_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.db")).unwrap();
    (dir, db)
}

fn registry(db: &Db) -> TemplateRegistry {
    TemplateRegistry::new(Arc::new(SqliteTemplates::new(db.clone())))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------- parsing, counting, paging

#[tokio::test]
async fn sync_reads_every_page_and_counts_distinct_body_parameters() {
    let graph = GraphServer::start(two_pages()).await;
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let report = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .expect("sync succeeds");
    assert_eq!(report.pages, 2);
    assert_eq!(report.templates, 4);
    assert_eq!(report.statuses_written, 4);
    assert_eq!(report.skipped, 1, "the item without a name is skipped");

    // What was asked: the WABA's template list, the fields we need, a page size, the second
    // page by the first page's `after` cursor; the token as a bearer; Meta's User-Agent form.
    let seen = graph.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.path, format!("/v23.0/{WABA}/message_templates"));
        let fields: Vec<&str> = s.param("fields").unwrap().split(',').collect();
        for f in [
            "name",
            "language",
            "status",
            "category",
            "components",
            "parameter_format",
        ] {
            assert!(fields.contains(&f), "fields {fields:?} lack {f}");
        }
        assert_eq!(s.param("limit"), Some("100"));
        assert_eq!(
            s.authorization.as_deref(),
            Some("Bearer EAAGtemplateSyncToken")
        );
        assert!(s.user_agent.as_deref().unwrap().starts_with("wabridge/"));
    }
    assert_eq!(seen[0].param("after"), None);
    assert_eq!(seen[1].param("after"), Some("QVFIUpage1"));

    let get = |name: &'static str, lang: &'static str| {
        let registry = registry.clone();
        async move { registry.get(name, lang).await.unwrap().unwrap() }
    };
    let order = get("order_confirmation", "es_MX").await;
    assert_eq!(
        order.body_parameters,
        Some(3),
        "{{1}} twice counts once; header and URL button placeholders are not body parameters"
    );
    assert_eq!(order.category.as_deref(), Some("UTILITY"));
    assert_eq!(order.status, Some(TemplateStatus::new("APPROVED")));
    let promo = get("promo_named", "pt_BR").await;
    assert_eq!(promo.body_parameters, Some(3), "NAMED: distinct names");
    assert_eq!(promo.category.as_deref(), Some("MARKETING"));
    let cart = get("cart_reminder", "es_MX").await;
    assert_eq!(cart.status, Some(TemplateStatus::new("PAUSED")));
    assert_eq!(cart.body_parameters, Some(1));
    let hello = get("hello_world", "en_US").await;
    assert_eq!(hello.body_parameters, Some(0));

    let listed: Vec<(String, String)> = registry
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.language))
        .collect();
    assert_eq!(
        listed,
        [
            ("cart_reminder", "es_MX"),
            ("hello_world", "en_US"),
            ("order_confirmation", "es_MX"),
            ("promo_named", "pt_BR"),
        ]
        .map(|(n, l)| (n.to_string(), l.to_string()))
    );
}

// ---------------------------------------------------------------- POST /sends for real

fn sends(db: &Db) -> Sends {
    Sends::new(
        Arc::new(SqliteSends::new(db.clone())),
        Arc::new(SqliteQueue::new(db.clone(), SENDS_QUEUE)),
        Policy {
            consent: ConsentService::new(Arc::new(SqliteConsent::new(db.clone()))),
            templates: registry(db),
            window: WindowService::new(Arc::new(SqliteWindow::new(db.clone()))),
        },
        Arc::new(NoEvents),
        Some("k".into()),
    )
}

async fn submit(sends: &Sends, body: Value) -> Result<SendState, ApiError> {
    sends
        .submit(body.to_string().as_bytes(), None)
        .await
        .map(|r| r.state)
        // The answer the API gives.
        .map_err(ApiError::from)
}

fn refusal_code(r: Result<SendState, ApiError>) -> String {
    match r {
        Err(e) => {
            assert_eq!(e.status(), 422, "{e:?}");
            e.code().to_string()
        }
        Ok(state) => panic!("expected a refusal, got {state:?}"),
    }
}

#[tokio::test]
async fn sends_are_checked_against_what_the_sync_learned() {
    let graph = GraphServer::start(two_pages()).await;
    let (_dir, db) = temp_db();
    let sends = sends(&db);
    let order = |params: &[&str]| {
        json!({"to": "+52 1 55 1234 5678", "template": "order_confirmation",
               "language": "es_MX", "parameters": params})
    };

    // Before the sync the registry knows nothing: the count cannot be checked.
    assert_eq!(
        submit(&sends, order(&["Ana", "1042"])).await.unwrap(),
        SendState::Queued
    );

    wabridge_graph::template_sync(graph.config())
        .sync(&registry(&db))
        .await
        .unwrap();

    // Wrong count: refused with the stable code and a sentence naming both numbers.
    let wrong = submit(&sends, order(&["Ana", "1042"])).await;
    let message = format!("{:?}", wrong.as_ref().unwrap_err());
    assert_eq!(refusal_code(wrong), "template_parameter_count");
    assert!(
        message.contains("takes 3") && message.contains("gives 2"),
        "{message}"
    );
    assert_eq!(
        refusal_code(submit(&sends, order(&["Ana", "1042", "$1", "extra"])).await),
        "template_parameter_count"
    );
    // The right count, as `parameters` or as Meta's body component, is accepted.
    assert_eq!(
        submit(&sends, order(&["Ana", "1042", "$1,250.00 MXN"]))
            .await
            .unwrap(),
        SendState::Queued
    );
    let as_components = json!({"to": "+5215512345678", "template": "order_confirmation",
        "language": "es_MX", "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "1042"}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ana"}, {"type": "text", "text": "1042"},
                {"type": "text", "text": "$1,250.00 MXN"}]}]});
    assert_eq!(
        submit(&sends, as_components).await.unwrap(),
        SendState::Queued
    );

    // PAUSED at Meta: refused whatever the parameters.
    let cart = json!({"to": "+5215512345678", "template": "cart_reminder",
        "language": "es_MX", "parameters": ["Ana"]});
    assert_eq!(
        refusal_code(submit(&sends, cart).await),
        "template_not_sendable"
    );

    // Meta says MARKETING: the caller's UTILITY does not get it past the opt-in guard.
    let promo = json!({"to": "+55 11 91234 5678", "template": "promo_named",
        "language": "pt_BR", "category": "UTILITY", "parameters": ["Ana", "VERAO25", "31/12"]});
    assert_eq!(
        refusal_code(submit(&sends, promo.clone()).await),
        "marketing_without_opt_in"
    );
    sends
        .record_consent(
            json!({"to": "+55 11 91234 5678", "action": "opt_in", "category": "marketing",
                   "source": "web_form", "evidence": "https://loja.example.br/optin/77"})
            .to_string()
            .as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(
        submit(&sends, promo).await.unwrap(),
        SendState::Queued,
        "opted in, right count: accepted"
    );

    // A template Meta did not list stays unchecked.
    let unknown = json!({"to": "+5215512345678", "template": "not_at_meta_yet",
        "language": "es_MX", "parameters": ["a"]});
    assert_eq!(submit(&sends, unknown).await.unwrap(), SendState::Queued);
}

// ---------------------------------------------------------------- ordering with webhooks

#[tokio::test]
async fn a_webhook_status_newer_than_the_sync_is_kept() {
    let graph = GraphServer::start(two_pages()).await;
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let t = now_ms();
    let webhook = |name: &str, event: &str| {
        json!({"event": event, "message_template_id": 1, "message_template_name": name,
               "message_template_language": "es_MX", "reason": "NONE"})
    };
    // Newer than what the sync observes: the template was re-approved after the sync's read
    // (entry.time has whole seconds, so half a second before the read may still be newer).
    registry
        .apply_status_update(
            &wabridge_tests::model(webhook("cart_reminder", "APPROVED")),
            t - 500,
        )
        .await
        .unwrap()
        .unwrap();
    // Older: paused an hour ago; the sync's APPROVED is news.
    registry
        .apply_status_update(
            &wabridge_tests::model(webhook("order_confirmation", "PAUSED")),
            t - 3_600_000,
        )
        .await
        .unwrap()
        .unwrap();

    let report = wabridge_graph::template_sync(graph.config())
        .sync_with_clock(&registry, || t)
        .await
        .unwrap();
    assert_eq!(report.templates, 4);
    assert_eq!(
        report.statuses_written, 3,
        "cart_reminder kept its newer status"
    );

    let cart = registry
        .get("cart_reminder", "es_MX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cart.status, Some(TemplateStatus::new("APPROVED")));
    assert_eq!(cart.status_at, t - 500);
    assert_eq!(
        cart.body_parameters,
        Some(1),
        "the definition is still learned"
    );
    let order = registry
        .get("order_confirmation", "es_MX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, Some(TemplateStatus::new("APPROVED")));

    // A webhook older than the sync's observation arriving late changes nothing either.
    let applied = registry
        .apply_status_update(
            &wabridge_tests::model(webhook("order_confirmation", "PAUSED")),
            t - 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!applied);
    assert_eq!(
        registry
            .get("order_confirmation", "es_MX")
            .await
            .unwrap()
            .unwrap()
            .status,
        Some(TemplateStatus::new("APPROVED"))
    );
}

// ---------------------------------------------------------------- errors and bounds

#[tokio::test]
async fn graph_errors_are_classified_and_the_sync_is_bounded() {
    let (_dir, db) = temp_db();
    let registry = registry(&db);

    // 5xx: retry later.
    let graph = GraphServer::start(Arc::new(|_| (503, "{}".into()))).await;
    let e = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SyncError::Graph(_)) && e.is_retryable(),
        "{e:?}"
    );

    // Meta's invalid-parameter error: terminal, with Meta's message.
    let graph = GraphServer::start(Arc::new(|_| {
        (
            400,
            json!({"error": {"message": "(#100) Tried accessing nonexisting field",
                "type": "OAuthException", "code": 100, "fbtrace_id": "A1"}})
            .to_string(),
        )
    }))
    .await;
    let e = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("nonexisting field"), "{e}");

    // An answer that never ends: stops after max_pages requests.
    let graph = GraphServer::start(Arc::new(|after| {
        let n: u32 = after
            .and_then(|a| a.strip_prefix("c"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (
            200,
            json!({"data": [], "paging": {"cursors": {"after": format!("c{}", n + 1)},
                "next": "https://graph.facebook.com/next"}})
            .to_string(),
        )
    }))
    .await;
    let mut config = graph.config();
    config.max_pages = 3;
    let e = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::TooManyPages(3)), "{e:?}");
    assert_eq!(graph.seen().len(), 3);

    // A cursor that does not move: stops at once instead of looping.
    let graph = GraphServer::start(Arc::new(|_| {
        (
            200,
            json!({"data": [], "paging": {"cursors": {"after": "same"}, "next": "x"}}).to_string(),
        )
    }))
    .await;
    let e = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Invalid(_)), "{e:?}");
    assert_eq!(graph.seen().len(), 2);

    // A page over the size limit is refused.
    let graph = GraphServer::start(Arc::new(|_| (200, page_one().to_string()))).await;
    let mut config = graph.config();
    config.max_page_bytes = 512;
    let e = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::TooLarge { limit: 512 }), "{e:?}");

    // No answer within the timeout: retry later.
    let graph = GraphServer::start_with_delay(two_pages(), Duration::from_secs(5)).await;
    let mut config = graph.config();
    config.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // None of the failures above recorded anything.
    assert!(registry.list().await.unwrap().is_empty());
}

// ---------------------------------------------------------------- Meta's spec through Prism

#[tokio::test]
async fn the_sync_request_matches_metas_spec() {
    let Some(prism) = Prism::start() else { return };
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let config = TemplateSyncConfig::from_lookup(|n| match n {
        config::WHATSAPP_ACCESS_TOKEN => Some("EAAGtestToken123".into()),
        config::WHATSAPP_BUSINESS_ACCOUNT_ID => Some(WABA.into()),
        config::WHATSAPP_API_URL => Some(prism.url().to_string()),
        _ => None,
    })
    .unwrap();
    // Prism answers 422 (terminal) for a request that breaks the spec.
    let report = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_or_else(|e| panic!("Prism refused the template list request: {e:?}"));
    assert_eq!(report.pages, 1, "Meta's example has no paging.next");
    assert!(report.templates >= 1, "{report:?}");
    // Every example in Meta's spec lists 2023_april_promo: MARKETING, "Hi {{1}} ... {{2}}".
    let promo = registry
        .get("2023_april_promo", "en_US")
        .await
        .unwrap()
        .expect("Meta's example template recorded");
    assert_eq!(promo.body_parameters, Some(2));
    assert_eq!(promo.category.as_deref(), Some("MARKETING"));
    assert!(promo.status.is_some());
}

// ---------------------------------------------------------------- through the binary

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_sync_and_list_through_the_binary() {
    let graph = GraphServer::start(two_pages()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let url = graph.url.clone();
    let (report, listed, table, missing) = tokio::task::spawn_blocking(move || {
        let env = [
            (config::WHATSAPP_ACCESS_TOKEN, TOKEN),
            (config::WHATSAPP_BUSINESS_ACCOUNT_ID, WABA),
            (config::WHATSAPP_API_URL, url.as_str()),
        ];
        let report = cli_ok(&data, &["templates", "sync"], &env);
        let listed = cli_ok(&data, &["templates", "list", "--json"], &[]);
        let table = cli_ok(&data, &["templates", "list"], &[]);
        let missing = cli(
            &data,
            &["templates", "sync"],
            &[(config::WHATSAPP_ACCESS_TOKEN, TOKEN)],
        );
        (report, listed, table, missing)
    })
    .await
    .unwrap();

    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["templates"], 4);
    assert_eq!(report["pages"], 2);
    let listed = json_lines(&listed);
    assert_eq!(listed.len(), 4, "{listed:?}");
    let find = |name: &str| {
        listed
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let order = find("order_confirmation");
    assert_eq!(order["language"], "es_MX");
    assert_eq!(order["status"], "APPROVED");
    assert_eq!(order["category"], "UTILITY");
    assert_eq!(order["body_parameters"], 3);
    let cart = find("cart_reminder");
    assert_eq!(cart["status"], "PAUSED");
    assert_eq!(cart["body_parameters"], 1);
    assert_eq!(find("promo_named")["body_parameters"], 3);
    assert!(
        table.lines().any(|l| l.starts_with("cart_reminder")
            && l.contains("PAUSED")
            && l.contains("MARKETING")),
        "{table}"
    );

    // Without a WABA id the sync refuses to run and says which variable is missing.
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(config::WHATSAPP_BUSINESS_ACCOUNT_ID),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_the_registry_when_it_starts() {
    let graph = GraphServer::start(two_pages()).await;
    let url = graph.url.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let gw = Gateway::start(&[
            (config::WHATSAPP_ACCESS_TOKEN, TOKEN),
            (config::WHATSAPP_BUSINESS_ACCOUNT_ID, WABA),
            (config::WHATSAPP_API_URL, url.as_str()),
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let listed = json_lines(&gw.cli_ok(&["templates", "list", "--json"]));
            if listed.len() == 4 || Instant::now() > deadline {
                break listed;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(listed.len(), 4, "serve did not sync at start: {listed:?}");
    assert!(graph.seen().len() >= 2);
}

// ---------------------------------------------------------------- a large WABA

/// 20 full pages of 100 templates: every one recorded with its own count, in one sync.
#[tokio::test]
async fn a_large_waba_is_read_in_full() {
    const PAGES: u32 = 20;
    let graph = GraphServer::start(Arc::new(|after| {
        let page: u32 = after
            .and_then(|a| a.strip_prefix("p"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let data: Vec<Value> = (0..100)
            .map(|i| {
                let n = page * 100 + i;
                let params: Vec<String> = (1..=n % 5).map(|k| format!("{{{{{k}}}}}")).collect();
                json!({"name": format!("tpl_{n:05}"), "language": "es_MX", "status": "APPROVED",
                       "category": "UTILITY", "id": n.to_string(),
                       "components": [{"type": "BODY", "text": format!("Hola {}", params.join(" "))}]})
            })
            .collect();
        let mut body = json!({"data": data, "paging": {"cursors": {"after": format!("p{}", page + 1)}}});
        if page + 1 < PAGES {
            body["paging"]["next"] = json!("https://graph.facebook.com/next");
        }
        (200, body.to_string())
    }))
    .await;
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let started = Instant::now();
    let report = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "synced {} templates in {} pages in {elapsed:?}",
        report.templates, report.pages
    );
    assert_eq!(report.pages, PAGES as usize);
    assert_eq!(report.templates, (PAGES * 100) as usize);
    let all = registry.list().await.unwrap();
    assert_eq!(all.len(), (PAGES * 100) as usize);
    for t in &all {
        let n: u32 = t.name.trim_start_matches("tpl_").parse().unwrap();
        assert_eq!(t.body_parameters, Some(n % 5), "{}", t.name);
    }
}

// ---------------------------------------------------------------- the sender Lambda's schedule

/// On AWS the sender function syncs the registry when its hourly schedule invokes it with
/// `{"wabridge": "template_sync"}` (`infra/template.yaml`): the DynamoDB registry (moto) learns
/// every template, a second run changes nothing, the same function still serves SQS batches, an
/// unknown event is a failed invocation naming what came (never a panic), Meta failing fails the
/// invocation (Lambda retries it) and keeps what the registry knew, and without a WABA id the
/// sync answers "disabled" and asks Meta nothing.
#[tokio::test]
async fn the_sender_lambda_syncs_the_dynamodb_registry_on_its_schedule() {
    let aws = wabridge_tests::require_aws!();
    let graph = GraphServer::start(two_pages()).await;
    let table =
        wabridge_tests::create_table(&aws.dynamo, &wabridge_tests::unique_name("tpl")).await;
    let sends_q =
        wabridge_tests::create_queues(&aws.sqs, &wabridge_tests::unique_name("tpl-sends"), 5).await;
    let events_q =
        wabridge_tests::create_queues(&aws.sqs, &wabridge_tests::unique_name("tpl-events"), 5)
            .await;
    let build = || {
        wabridge_tests::sender_app(
            &aws,
            &table,
            &sends_q,
            &events_q,
            wabridge_graph::GraphClient::new(wabridge_core::sends::graph::GraphConfig {
                base_url: graph.url.clone(),
                version: "v23.0".into(),
                phone_number_id: "106540352242922".into(),
                access_token: TOKEN.into(),
                timeout: Duration::from_secs(5),
            }),
        )
    };
    // The Lambda test event of the schedule (what infra/template.yaml's TemplateSync sends).
    let file = wabridge_tests::workspace_root().join("events/lambda/sender-template-sync.json");
    let scheduled_event: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .expect("events/lambda/sender-template-sync.json is JSON");
    assert_eq!(scheduled_event["wabridge"], sender::TEMPLATE_SYNC_INPUT);
    let template =
        std::fs::read_to_string(wabridge_tests::workspace_root().join("infra/template.yaml"))
            .unwrap();
    let inputs: Vec<Value> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Input: '")?.strip_suffix('\''))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect();
    assert_eq!(
        inputs,
        std::slice::from_ref(&scheduled_event),
        "the schedule in infra/template.yaml"
    );
    let scheduled = || scheduled_event.clone();

    let off = build();
    let disabled = sender::invoke(&off, scheduled()).await.unwrap();
    assert_eq!(disabled["template_sync"], "disabled", "{disabled}");
    assert!(
        disabled["reason"]
            .as_str()
            .unwrap()
            .contains("WHATSAPP_BUSINESS_ACCOUNT_ID"),
        "{disabled}"
    );
    assert!(graph.seen().is_empty(), "no WABA id: Meta is not asked");

    let app = build().with_template_sync(graph.config());
    let out = sender::invoke(&app, scheduled()).await.unwrap();
    assert_eq!(out["template_sync"]["pages"], 2, "{out}");
    assert_eq!(out["template_sync"]["templates"], 4, "{out}");
    let get = |name: &'static str, lang: &'static str| {
        let registry = app.templates.clone();
        async move { registry.get(name, lang).await.unwrap() }
    };
    let order = get("order_confirmation", "es_MX").await.expect("synced");
    assert_eq!(order.body_parameters, Some(3));
    assert_eq!(order.category.as_deref(), Some("UTILITY"));
    let cart = get("cart_reminder", "es_MX").await.expect("synced");
    assert_eq!(cart.status, Some(TemplateStatus::new("PAUSED")));
    assert_eq!(
        get("promo_named", "pt_BR")
            .await
            .unwrap()
            .category
            .as_deref(),
        Some("MARKETING")
    );

    // The next hour: the same templates, nothing else.
    let again = sender::invoke(&app, scheduled()).await.unwrap();
    assert_eq!(again["template_sync"]["templates"], 4);
    let order_again = get("order_confirmation", "es_MX").await.unwrap();
    assert_eq!(
        (
            order_again.status,
            order_again.category,
            order_again.body_parameters
        ),
        (order.status, order.category, order.body_parameters)
    );
    assert!(
        order_again.status_at >= order.status_at,
        "observed again, not older"
    );

    // Still the sends queue's consumer.
    let batch = sender::invoke(&app, json!({"Records": []})).await.unwrap();
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");
    let e = sender::invoke(
        &app,
        json!({"detail-type": "Scheduled Event", "source": "aws.events"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, sender::InvokeError::Unrecognised(_)), "{e}");
    assert!(e.to_string().contains("detail-type"), "{e}");

    // Meta down: the run fails, what the registry knew stays.
    let down = GraphServer::start(Arc::new(|_| {
        (
            503,
            r#"{"error":{"message":"Service temporarily unavailable","type":"OAuthException","code":2}}"#
                .into(),
        )
    }))
    .await;
    let failing = build().with_template_sync(down.config());
    let e = sender::invoke(&failing, scheduled()).await.unwrap_err();
    assert!(matches!(e, sender::InvokeError::TemplateSync(_)), "{e}");
    assert_eq!(
        get("cart_reminder", "es_MX").await.unwrap().status,
        Some(TemplateStatus::new("PAUSED"))
    );
}
