//! The local Kommo's OAuth token endpoint (`POST /oauth2/access_token`, on the account's host
//! and under its 7 requests per second): a JSON body of exactly `client_id`, `client_secret`,
//! `grant_type: "refresh_token"`, `refresh_token` and `redirect_uri`, answered
//! `{token_type, expires_in, access_token, refresh_token}`. Every refresh rotates the refresh
//! token and the old one dies, as Kommo's do; a spent or revoked one is refused with Kommo's
//! own body (`401`, `hint: "Token has been revoked"`) and a spent one sent is recorded. Access
//! tokens stop working after `expires_in`, or on demand.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::kommo_fake::KommoFake;

pub(crate) const CLIENT_ID: &str = "6f1c7a7e-0b7d-4c4e-9f3a-kommo-integration";
pub(crate) const CLIENT_SECRET: &str = "kommo-secret-key-Zx9";
pub(crate) const REDIRECT_URI: &str = "https://gateway.example.com/kommo/oauth";
/// The refresh token of the account's grant, as the operator puts it in the secret.
pub(crate) const REFRESH_TOKEN: &str = "def50200-kommo-refresh-0";

pub(crate) struct OAuthState {
    /// The one refresh token Kommo takes now.
    current: Mutex<Option<String>>,
    /// Refresh tokens used once (dead).
    spent: Mutex<HashSet<String>>,
    /// Spent refresh tokens sent to the endpoint: what the provider must never do.
    pub spent_sent: Mutex<Vec<String>>,
    /// Access token → when it stops working.
    live: Mutex<HashMap<String, Instant>>,
    pub refreshes: AtomicU64,
    /// The `expires_in` of the grants, seconds (Kommo's: a day).
    pub expires_in: AtomicU64,
}

impl Default for OAuthState {
    fn default() -> Self {
        OAuthState {
            current: Mutex::new(Some(REFRESH_TOKEN.into())),
            spent: Mutex::default(),
            spent_sent: Mutex::default(),
            live: Mutex::default(),
            refreshes: AtomicU64::new(0),
            expires_in: AtomicU64::new(86_400),
        }
    }
}

impl OAuthState {
    /// Whether `token` is a live OAuth access token.
    pub(crate) fn accepts(&self, token: &str) -> bool {
        self.live
            .lock()
            .unwrap()
            .get(token)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// Every access token stops working (revoked, or expired early).
    pub(crate) fn expire_tokens(&self) {
        self.live.lock().unwrap().clear();
    }

    /// The account's grant is revoked: no refresh token works until `reauthorise`.
    pub(crate) fn revoke(&self) {
        let mut current = self.current.lock().unwrap();
        if let Some(old) = current.take() {
            self.spent.lock().unwrap().insert(old);
        }
    }

    /// An operator authorised the integration again: `token` is the new refresh token.
    pub(crate) fn reauthorise(&self, token: &str) {
        *self.current.lock().unwrap() = Some(token.into());
    }

    /// The refresh token Kommo takes now.
    pub(crate) fn current(&self) -> Option<String> {
        self.current.lock().unwrap().clone()
    }
}

/// Kommo's refusal of a refresh token.
fn revoked() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "application/problem+json")],
        Json(
            json!({"hint": "Token has been revoked", "title": "Invalid request",
            "type": "https://developers.kommo.com/v3/errors/OAuthProblemJson", "status": 401,
            "detail": "Some parameters are missing or invalid"}),
        ),
    )
        .into_response()
}

/// `POST /oauth2/access_token`.
pub(crate) fn token(
    fake: &KommoFake,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if *method != Method::POST {
        return fake.problem(format!("{method} /oauth2/access_token"));
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return fake.problem("token: the body is not JSON".into());
    }
    let Ok(Value::Object(form)) = serde_json::from_slice::<Value>(body) else {
        return fake.problem("token: the body is not a JSON object".into());
    };
    let mut keys: Vec<&str> = form.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let documented = [
        "client_id",
        "client_secret",
        "grant_type",
        "redirect_uri",
        "refresh_token",
    ];
    if keys != documented {
        return fake.problem(format!("token: keys {keys:?}, not {documented:?}"));
    }
    let field = |k: &str| form[k].as_str().unwrap_or_default().to_string();
    if field("grant_type") != "refresh_token" {
        return fake.problem(format!("token: grant_type {}", field("grant_type")));
    }
    if field("client_id") != CLIENT_ID
        || field("client_secret") != CLIENT_SECRET
        || field("redirect_uri") != REDIRECT_URI
    {
        return fake.problem("token: another integration's client or redirect URI".into());
    }
    let sent = field("refresh_token");
    let state = &fake.oauth;
    let mut current = state.current.lock().unwrap();
    if current.as_deref() != Some(sent.as_str()) {
        if state.spent.lock().unwrap().contains(&sent) {
            state.spent_sent.lock().unwrap().push(sent);
        }
        return revoked();
    }
    // Single-use: the sent one dies, a new one takes its place.
    let n = state.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    state.spent.lock().unwrap().insert(sent);
    let refresh = format!("def50200-kommo-refresh-{n}");
    *current = Some(refresh.clone());
    let access = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.kommo-oauth-{n}");
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    state.live.lock().unwrap().insert(
        access.clone(),
        Instant::now() + Duration::from_secs(expires_in),
    );
    Json(
        json!({"token_type": "Bearer", "expires_in": expires_in, "server_time": 1_763_780_000,
        "access_token": access, "refresh_token": refresh}),
    )
    .into_response()
}
