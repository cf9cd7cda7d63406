//! API keys with scopes: which key may call which route.
//!
//! A deployment holds several keys at once, each with an id (for logs and the audit trail; the
//! key itself is never shown) and scopes:
//!
//! | scope | routes |
//! | --- | --- |
//! | `sends` | `POST /sends` |
//! | `consents` | `POST /consents` |
//! | `read` | `GET /sends/{id}`, `GET /consents` |
//! | `admin` | every route, and what has no scope of its own (`/links`, `/conversions`) |
//!
//! Keys come from `WABRIDGE_API_KEYS` (a secret: the secrets file locally, the one secret on
//! AWS), a JSON array of `{"id": "...", "scopes": ["sends"], "key": "..."}`. The single
//! `WABRIDGE_API_KEY` of earlier versions keeps working as an `admin` key with the id
//! [`LEGACY_KEY_ID`]. Several keys may carry the same scopes, which is how a key is rotated
//! without downtime: add the new key, move the callers, remove the old one.
//!
//! Keys are compared as SHA-256 digests, every configured key each time, in constant time: the
//! answer's timing says nothing about which key, or how much of one, matched.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{self, ConfigError};
use crate::http::{ApiError, Request};

/// The id of the key `WABRIDGE_API_KEY` sets.
pub const LEGACY_KEY_ID: &str = "default";
/// Shortest key accepted: a guessable key is no key.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key id (it goes into logs and audit lines).
const MAX_ID_LEN: usize = 64;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Sends,
    Consents,
    Read,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Sends, Scope::Consents, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Sends => "sends",
            Scope::Consents => "consents",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key as configured. `Debug` leaves the key out.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub id: String,
    pub scopes: Vec<String>,
    pub key: String,
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySpec")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

struct Entry {
    id: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl Entry {
    fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// Who called: the id of the key that authorized the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
}

/// The configured keys. `Debug` shows ids and scopes only.
#[derive(Default)]
pub struct ApiKeys {
    keys: Vec<Entry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.id, &k.scopes)))
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn invalid(value: impl Into<String>, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        name: config::WABRIDGE_API_KEYS,
        value: value.into(),
        expected,
    }
}

impl ApiKeys {
    /// No key: every keyed route answers 503 (fail closed).
    pub fn none() -> ApiKeys {
        ApiKeys::default()
    }

