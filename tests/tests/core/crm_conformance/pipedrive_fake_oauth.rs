//! The local Pipedrive's OAuth server: `POST /oauth/token`, refresh-token grant, as Pipedrive
//! documents it (form-encoded body, the app's client id and secret as HTTP Basic; its own error
//! messages, "Invalid grant: refresh_token is invalid" for a refresh token it does not take).
//! Each refresh hands out a new refresh token and refuses the spent one ("not valid … or it was
//! already exchanged"), so an adapter that loses a rotated token fails here. Access tokens live
//! until [`FakeOAuth::expire_tokens`] (revoked, or expired early).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;

use super::pipedrive_fake::PipedriveFake;

pub(crate) const CLIENT_ID: &str = "b4d083d9216986345b32";
pub(crate) const CLIENT_SECRET: &str = "c3a1f0e9d8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3";
/// The refresh token the app's installation gave (what the secret holds).
pub(crate) const REFRESH_TOKEN: &str = "13628416:18339917:refresh-5de2f2e5c8a0";
pub(crate) const TOKEN_PATH: &str = "/oauth/token";

#[derive(Default)]
pub(crate) struct FakeOAuth {
    /// Access tokens Pipedrive takes now.
    pub live_tokens: Mutex<HashSet<String>>,
    /// Refresh tokens it takes now (rotated on every refresh); `None`: the configured one only.
    refresh_tokens: Mutex<Option<HashSet<String>>>,
    /// Refreshes granted.
    pub grants: AtomicU64,
    /// Refreshes to refuse from now on (the app uninstalled, the grant revoked).
    pub refuse_refreshes: AtomicU64,
    /// `api_domain` of the answers (the company's host).
    pub api_domain: Mutex<Option<String>>,
}

impl FakeOAuth {
    /// Every access token stops working (revoked, or expired before its `expires_in`).
    pub(crate) fn expire_tokens(&self) {
        self.live_tokens.lock().unwrap().clear();
    }

    pub(crate) fn grants(&self) -> u64 {
        self.grants.load(Ordering::SeqCst)
    }

    pub(crate) fn takes(&self, bearer: &str) -> bool {
        self.live_tokens.lock().unwrap().contains(bearer)
    }
}

/// Pipedrive's OAuth error body.
fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"success": false, "message": message}))).into_response()
}

/// `POST /oauth/token`.
pub(crate) fn token(
    fake: &PipedriveFake,
    method: &Method,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let oauth = &fake.oauth;
    if *method != Method::POST {
        return fake.problem(format!("{method} {TOKEN_PATH}"));
    }
    if !query.is_empty() {
        return fake.problem("token: parameters in the URL (proxy logs keep URLs)".into());
    }
    if !headers.get("content-type").is_some_and(|v| {
        v.to_str()
            .unwrap_or("")
            .starts_with("application/x-www-form-urlencoded")
    }) {
        fake.problems
            .lock()
            .unwrap()
            .push("token: the body is not x-www-form-urlencoded".into());
        return refused(
            StatusCode::BAD_REQUEST,
            "Invalid request: content must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if form.contains_key("client_secret") {
        return fake.problem("token: the client secret belongs in Basic authorization".into());
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some(basic) = basic else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "Invalid client: cannot retrieve client credentials",
        );
    };
    if basic != format!("{CLIENT_ID}:{CLIENT_SECRET}") {
        return refused(
            StatusCode::UNAUTHORIZED,
            "Invalid client: client is invalid",
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {}
        None => return refused(StatusCode::BAD_REQUEST, "Missing parameter: grant_type"),
        Some(_) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "Unsupported grant type: grant_type is invalid",
            )
        }
    }
    let invalid_grant = || {
        refused(
            StatusCode::BAD_REQUEST,
            "Invalid grant: refresh_token is invalid",
        )
    };
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let mut valid = oauth.refresh_tokens.lock().unwrap();
    let takes = match valid.as_ref() {
        None => presented == REFRESH_TOKEN,
        Some(set) => set.contains(&presented),
    };
    if !takes {
        return invalid_grant();
    }
    if oauth
        .refuse_refreshes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return invalid_grant();
    }
    let n = oauth.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let access = format!("v1u:AQIBAHj-access-{n:04}");
    let rotated = format!("13628416:18339917:refresh-{n:04}");
    // The spent refresh token dies with its exchange.
    *valid = Some(HashSet::from([rotated.clone()]));
    oauth.live_tokens.lock().unwrap().insert(access.clone());
    let mut answer = json!({"access_token": access, "token_type": "Bearer", "expires_in": 3599,
        "refresh_token": rotated, "scope": "base,deals:full,contacts:full"});
    if let Some(domain) = oauth.api_domain.lock().unwrap().clone() {
        answer["api_domain"] = json!(domain);
    }
    Json(answer).into_response()
}
