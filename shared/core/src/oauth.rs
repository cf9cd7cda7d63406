//! OAuth access tokens for the CRMs that need them (Zoho, Kommo, Pipedrive apps, Salesforce),
//! done once: [`TokenProvider`] hands out a valid access token, refreshing it before it expires,
//! with one refresh in flight per process and one across every instance sharing a
//! [`TokenStore`], so a refresh token the CRM rotates (Kommo's die on first use) is never lost
//! to two instances racing.
//!
//! Each CRM's token endpoint has its own request shape ([`TokenEndpoint`], in the adapter); the
//! store is the engine's (a SQLite row locally, a DynamoDB item on AWS), written with a version
//! check, and the refresh itself happens under a lease in the same store:
//!
//! 1. a token with more than [`REFRESH_AHEAD`] left (or a tenth of its life, when shorter) is
//!    used as it is;
//! 2. otherwise the instance takes the lease, reads the stored set again (another instance may
//!    have refreshed meanwhile), refreshes with the stored refresh token (or the configured one
//!    before the first refresh), and writes the new set, rotated refresh token included, before
//!    it uses the access token;
//! 3. an instance that finds the lease taken waits for the new set.
//!
//! A refresh token the CRM refuses (`invalid_grant`: revoked, expired, rotated away) is tried
//! once more with the configured one when that differs (an operator re-authorised and put the
//! new token in the secret); then the error is [`OAuthError::Rejected`], which the adapters map
//! to the CRM's credentials being broken (events wait, an alarm says so).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, RwLock};

use crate::clock::Clock;
use crate::error::StoreError;

/// Refresh this long before the access token expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// How long a refresh may hold the lease (a token endpoint's timeout, with room).
pub const LEASE: Duration = Duration::from_secs(30);
/// The lifetime assumed when the endpoint gives no `expires_in` (Salesforce): short, so the
/// token is refreshed rather than trusted for long (a 401 also invalidates it).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(900);
/// How often an instance waiting for another's refresh looks again.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// The current tokens as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When to stop using the access token and refresh it (Unix ms): its expiry less
    /// [`REFRESH_AHEAD`] (or a tenth of its life, when that is shorter).
    pub refresh_at: i64,
    /// Bumped by every write: writes are conditional on it.
    pub version: u64,
}

impl std::fmt::Debug for TokenSet {
    // Tokens never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("refresh_at", &self.refresh_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// Whether the access token is good to use at `now` (Unix ms).
    pub fn fresh_at(&self, now: i64) -> bool {
        self.refresh_at > now
    }
}

/// When a token granted at `now` for `lifetime` is to be refreshed.
fn refresh_at(now: i64, lifetime: Duration) -> i64 {
    let ahead = REFRESH_AHEAD.min(lifetime / 10);
    now + lifetime.saturating_sub(ahead).as_millis() as i64
}

/// What a token endpoint answered to a refresh.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub access_token: String,
    /// A new refresh token when the CRM rotates them.
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

impl Grant {
    /// The grant in a token endpoint's successful answer (`status` 2xx, a non-empty
    /// `access_token`; `refresh_token` when the CRM rotates it, `expires_in` in seconds), or
    /// the CRM unavailable. Each adapter reads its CRM's refusals before this.
    pub fn from_answer(status: u16, body: &serde_json::Value) -> Result<Grant, OAuthError> {
        let text = |k: &str| body[k].as_str().filter(|t| !t.is_empty());
        match text("access_token") {
            Some(token) if (200..300).contains(&status) => Ok(Grant {
                access_token: token.to_string(),
                refresh_token: text("refresh_token").map(String::from),
                expires_in: body["expires_in"].as_u64().map(Duration::from_secs),
            }),
            _ => Err(OAuthError::Unavailable(format!(
                "HTTP {status} without an access token"
            ))),
        }
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("rotated", &self.refresh_token.is_some())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The CRM refused the refresh token or the client (`invalid_grant`, `invalid_client`):
    /// someone must re-authorise; retrying cannot help until then.
    #[error("the CRM refused the OAuth credentials: {0}")]
    Rejected(String),
    /// The endpoint was unavailable (5xx, 429, timeout): retry later.
    #[error("the CRM's token endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A CRM's token endpoint (its own request shape: Zoho's query string, Kommo's JSON, Pipedrive's
/// Basic client authentication).
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, OAuthError>;
}

/// Where one CRM connection's tokens live, shared by every instance.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError>;
    /// Writes `next` when the stored version is still `expected` (`None`: nothing stored);
    /// `false` when another writer got there first.
    async fn swap(&self, expected: Option<u64>, next: &TokenSet) -> Result<bool, StoreError>;
    /// Takes the refresh lease for `holder` until `until` (Unix ms); `false` while another
    /// holder's lease runs.
    async fn lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, StoreError>;
    /// Gives the lease back (only `holder`'s).
    async fn release(&self, holder: &str) -> Result<(), StoreError>;
}