    /// One `admin` key (`WABRIDGE_API_KEY`); blank is no key.
    pub fn admin(key: Option<&str>) -> ApiKeys {
        let mut keys = ApiKeys::none();
        if let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) {
            keys.keys.push(Entry {
                id: LEGACY_KEY_ID.into(),
                digest: digest(key),
                scopes: vec![Scope::Admin],
            });
        }
        keys
    }

    /// `WABRIDGE_API_KEY` (an admin key) and `WABRIDGE_API_KEYS` (a JSON array of
    /// [`KeySpec`]). An unknown scope, a duplicate id or key, a short key or malformed JSON is
    /// an error naming `WABRIDGE_API_KEYS`.
    pub fn parse(legacy: Option<&str>, keys: Option<&str>) -> Result<ApiKeys, ConfigError> {
        let specs: Vec<KeySpec> = match keys.map(str::trim).filter(|k| !k.is_empty()) {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                invalid(
                    crate::redact::json_problem(&e),
                    r#"a JSON array of {"id": "...", "scopes": ["sends"|"consents"|"read"|"admin"], "key": "..."}"#,
                )
            })?,
        };
        ApiKeys::from_specs(legacy, specs)
    }

    /// As [`ApiKeys::parse`], from specs already read (the local secrets file).
    pub fn from_specs(legacy: Option<&str>, specs: Vec<KeySpec>) -> Result<ApiKeys, ConfigError> {
        let mut keys = ApiKeys::admin(legacy);
        for spec in specs {
            let id = spec.id.trim();
            let valid_id = !id.is_empty()
                && id.len() <= MAX_ID_LEN
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_id {
                return Err(invalid(
                    id,
                    "key ids of 1 to 64 letters, digits, '-', '_' or '.'",
                ));
            }
            if keys.keys.iter().any(|k| k.id == id) {
                return Err(invalid(id, "a distinct id for every key"));
            }
            let key = spec.key.trim();
            if key.len() < MIN_KEY_LEN {
                // The key itself is never echoed: its id says which one.
                return Err(invalid(
                    format!("key {id}"),
                    "keys of at least 16 characters",
                ));
            }
            let scopes = spec
                .scopes
                .iter()
                .map(|s| {
                    Scope::parse(s.trim()).ok_or_else(|| {
                        invalid(s.as_str(), "scopes among sends, consents, read, admin")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if scopes.is_empty() {
                return Err(invalid(format!("key {id}"), "at least one scope per key"));
            }
            let digest = digest(key);
            if keys.keys.iter().any(|k| k.digest == digest) {
                return Err(invalid(format!("key {id}"), "a distinct key for every id"));
            }
            keys.keys.push(Entry {
                id: id.to_string(),
                digest,
                scopes,
            });
        }
        Ok(keys)
    }

    /// The keys a process reads through `get` (the environment, or the secret merged over it):
    /// `WABRIDGE_API_KEY` and `WABRIDGE_API_KEYS`; blank counts as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ApiKeys, ConfigError> {
        ApiKeys::parse(
            get(config::WABRIDGE_API_KEY).as_deref(),
            get(config::WABRIDGE_API_KEYS).as_deref(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, for a start-up log line.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Checks `Authorization: Bearer <key>` for `scope` on `route` (named in the 403). No key
    /// configured: 503 (a deployment problem). Missing or unknown key: 401. A known key without
    /// the scope: 403 naming it.
    pub fn authorize(&self, req: &Request, scope: Scope, route: &str) -> Result<Caller, ApiError> {
        if self.keys.is_empty() {
            return Err(ApiError::Unavailable(format!(
                "no API key is configured ({} or {}): this route is disabled",
                config::WABRIDGE_API_KEY,
                config::WABRIDGE_API_KEYS
            )));
        }
        let given = req
            .header("authorization")
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing `Authorization: Bearer <API key>`".into())
            })?;
        let given = digest(given);
        // Every key is compared, whichever matches.
        let mut found: Option<&Entry> = None;
        for entry in &self.keys {
            if bool::from(entry.digest.ct_eq(&given)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or_else(|| ApiError::Unauthorized("wrong API key".into()))?;
        if !entry.allows(scope) {
            return Err(ApiError::Forbidden(format!(
                "API key `{}` lacks the scope `{scope}`, which {route} needs",
                entry.id
            )));
        }
        Ok(Caller {
            key_id: entry.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: Option<&str>) -> Request {
        Request {
            method: crate::http::Method::Get,
            path: "/sends/x".into(),
            query: None,
            headers: key
                .map(|k| vec![("authorization".to_string(), format!("Bearer {k}"))])
                .unwrap_or_default(),
            body: vec![],
        }
    }

    const KEYS: &str = r#"[
        {"id": "crm-sends", "scopes": ["sends"], "key": "sends-key-0123456789"},
        {"id": "crm-next", "scopes": ["sends", "read"], "key": "next-key-0123456789"},
        {"id": "ops", "scopes": ["admin"], "key": "admin-key-0123456789"}
    ]"#;

    #[test]
    fn each_key_reaches_its_scopes_and_admin_reaches_all() {
        let keys = ApiKeys::parse(Some("legacy-key-0123456789"), Some(KEYS)).unwrap();
        assert_eq!(keys.ids(), ["default", "crm-sends", "crm-next", "ops"]);
        let sends = request(Some("sends-key-0123456789"));
        assert_eq!(
            keys.authorize(&sends, Scope::Sends, "POST /sends")
                .unwrap()
                .key_id,
            "crm-sends"
        );
        let err = keys
            .authorize(&sends, Scope::Read, "GET /sends/{id}")
            .unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(err.to_string().contains("`read`"), "{err}");
        assert!(err.to_string().contains("crm-sends"), "{err}");
        // Rotation: two keys with the same scopes both work.
        let next = request(Some("next-key-0123456789"));
        assert!(keys.authorize(&next, Scope::Sends, "POST /sends").is_ok());
        for key in ["admin-key-0123456789", "legacy-key-0123456789"] {
            for scope in Scope::ALL {
                assert!(keys.authorize(&request(Some(key)), scope, "r").is_ok());
            }
        }
        assert_eq!(
            keys.authorize(&request(Some("nope-0123456789abc")), Scope::Read, "r")
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            keys.authorize(&request(None), Scope::Read, "r")
                .unwrap_err()
                .status(),
            401
        );
        // A key not sent as a bearer token is no key.
        let mut basic = request(None);
        basic
            .headers
            .push(("authorization".into(), "admin-key-0123456789".into()));
        assert_eq!(
            keys.authorize(&basic, Scope::Read, "r")
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            ApiKeys::none()
                .authorize(&sends, Scope::Sends, "r")
                .unwrap_err()
                .status(),
            503
        );
    }

    #[test]
    fn bad_key_settings_name_the_variable_and_never_the_key() {
        let bad = [
            (
                r#"[{"id": "a", "scopes": ["write"], "key": "0123456789abcdef"}]"#,
                "\"write\"",
            ),
            (
                r#"[{"id": "a", "scopes": [], "key": "0123456789abcdef"}]"#,
                "at least one scope",
            ),
            (
                r#"[{"id": "a", "scopes": ["read"], "key": "short"}]"#,
                "16 characters",
            ),
            (
                r#"[{"id": "a", "scopes": ["read"], "key": "0123456789abcdef"},
                    {"id": "a", "scopes": ["read"], "key": "fedcba9876543210"}]"#,
                "distinct id",
            ),
            (
                r#"[{"id": "a", "scopes": ["read"], "key": "0123456789abcdef"},
                    {"id": "b", "scopes": ["sends"], "key": "0123456789abcdef"}]"#,
                "distinct key",
            ),
            (
                r#"[{"id": "a b", "scopes": ["read"], "key": "0123456789abcdef"}]"#,
                "key ids",
            ),
            (r#"{"id": "a"}"#, "JSON array"),
            // A key of the wrong type is named by position, not quoted.
            (
                r#"[{"id": "a", "scopes": ["read"], "key": 1234567890123456789}]"#,
                "wrong type",
            ),
        ];
        for (json, says) in bad {
            let err = ApiKeys::parse(None, Some(json)).unwrap_err().to_string();
            assert!(err.contains("WABRIDGE_API_KEYS"), "{err}");
            assert!(err.contains(says), "{json}: {err}");
            assert!(!err.contains("0123456789abcdef"), "{err}");
            assert!(!err.contains("1234567890123456789"), "{err}");
        }
        assert!(ApiKeys::parse(None, None).unwrap().is_empty());
        assert!(ApiKeys::parse(Some("  "), Some("")).unwrap().is_empty());
        let shown = format!("{:?}", ApiKeys::parse(None, Some(KEYS)).unwrap());
        assert!(!shown.contains("key-0123456789"), "{shown}");
    }
}
