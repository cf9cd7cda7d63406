//! `POST /links` with a numbers registry (issue 21): `from` (a label or phone_number_id) names
//! the line the `wa.me` link opens a chat with; a registry of several numbers requires it unless
//! `phone_number` is given; a number the registry lacks is `422 unknown_number`.

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_attribution::service::AttributionService;
use wabridge_core::attribution::AttributionConfig;
use wabridge_core::http::{Method, Request};
use wabridge_core::numbers::Numbers;
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::Db;

fn registry(labels: &[(&str, &str, &str)]) -> Arc<Numbers> {
    let text: String = labels
        .iter()
        .map(|(label, id, display)| {
            format!(
                "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"102290129340398\"\n\
                 display_number = \"{display}\"\ntoken_key = \"WHATSAPP_ACCESS_TOKEN_{}\"\n\
                 [number.crm]\nkind = \"local\"\n",
                id.len()
            )
        })
        .collect();
    Arc::new(Numbers::parse("numbers.toml", text.as_bytes()).unwrap())
}

const MX: (&str, &str, &str) = ("ventas-mx", "106540352242922", "+52 55 5000 1111");
const CO: (&str, &str, &str) = ("soporte-co", "206540352242922", "+57 601 500 2222");

async fn service(numbers: Arc<Numbers>) -> (tempfile::TempDir, AttributionService) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("l.db")).unwrap();
    let store = SqliteAttribution::open(db).await.unwrap();
    let keys = wabridge_core::auth::ApiKeys::parse(Some("api-key"), None).unwrap();
    let service = AttributionService::new(
        Arc::new(store),
        Arc::new(AttributionConfig::default()),
        None,
        Arc::new(keys),
    )
    .with_numbers(numbers);
    (dir, service)
}

async fn post(service: &AttributionService, extra: Value) -> (u16, Value) {
    let mut body = json!({"utm_source": "instagram", "utm_medium": "bio", "utm_campaign": "julio"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let req = Request {
        method: Method::Post,
        path: "/links".into(),
        query: None,
        headers: vec![
            ("authorization".into(), "Bearer api-key".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_string().into_bytes(),
    };
    match service.create_link(&req).await {
        Ok(r) => (r.status, serde_json::from_slice(&r.body).unwrap()),
        Err(e) => (
            e.status(),
            json!({"code": e.code(), "message": e.to_string()}),
        ),
    }
}

#[tokio::test]
async fn from_names_the_line_the_link_opens_a_chat_with() {
    let (_dir, s) = service(registry(&[MX, CO])).await;
    let (status, link) = post(&s, json!({"from": "soporte-co"})).await;
    assert_eq!(status, 201, "{link}");
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with("https://wa.me/576015002222?text="),
        "{link}"
    );
    let (status, link) = post(&s, json!({"from": MX.1})).await;
    assert_eq!(status, 201, "{link}");
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with("https://wa.me/525550001111?text="),
        "{link}"
    );
    // An explicit number still works without `from`.
    let (status, link) = post(&s, json!({"phone_number": "+52 55 9999 0000"})).await;
    assert_eq!(status, 201, "{link}");
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with("https://wa.me/525599990000?"),
        "{link}"
    );
}

#[tokio::test]
async fn several_numbers_need_from_and_an_unknown_one_is_named() {
    let (_dir, s) = service(registry(&[MX, CO])).await;
    let (status, body) = post(&s, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("from_required")),
        "{body}"
    );
    let (status, body) = post(&s, json!({"from": "ventas-ar"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unknown_number")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("ventas-ar"),
        "{body}"
    );
    let (status, body) = post(
        &s,
        json!({"from": "ventas-mx", "phone_number": "+525550001111"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_field")),
        "{body}"
    );
}

#[tokio::test]
async fn one_registered_number_is_the_default_line() {
    let (_dir, s) = service(registry(&[CO])).await;
    let (status, link) = post(&s, json!({})).await;
    assert_eq!(status, 201, "{link}");
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with("https://wa.me/576015002222?"),
        "{link}"
    );
}
