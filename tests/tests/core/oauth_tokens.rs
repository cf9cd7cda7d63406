//! The OAuth token provider (`wabridge_core::oauth`) over the SQLite store, two "instances"
//! (providers with their own database handles on one file) and a token endpoint that behaves as
//! Kommo's does: every refresh returns a new refresh token and kills the one used, and a dead
//! token is refused (`invalid_grant`). Refreshes take 50 ms, so concurrent callers overlap.
//!
//! What would break them: two refreshes for one expiry (a spent refresh token, then a refused
//! one), a rotated refresh token not written before use (the next refresh refused), a refresh
//! before the token is due or none after, a refused stored token with no fallback to the
//! configured one, an invalidated token used again, or a crashed holder's lease never taken over.

use std::sync::Arc;
use std::time::Duration;

use wabridge_core::clock::Clock;
use wabridge_core::oauth::{OAuthError, TokenProvider, TokenStore};
use wabridge_sqlite::{Db, SqliteTokenStore};
use wabridge_tests::oauth::{Rotating, START};

fn instance(path: &std::path::Path, endpoint: &Arc<Rotating>, clock: &Clock) -> Arc<TokenProvider> {
    let store = SqliteTokenStore::new(Db::open(path).unwrap(), "kommo");
    wabridge_tests::oauth::provider(Arc::new(store), endpoint, clock)
}

fn stores(path: &std::path::Path) -> impl Fn() -> Arc<dyn TokenStore> + '_ {
    move || Arc::new(SqliteTokenStore::new(Db::open(path).unwrap(), "kommo"))
}

#[tokio::test]
async fn one_refresh_per_expiry_across_callers_and_instances_and_no_rotated_token_lost() {
    let dir = tempfile::tempdir().unwrap();
    wabridge_tests::oauth::one_refresh_per_expiry(stores(&dir.path().join("w.db"))).await;
}

#[tokio::test]
async fn a_crashed_holders_lease_is_taken_over_when_it_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    wabridge_tests::oauth::a_crashed_holders_lease_is_taken_over(stores(&dir.path().join("w.db")))
        .await;
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
    assert_eq!(endpoint.calls(), 2);
}