/// Hands out access tokens for one CRM connection. Cheap to share (`Arc` it).
pub struct TokenProvider {
    endpoint: Arc<dyn TokenEndpoint>,
    store: Arc<dyn TokenStore>,
    /// The refresh token from the secret: used before the first refresh, and again when the
    /// stored one is refused and this one differs.
    configured: String,
    cached: RwLock<Option<TokenSet>>,
    /// One refresh in flight per process.
    flight: Mutex<()>,
    holder: String,
    clock: Clock,
}

impl TokenProvider {
    pub fn new(
        endpoint: Arc<dyn TokenEndpoint>,
        store: Arc<dyn TokenStore>,
        configured_refresh_token: impl Into<String>,
    ) -> TokenProvider {
        TokenProvider {
            endpoint,
            store,
            configured: configured_refresh_token.into(),
            cached: RwLock::new(None),
            flight: Mutex::new(()),
            holder: uuid::Uuid::new_v4().to_string(),
            clock: Clock::System,
        }
    }

    /// The same provider on `clock` (tests move time).
    pub fn with_clock(mut self, clock: Clock) -> TokenProvider {
        self.clock = clock;
        self
    }

    /// A valid access token.
    pub async fn access_token(&self) -> Result<String, OAuthError> {
        if let Some(token) = self.cached_fresh().await {
            return Ok(token);
        }
        let _flight = self.flight.lock().await;
        if let Some(token) = self.cached_fresh().await {
            return Ok(token);
        }
        let set = self.fresh_set().await?;
        let token = set.access_token.clone();
        *self.cached.write().await = Some(set);
        Ok(token)
    }

    /// The CRM refused `access_token` before its time (Salesforce ends idle sessions): the next
    /// call refreshes, unless another caller already did.
    pub async fn invalidate(&self, access_token: &str) {
        // The store first: a caller between the two steps that found the cache empty would
        // otherwise read the refused token back from the store as fresh.
        if let Ok(Some(mut set)) = self.store.load().await {
            if set.access_token == access_token && set.refresh_at > 0 {
                let expected = set.version;
                set.refresh_at = 0;
                set.version += 1;
                // Lost to a writer that refreshed meanwhile: that is the point anyway.
                let _ = self.store.swap(Some(expected), &set).await;
            }
        }
        let mut cached = self.cached.write().await;
        if cached
            .as_ref()
            .is_some_and(|set| set.access_token == access_token)
        {
            *cached = None;
        }
    }

    async fn cached_fresh(&self) -> Option<String> {
        let cached = self.cached.read().await;
        let set = cached.as_ref()?;
        set.fresh_at(self.clock.now_ms())
            .then(|| set.access_token.clone())
    }

