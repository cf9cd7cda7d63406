//! The HTTP surface: the API key (required, compared, fail closed) and the routes' status codes
//! and JSON.

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::sends::service::{NoEvents, Sends};

use super::*;

#[tokio::test]
async fn api_key_is_required_and_compared() {
    use wabridge_core::http::{Method, Request};
    let s = setup().await;
    let req = |auth: Option<&str>| Request {
        method: Method::Post,
        path: "/sends".into(),
        query: None,
        headers: auth
            .map(|a| vec![("authorization".to_string(), a.to_string())])
            .unwrap_or_default(),
        body: vec![],
    };
    assert!(req(Some("Bearer test-api-key"))
        .authorize_bearer(s.sends.api_key())
        .is_ok());
    assert_eq!(
        req(Some("Bearer wrong"))
            .authorize_bearer(s.sends.api_key())
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        req(None)
            .authorize_bearer(s.sends.api_key())
            .unwrap_err()
            .status(),
        401
    );
    assert_eq!(
        req(Some("Basic dGVzdA=="))
            .authorize_bearer(s.sends.api_key())
            .unwrap_err()
            .status(),
        401
    );
    let closed = Sends::new(
        s.sends.store.clone(),
        s.sends.queue.clone(),
        s.sends.policy.clone(),
        Arc::new(NoEvents),
        None,
    );
    // No key configured: every call refused (fail closed), as a deployment problem.
    assert_eq!(
        req(Some("Bearer "))
            .authorize_bearer(closed.api_key())
            .unwrap_err()
            .status(),
        503
    );
    assert_eq!(
        req(Some("Bearer anything"))
            .authorize_bearer(closed.api_key())
            .unwrap_err()
            .status(),
        503
    );
}

#[tokio::test]
async fn http_routes_answer_with_status_codes_and_json() {
    use wabridge_core::api::Api;
    use wabridge_core::http::{Method, Request};
    let s = setup().await;
    let api = Api::new().with_sends(Arc::new(s.sends.clone()));
    let req = |method: Method, path: &str, query: Option<&str>, auth: bool, body: &str| {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if auth {
            headers.push((
                "authorization".to_string(),
                "Bearer test-api-key".to_string(),
            ));
        }
        Request {
            method,
            path: path.into(),
            query: query.map(str::to_string),
            headers,
            body: body.as_bytes().to_vec(),
        }
    };
    let json_of =
        |r: &wabridge_core::http::Response| serde_json::from_slice::<Value>(&r.body).unwrap();

    let r = api
        .handle(req(Method::Post, "/sends", None, false, UTILITY))
        .await;
    assert_eq!(r.status, 401);
    let r = api
        .handle(req(Method::Post, "/sends", None, true, UTILITY))
        .await;
    assert_eq!(r.status, 202);
    let v = json_of(&r);
    assert_eq!(v["state"], "queued");
    let id = v["id"].as_str().unwrap().to_string();
    let r = api
        .handle(req(Method::Get, &format!("/sends/{id}"), None, true, ""))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["state"].clone()),
        (200, json!("queued"))
    );
    let r = api
        .handle(req(Method::Get, "/sends/snd_nope", None, true, ""))
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .handle(req(
            Method::Post,
            "/sends",
            None,
            true,
            r#"{"to": "+525512345678"}"#,
        ))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["error"]["code"].clone()),
        (400, json!("missing_template"))
    );
    let r = api
        .handle(req(Method::Post, "/sends", None, true, MARKETING))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["error"]["code"].clone()),
        (422, json!("marketing_without_opt_in"))
    );
    let mut plain = req(Method::Post, "/sends", None, true, UTILITY);
    plain.headers[0].1 = "text/plain".into();
    assert_eq!(api.handle(plain).await.status, 415);
    assert_eq!(
        api.handle(req(Method::Delete, "/sends", None, true, ""))
            .await
            .status,
        405
    );
    let r = api
        .handle(req(
            Method::Post,
            "/consents",
            None,
            true,
            r#"{"to": "+525512345678", "action": "opt_in", "source": "agent"}"#,
        ))
        .await;
    assert_eq!(r.status, 201);
    let r = api
        .handle(req(
            Method::Get,
            "/consents",
            Some("to=%2B5215512345678"),
            true,
            "",
        ))
        .await;
    assert_eq!(
        (r.status, json_of(&r)["marketing"].clone()),
        (200, json!("opted_in"))
    );
    // Without the sends service mounted, the routes do not exist.
    assert_eq!(
        Api::new()
            .handle(req(Method::Post, "/sends", None, true, UTILITY))
            .await
            .status,
        404
    );
}
