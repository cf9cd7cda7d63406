//! `POST /conversions` against a local Meta Conversions API test server that checks the
//! documented request shape and answers 429 / 5xx / 400 on demand; idempotency per event id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use wabridge_attribution::conversions::{MetaConversions, RetryPolicy};
use wabridge_attribution::service::AttributionService;
use wabridge_core::attribution::{on_inbound_message, AttributionConfig, Inbound};
use wabridge_core::http::{Method, Request};
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::Db;

const CLID: &str = "Aff-n8ZTODiE79d22KtAwQKj9e";

#[derive(Default)]
struct Meta {
    /// Bodies of the requests that passed the shape checks.
    received: Mutex<Vec<Value>>,
    /// Requests seen (any answer).
    hits: AtomicUsize,
    /// Answer this many next requests with 503.
    fail_5xx: AtomicUsize,
    /// Answer this many next requests with 429.
    fail_429: AtomicUsize,
    /// Answer every request with 400 while set.
    refuse: AtomicUsize,
}

/// Checks what Meta's documentation asks of a business-messaging conversion event.
fn shape_problem(
    headers: &HeaderMap,
    version: &str,
    dataset: &str,
    body: &Value,
) -> Option<String> {
    if version != "v23.0" || dataset != "1234567890" {
        return Some(format!("path /{version}/{dataset}/events"));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer meta-token") {
        return Some("Authorization".into());
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return Some("Content-Type".into());
    }
    let data = body.get("data")?.as_array()?;
    let e = data.first()?;
    let checks = [
        (data.len() == 1, "one event"),
        (e["action_source"] == "business_messaging", "action_source"),
        (e["messaging_channel"] == "whatsapp", "messaging_channel"),
        (e["event_name"].is_string(), "event_name"),
        (e["event_time"].is_i64(), "event_time (integer seconds)"),
        (e["event_id"].is_string(), "event_id"),
        (
            e["user_data"]["ctwa_clid"].is_string(),
            "user_data.ctwa_clid",
        ),
        (
            e["user_data"]["whatsapp_business_account_id"].is_string(),
            "user_data.whatsapp_business_account_id",
        ),
        (
            e["custom_data"]["currency"]
                .as_str()
                .is_some_and(|c| c.len() == 3),
            "custom_data.currency",
        ),
        (e["custom_data"]["value"].is_number(), "custom_data.value"),
    ];
    checks
        .iter()
        .find(|(ok, _)| !ok)
        .map(|(_, what)| what.to_string())
}

async fn events(
    State(meta): State<Arc<Meta>>,
    Path((version, dataset)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    meta.hits.fetch_add(1, Ordering::SeqCst);
    let take = |c: &AtomicUsize| {
        c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    if take(&meta.fail_5xx) {
        return (StatusCode::SERVICE_UNAVAILABLE, "{}").into_response();
    }
    if take(&meta.fail_429) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            r#"{"error":{"message":"rate"}}"#,
        )
            .into_response();
    }
    let Ok(value) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"not json"}}"#,
        )
            .into_response();
    };
    if let Some(problem) = shape_problem(&headers, &version, &dataset, &value)
        .or_else(|| value.get("data").is_none().then(|| "data".to_string()))
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": format!("bad {problem}")}})),
        )
            .into_response();
    }
    if meta.refuse.load(Ordering::SeqCst) > 0 {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"Invalid parameter","code":100}}"#,
        )
            .into_response();
    }
    meta.received.lock().unwrap().push(value);
    axum::Json(json!({"events_received": 1, "messages": [], "fbtrace_id": "AbCdEf"}))
        .into_response()
}

struct Fixture {
    _dir: tempfile::TempDir,
    meta: Arc<Meta>,
    service: AttributionService,
    store: Arc<SqliteAttribution>,
}

async fn fixture() -> Fixture {
    let meta = Arc::new(Meta::default());
    let app = Router::new()
        .route("/{version}/{dataset}/events", post(events))
        .with_state(meta.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteAttribution::open(Db::open(dir.path().join("w.db")).unwrap())
            .await
            .unwrap(),
    );
    let config = Arc::new(AttributionConfig::default());
    let mut client = MetaConversions::new(
        &format!("http://{addr}"),
        "v23.0",
        "1234567890",
        "meta-token",
        Some("102290129340398"),
    );
    client.retry = RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
    };
    let service = AttributionService::new(
        store.clone(),
        config.clone(),
        Some(client),
        Arc::new(
            wabridge_core::auth::ApiKeys::parse(
                Some("api-key"),
                Some(r#"[{"id": "crm", "scopes": ["sends", "consents", "read"], "key": "crm-key-0123456789"}]"#),
            )
            .unwrap(),
        ),
    );

    // Ana clicked an ad: her first message carried the referral.
    let referral: wabridge_core::attribution::Referral = wabridge_tests::model(
        json!({"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726", "source_type": "ad", "headline": "Chat with us", "ctwa_clid": CLID}),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let msg = Inbound {
        event_id: "m1",
        contact_id: "ana",
        at: now - 3_600_000,
        text: Some("hola"),
        referral: Some(&referral),
    };
    on_inbound_message(store.as_ref(), &config, &msg)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        meta,
        service,
        store,
    }
}

