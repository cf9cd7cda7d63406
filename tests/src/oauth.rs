//! An OAuth token endpoint that behaves as Kommo's does (every refresh returns a new refresh
//! token and kills the one used; a dead one is refused with `invalid_grant`), and the scenario
//! both engines' token stores run: two instances (providers with their own store handles)
//! hammering one connection over four expiries.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wabridge_core::clock::Clock;
use wabridge_core::oauth::{Grant, OAuthError, TokenEndpoint, TokenProvider, TokenStore};

/// Refreshes take 50 ms, so concurrent callers overlap.
pub struct Rotating {
    pub live: Mutex<(HashSet<String>, u64)>,
    pub calls: AtomicUsize,
    pub refused: AtomicUsize,
}

impl Rotating {
    pub fn new(live: &[&str]) -> Arc<Rotating> {
        Arc::new(Rotating {
            live: Mutex::new((live.iter().map(|s| s.to_string()).collect(), 0)),
            calls: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        })
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenEndpoint for Rotating {
    async fn refresh(&self, refresh_token: &str) -> Result<Grant, OAuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut live = self.live.lock().unwrap();
        if !live.0.remove(refresh_token) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(OAuthError::Rejected("invalid_grant".into()));
        }
        live.1 += 1;
        let n = live.1;
        live.0.insert(format!("rt-{n}"));
        Ok(Grant {
            access_token: format!("at-{n}"),
            refresh_token: Some(format!("rt-{n}")),
            expires_in: Some(Duration::from_secs(86_400)),
        })
    }
}

pub const START: i64 = 1_800_000_000_000;

/// A provider over `store` with the configured refresh token `rt-configured`.
pub fn provider(
    store: Arc<dyn TokenStore>,
    endpoint: &Arc<Rotating>,
    clock: &Clock,
) -> Arc<TokenProvider> {
    Arc::new(TokenProvider::new(endpoint.clone(), store, "rt-configured").with_clock(clock.clone()))
}

/// Two instances, 24 concurrent callers, four expiries: one refresh per expiry, no spent
/// refresh token ever sent, and the last rotated token stored. `store` makes one instance's
/// handle on the shared store.
pub async fn one_refresh_per_expiry(store: impl Fn() -> Arc<dyn TokenStore>) {
    let endpoint = Rotating::new(&["rt-configured"]);
    let clock = Clock::manual(START);
    let a = provider(store(), &endpoint, &clock);
    let b = provider(store(), &endpoint, &clock);
    for round in 1..=4 {
        let calls: Vec<_> = (0..24)
            .map(|i| {
                let p = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { p.access_token().await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), format!("at-{round}"));
        }
        assert_eq!(endpoint.calls(), round, "one refresh per expiry");
        // Within its life the token is used as it is.
        clock.advance(Duration::from_secs(20 * 3600));
        assert_eq!(a.access_token().await.unwrap(), format!("at-{round}"));
        assert_eq!(endpoint.calls(), round);
        // Past its refresh point (a day less five minutes) the next caller refreshes.
        clock.advance(Duration::from_secs(4 * 3600));
    }
    assert_eq!(
        endpoint.refused.load(Ordering::SeqCst),
        0,
        "no spent token reused"
    );
    let stored = store().load().await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("rt-4"));
    assert_eq!(stored.version, 4);
}

/// A lease a crashed holder left is waited out, then taken over; the provider gives it back.
pub async fn a_crashed_holders_lease_is_taken_over(store: impl Fn() -> Arc<dyn TokenStore>) {
    let endpoint = Rotating::new(&["rt-configured"]);
    let clock = Clock::manual(START);
    let ghost = store();
    assert!(ghost.lease("ghost", START, START + 30_000).await.unwrap());
    let p = provider(store(), &endpoint, &clock);
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.access_token().await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "waits while the lease runs");
    assert_eq!(endpoint.calls(), 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(waiting.await.unwrap().unwrap(), "at-1");
    assert!(ghost
        .lease("ghost", START + 31_000, START + 61_000)
        .await
        .unwrap());
}