    /// The stored set when it is fresh; else one refresh under the lease, or the set another
    /// instance's refresh wrote.
    async fn fresh_set(&self) -> Result<TokenSet, OAuthError> {
        // Real time, not the clock: a waiting instance gives up even on a test's manual clock.
        let started = std::time::Instant::now();
        loop {
            let now = self.clock.now_ms();
            let stored = self.store.load().await?;
            if let Some(set) = stored.filter(|s| s.fresh_at(now)) {
                return Ok(set);
            }
            let until = now + LEASE.as_millis() as i64;
            if self.store.lease(&self.holder, now, until).await? {
                let result = self.refresh_leased().await;
                if let Err(e) = self.store.release(&self.holder).await {
                    tracing::warn!(error = %e, "OAuth refresh lease not released; it expires");
                }
                return result;
            }
            if started.elapsed() > 2 * LEASE {
                return Err(OAuthError::Unavailable(
                    "another instance's token refresh did not finish".into(),
                ));
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    /// Refreshes while holding the lease, and writes the new set before anyone uses it.
    async fn refresh_leased(&self) -> Result<TokenSet, OAuthError> {
        // Read again under the lease: a refresh that finished just before is used as it is.
        let stored = self.store.load().await?;
        let now = self.clock.now_ms();
        if let Some(set) = stored.as_ref().filter(|s| s.fresh_at(now)) {
            return Ok(set.clone());
        }
        let current = stored
            .as_ref()
            .and_then(|s| s.refresh_token.clone())
            .unwrap_or_else(|| self.configured.clone());
        let (grant, used) = match self.endpoint.refresh(&current).await {
            Err(OAuthError::Rejected(why)) if current != self.configured => {
                tracing::warn!("the stored refresh token was refused; trying the configured one");
                match self.endpoint.refresh(&self.configured).await {
                    Ok(grant) => (grant, self.configured.clone()),
                    Err(OAuthError::Rejected(again)) => {
                        return Err(OAuthError::Rejected(format!("{why}; then {again}")))
                    }
                    Err(e) => return Err(e),
                }
            }
            other => (other?, current),
        };
        let lifetime = grant.expires_in.unwrap_or(DEFAULT_LIFETIME);
        let mut next = TokenSet {
            access_token: grant.access_token,
            refresh_token: Some(grant.refresh_token.unwrap_or(used)),
            refresh_at: refresh_at(now, lifetime),
            version: stored.as_ref().map_or(1, |s| s.version + 1),
        };
        let mut expected = stored.as_ref().map(|s| s.version);
        // Bounded: each lost swap needs a 401 heard in the moment between our read and write.
        for _ in 0..10 {
            if self.store.swap(expected, &next).await? {
                tracing::info!(
                    rotated = next.refresh_token.is_some(),
                    "OAuth token refreshed"
                );
                return Ok(next);
            }
            // A caller that heard a 401 for the token being replaced marked it due meanwhile
            // (`invalidate`: same tokens, a new version): this refresh still stands.
            match (self.store.load().await?, &stored) {
                (Some(latest), Some(old))
                    if latest.access_token == old.access_token
                        && latest.refresh_token == old.refresh_token =>
                {
                    expected = Some(latest.version);
                    next.version = latest.version + 1;
                }
                _ => break,
            }
        }
        // Only a lease that ran out lets another writer in: its set is the one to use, and
        // ours (a refresh token it may have rotated away) is dropped.
        tracing::warn!("OAuth token written by another instance during this refresh");
        match self.store.load().await? {
            Some(set) if set.fresh_at(now) => Ok(set),
            _ => Err(OAuthError::Unavailable(
                "the token changed during the refresh; try again".into(),
            )),
        }
    }
}

/// Tokens kept in this process only, for one-shot commands (`wabridge crm check` of the OAuth
/// CRMs): the engines' stores (`wabridge_sqlite::oauth_tokens`, `wabridge_aws::dynamo::oauth_tokens`)
/// are the ones that share a token between processes.
#[derive(Default)]
pub struct MemoryTokenStore(std::sync::Mutex<Option<TokenSet>>);

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn swap(&self, expected: Option<u64>, next: &TokenSet) -> Result<bool, StoreError> {
        let mut stored = self.0.lock().unwrap();
        if stored.as_ref().map(|s| s.version) != expected {
            return Ok(false);
        }
        *stored = Some(next.clone());
        Ok(true)
    }

    async fn lease(&self, _holder: &str, _now: i64, _until: i64) -> Result<bool, StoreError> {
        // One process: the provider's own lock already serialises its refreshes.
        Ok(true)
    }

    async fn release(&self, _holder: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer_gives_a_grant_only_with_a_token_and_a_2xx() {
        let body = serde_json::json!({"access_token": "at-1", "refresh_token": "rt-2", "expires_in": 3599});
        let grant = Grant::from_answer(200, &body).unwrap();
        assert_eq!(grant.access_token, "at-1");
        assert_eq!(grant.refresh_token.as_deref(), Some("rt-2"));
        assert_eq!(grant.expires_in, Some(Duration::from_secs(3599)));
        // An empty refresh token is none: keeping it would replace the stored one with "".
        let body = serde_json::json!({"access_token": "at-1", "refresh_token": ""});
        let grant = Grant::from_answer(200, &body).unwrap();
        assert_eq!((grant.refresh_token, grant.expires_in), (None, None));
        for (status, body) in [
            (200, serde_json::json!({"access_token": ""})),
            (200, serde_json::json!({"token_type": "Bearer"})),
            (302, serde_json::json!({"access_token": "at-1"})),
        ] {
            match Grant::from_answer(status, &body) {
                Err(OAuthError::Unavailable(why)) => {
                    assert_eq!(why, format!("HTTP {status} without an access token"))
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
    }

    #[test]
    fn tokens_are_refreshed_ahead_of_their_expiry_and_never_shown() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_at(0, hour), 3_300_000);
        // A short-lived token is refreshed a tenth of its life ahead, not five minutes.
        assert_eq!(refresh_at(0, Duration::from_secs(60)), 54_000);
        let set = TokenSet {
            access_token: "at-secret".into(),
            refresh_token: Some("rt-secret".into()),
            refresh_at: 1_000,
            version: 3,
        };
        assert!(set.fresh_at(999) && !set.fresh_at(1_000));
        let shown = format!("{set:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let grant = Grant {
            access_token: "at-secret".into(),
            refresh_token: Some("rt-secret".into()),
            expires_in: None,
        };
        assert!(!format!("{grant:?}").contains("secret"));
    }
}
