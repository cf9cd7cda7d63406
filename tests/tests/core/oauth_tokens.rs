//! The OAuth token provider (`wabridge_core::oauth`) over the SQLite store, two "instances"
//! (providers with their own database handles on one file) and a token endpoint that behaves as
//! Kommo's does: every refresh returns a new refresh token and kills the one used, and a dead
//! token is refused (`invalid_grant`). Refreshes take 50 ms, so concurrent callers overlap.
//!
//! What would break them: two refreshes for one expiry (a spent refresh token, then a refused
//! one), a rotated refresh token not written before use (the next refresh refused), a refresh
//! before the token is due or none after, a refused stored token with no fallback to the
//! configured one, an invalidated token used again, or a crashed holder's lease never taken over.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wabridge_core::clock::Clock;
use wabridge_core::oauth::{Grant, OAuthError, TokenEndpoint, TokenProvider, TokenStore};
use wabridge_sqlite::{Db, SqliteTokenStore};

/// A token endpoint that rotates refresh tokens and refuses spent ones.
struct Rotating {
    live: Mutex<(HashSet<String>, u64)>,
    calls: AtomicUsize,
    refused: AtomicUsize,
}

impl Rotating {
    fn new(live: &[&str]) -> Arc<Rotating> {
        Arc::new(Rotating {
            live: Mutex::new((live.iter().map(|s| s.to_string()).collect(), 0)),
            calls: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        })
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

const START: i64 = 1_800_000_000_000;

fn instance(path: &std::path::Path, endpoint: &Arc<Rotating>, clock: &Clock) -> Arc<TokenProvider> {
    let store = SqliteTokenStore::new(Db::open(path).unwrap(), "kommo");
    Arc::new(
        TokenProvider::new(endpoint.clone(), Arc::new(store), "rt-configured")
            .with_clock(clock.clone()),
    )
}

#[tokio::test]
async fn one_refresh_per_expiry_across_callers_and_instances_and_no_rotated_token_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let endpoint = Rotating::new(&["rt-configured"]);
    let clock = Clock::manual(START);
    let a = instance(&path, &endpoint, &clock);
    let b = instance(&path, &endpoint, &clock);
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
        assert_eq!(
            endpoint.calls.load(Ordering::SeqCst),
            round,
            "one refresh per expiry"
        );
        // Within its life the token is used as it is.
        clock.advance(Duration::from_secs(20 * 3600));
        assert_eq!(a.access_token().await.unwrap(), format!("at-{round}"));
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), round);
        // Past its refresh point (a day less five minutes) the next caller refreshes.
        clock.advance(Duration::from_secs(4 * 3600));
    }
    assert_eq!(
        endpoint.refused.load(Ordering::SeqCst),
        0,
        "no spent token reused"
    );
    let stored = SqliteTokenStore::new(Db::open(&path).unwrap(), "kommo")
        .load()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("rt-4"));
    assert_eq!(stored.version, 4);
}

#[tokio::test]
async fn a_refused_stored_token_falls_back_to_the_configured_one_then_says_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let endpoint = Rotating::new(&["rt-configured"]);
    let clock = Clock::manual(START);
    let p = instance(&path, &endpoint, &clock);
    assert_eq!(p.access_token().await.unwrap(), "at-1");
    // The CRM forgets the stored token (revoked); an operator re-authorised and configured a
    // new one, which the endpoint takes.
    endpoint.live.lock().unwrap().0 = ["rt-configured".to_string()].into();
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(p.access_token().await.unwrap(), "at-2");
    // Nothing live any more: the error says the credentials are refused, naming no token.
    endpoint.live.lock().unwrap().0.clear();
    clock.advance(Duration::from_secs(86_400));
    let err = p.access_token().await.unwrap_err();
    assert!(matches!(err, OAuthError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().contains("rt-"), "{err}");
}

#[tokio::test]
async fn an_invalidated_token_is_refreshed_once_and_an_old_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let endpoint = Rotating::new(&["rt-configured"]);
    let clock = Clock::manual(START);
    let a = instance(&path, &endpoint, &clock);
    let b = instance(&path, &endpoint, &clock);
    assert_eq!(a.access_token().await.unwrap(), "at-1");
    assert_eq!(b.access_token().await.unwrap(), "at-1");
    // The CRM ended the session early (a 401 with a token not yet due).
    a.invalidate("at-1").await;
    assert_eq!(a.access_token().await.unwrap(), "at-2");
    // The other instance hears the same 401 for the same token: already replaced.
    b.invalidate("at-1").await;
    assert_eq!(b.access_token().await.unwrap(), "at-2");
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_crashed_holders_lease_is_taken_over_when_it_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let endpoint = Rotating::new(&["rt-configured"]);
    let clock = Clock::manual(START);
    let ghost = SqliteTokenStore::new(Db::open(&path).unwrap(), "kommo");
    assert!(ghost.lease("ghost", START, START + 30_000).await.unwrap());
    let p = instance(&path, &endpoint, &clock);
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.access_token().await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "waits while the lease runs");
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(waiting.await.unwrap().unwrap(), "at-1");
    // The provider gave the lease back after its refresh: anyone may take it again.
    assert!(ghost
        .lease("ghost", START + 31_000, START + 61_000)
        .await
        .unwrap());
}
