//! The HTTP surface: the API key (required, compared, fail closed) and the routes' status codes
//! and JSON.

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::sends::service::{NoEvents, Sends};

use super::*;

/// Scoped keys through the HTTP routes: each route needs its scope (403 naming it), an
/// `admin` key reaches every route, a wrong or missing key is 401, and with no key configured
/// every call is refused (fail closed, 503).
#[tokio::test]
async fn each_route_needs_its_scope_and_no_key_fails_closed() {
    use wabridge_core::api::Api;
    use wabridge_core::auth::ApiKeys;
    use wabridge_core::http::{Method, Request};
    let s = setup().await;
    let keys = ApiKeys::parse(
        Some("admin-key-0123456789"),
        Some(
            r#"[{"id": "crm-sends", "scopes": ["sends"], "key": "sends-key-0123456789"},
                {"id": "crm-optin", "scopes": ["consents"], "key": "optin-key-0123456789"},
                {"id": "bi", "scopes": ["read"], "key": "read-key-0123456789"}]"#,
        ),
    )
    .unwrap();
    let sends = Sends::new(
        s.sends.store.clone(),
        s.sends.queue.clone(),
        s.sends.policy.clone(),
        Arc::new(NoEvents),
        Arc::new(keys),
    );
    let api = Api::new().with_sends(Arc::new(sends));
    let call = |method: Method, path: &str, key: Option<&str>| {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(k) = key {
            headers.push(("authorization".to_string(), format!("Bearer {k}")));
        }
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path.to_string(), None),
        };
        Request {
            method,
            path,
            query,
            headers,
            body: b"{}".to_vec(),
        }
    };
    let routes = [
        (Method::Post, "/sends", "sends-key-0123456789", "sends"),
        (Method::Get, "/sends/nope", "read-key-0123456789", "read"),
        (
            Method::Post,
            "/consents",
            "optin-key-0123456789",
            "consents",
        ),
        (
            Method::Get,
            "/consents?to=%2B5215512345678",
            "read-key-0123456789",
            "read",
        ),
    ];
    let keys = [
        "sends-key-0123456789",
        "optin-key-0123456789",
        "read-key-0123456789",
    ];
    for (method, path, allowed, scope) in routes {
        for key in keys {
            let resp = api.handle(call(method, path, Some(key))).await;
            let body: Value = serde_json::from_slice(&resp.body).unwrap();
            if key == allowed {
                // Past the key check: the route's own answer (400 for `{}`, 404, 200).
                assert!(
                    ![401, 403, 503].contains(&resp.status),
                    "{path} with its scope: {} {body}",
                    resp.status
                );
            } else {
                assert_eq!(resp.status, 403, "{path} with {key}: {body}");
                assert_eq!(body["error"]["code"], "forbidden");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains(&format!("`{scope}`")), "{message}");
                assert!(!message.contains(key), "the key is never echoed: {message}");
            }
        }
        let admin = api
            .handle(call(method, path, Some("admin-key-0123456789")))
            .await;
        assert!(![401, 403, 503].contains(&admin.status), "admin on {path}");
        for wrong in [Some("wrong-key-0123456789"), None] {
            assert_eq!(api.handle(call(method, path, wrong)).await.status, 401);
        }
    }

    // No key configured: every call refused, as a deployment problem.
    let closed = Sends::new(
        s.sends.store.clone(),
        s.sends.queue.clone(),
        s.sends.policy.clone(),
        Arc::new(NoEvents),
        Arc::new(ApiKeys::none()),
    );
    let closed = Api::new().with_sends(Arc::new(closed));
    for key in [Some("anything-0123456789"), Some(""), None] {
        assert_eq!(
            closed
                .handle(call(Method::Post, "/sends", key))
                .await
                .status,
            503
        );
    }
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