fn post_conversion(body: Value) -> Request {
    Request {
        method: Method::Post,
        path: "/conversions".into(),
        query: None,
        headers: vec![
            ("authorization".into(), "Bearer api-key".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_string().into_bytes(),
    }
}

fn parse(r: &wabridge_core::http::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// `/conversions` and `/links` have no scope of their own: only an `admin` key reaches them.
#[tokio::test]
async fn a_key_without_the_admin_scope_is_refused_with_403() {
    let f = fixture().await;
    let mut req = post_conversion(
        json!({"contact_id": "ana", "value": 10, "currency": "MXN", "event_id": "deal-403"}),
    );
    req.headers[0].1 = "Bearer crm-key-0123456789".into();
    let err = f.service.record_conversion(&req).await.unwrap_err();
    assert_eq!(err.status(), 403);
    assert!(err.to_string().contains("`admin`"), "{err}");
    req.path = "/links".into();
    assert_eq!(f.service.create_link(&req).await.unwrap_err().status(), 403);
    assert_eq!(
        f.meta.hits.load(Ordering::SeqCst),
        0,
        "nothing reached Meta"
    );
}

#[tokio::test]
async fn a_won_deal_is_sent_once_with_the_documented_shape() {
    let f = fixture().await;
    let req = post_conversion(
        json!({"contact_id": "ana", "value": 1499.9, "currency": "MXN", "event_id": "deal-1"}),
    );
    let r = f.service.record_conversion(&req).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = parse(&r);
    assert_eq!(v["status"], "sent");
    assert_eq!(v["duplicate"], false);
    assert_eq!(v["ctwa_clid"], CLID);
    assert_eq!(v["utm_source"], "facebook");
    let received = f.meta.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let e = &received[0]["data"][0];
    assert_eq!(e["event_name"], "Purchase");
    assert_eq!(e["event_id"], "deal-1");
    assert_eq!(e["user_data"]["ctwa_clid"], CLID);
    assert_eq!(
        e["user_data"]["whatsapp_business_account_id"],
        "102290129340398"
    );
    assert_eq!(e["custom_data"]["value"], 1499.9);
    assert_eq!(e["custom_data"]["currency"], "MXN");

    // The CRM workflow fires twice: nothing is sent again.
    let r = f.service.record_conversion(&req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(parse(&r)["duplicate"], true);
    assert_eq!(f.meta.hits.load(Ordering::SeqCst), 1);

    // The same event id for another amount is a conflict.
    let other = post_conversion(
        json!({"contact_id": "ana", "value": 10, "currency": "MXN", "event_id": "deal-1"}),
    );
    assert_eq!(
        f.service
            .record_conversion(&other)
            .await
            .unwrap_err()
            .status(),
        409
    );
    assert_eq!(f.meta.hits.load(Ordering::SeqCst), 1);

    // The report counts it under the ad.
    let report = f.store.report(0).await.unwrap();
    let row = report
        .rows
        .iter()
        .find(|r| r.utm_source.as_deref() == Some("facebook"))
        .unwrap();
    assert_eq!((row.conversions, row.value["MXN"]), (1, 1499.9));
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_with_backoff() {
    let f = fixture().await;
    f.meta.fail_5xx.store(2, Ordering::SeqCst);
    f.meta.fail_429.store(1, Ordering::SeqCst);
    let r = f
        .service
        .record_conversion(&post_conversion(
            json!({"contact_id": "ana", "value": 5, "currency": "usd", "event_id": "deal-2"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(parse(&r)["status"], "sent");
    assert_eq!(f.meta.hits.load(Ordering::SeqCst), 4);
    assert_eq!(f.meta.received.lock().unwrap().len(), 1);
    assert_eq!(
        f.store
            .conversion("deal-2")
            .await
            .unwrap()
            .unwrap()
            .attempts,
        4
    );
}

#[tokio::test]
async fn meta_down_answers_503_and_the_same_event_id_is_sent_later() {
    let f = fixture().await;
    f.meta.fail_5xx.store(100, Ordering::SeqCst);
    let req = post_conversion(
        json!({"contact_id": "ana", "value": 5, "currency": "BRL", "event_id": "deal-3"}),
    );
    let r = f.service.record_conversion(&req).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(parse(&r)["status"], "pending");
    assert_eq!(
        f.meta.hits.load(Ordering::SeqCst),
        4,
        "gave up after the configured attempts"
    );
    f.meta.fail_5xx.store(0, Ordering::SeqCst);
    let r = f.service.record_conversion(&req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(parse(&r)["status"], "sent");
    assert_eq!(f.meta.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn refusals_are_not_retried_and_contacts_without_click_id_are_not_sent() {
    let f = fixture().await;
    f.meta.refuse.store(1, Ordering::SeqCst);
    let r = f
        .service
        .record_conversion(&post_conversion(
            json!({"contact_id": "ana", "value": 1, "currency": "MXN", "event_id": "deal-4"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert_eq!(parse(&r)["status"], "refused");
    assert!(parse(&r)["detail"]
        .as_str()
        .unwrap()
        .contains("Invalid parameter"));
    assert_eq!(f.meta.hits.load(Ordering::SeqCst), 1);

    let r = f
        .service
        .record_conversion(&post_conversion(
            json!({"contact_id": "walk-in", "value": 1, "currency": "MXN", "event_id": "deal-5"}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(parse(&r)["status"], "not_attributable");
    assert_eq!(
        f.meta.hits.load(Ordering::SeqCst),
        1,
        "nothing sent without a click id"
    );
}

#[tokio::test]
async fn bad_requests_get_precise_4xx() {
    let f = fixture().await;
    let mut no_auth = post_conversion(
        json!({"contact_id": "ana", "value": 1, "currency": "MXN", "event_id": "x"}),
    );
    no_auth.headers.retain(|(k, _)| k != "authorization");
    assert_eq!(
        f.service
            .record_conversion(&no_auth)
            .await
            .unwrap_err()
            .status(),
        401
    );

    let e = f
        .service
        .record_conversion(&post_conversion(
            json!({"contact_id": "ana", "value": 1, "currency": "pesos", "event_id": "x"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().starts_with("currency:"), "{e}");
    let e = f
        .service
        .record_conversion(&post_conversion(json!({"contact": "ana"})))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "invalid_json"));
    let mut xml = post_conversion(json!({}));
    xml.headers.retain(|(k, _)| k != "content-type");
    assert_eq!(
        f.service
            .record_conversion(&xml)
            .await
            .unwrap_err()
            .status(),
        415
    );
    let mut big = post_conversion(json!({}));
    big.body = vec![b' '; 70_000];
    assert_eq!(
        f.service
            .record_conversion(&big)
            .await
            .unwrap_err()
            .status(),
        413
    );
    assert_eq!(f.meta.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn links_route_returns_link_and_qr_codes() {
    let f = fixture().await;
    let req = Request {
        method: Method::Post,
        path: "/links".into(),
        query: None,
        headers: vec![("authorization".into(), "Bearer api-key".into()), ("content-type".into(), "application/json".into())],
        body: json!({"utm_source": "poster", "utm_medium": "qr", "utm_campaign": "tienda_centro", "phone_number": "+5215512345678", "prefilled_text": "Hola, vi el cartel"}).to_string().into_bytes(),
    };
    let r = f.service.create_link(&req).await.unwrap();
    assert_eq!(r.status, 201);
    let v = parse(&r);
    let code = v["code"].as_str().unwrap();
    assert!(v["url"]
        .as_str()
        .unwrap()
        .starts_with("https://wa.me/5215512345678?text=Hola%2C%20vi%20el%20cartel%20%5Bref%3A"));
    assert_eq!(v["text"], format!("Hola, vi el cartel [ref:{code}]"));
    assert!(v["qr_svg"].as_str().unwrap().starts_with("<svg"));
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(v["qr_png_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    use wabridge_core::attribution::AttributionStore;
    assert_eq!(
        f.store
            .link(code)
            .await
            .unwrap()
            .unwrap()
            .utm
            .utm_campaign
            .as_deref(),
        Some("tienda_centro")
    );

    let mut bad = req.clone();
    bad.body = json!({"utm_source": "poster"}).to_string().into_bytes();
    let e = f.service.create_link(&bad).await.unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().starts_with("utm_medium:"), "{e}");
}
