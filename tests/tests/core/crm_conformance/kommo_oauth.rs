//! Kommo with OAuth (issue 22, items 4 and 7): adapters built from settings
//! (`from_lookup_with`, as `wabridge serve` builds them) over one SQLite token store, against
//! the local Kommo's token endpoint, whose refresh tokens are single-use. Two processes through
//! an expiry refresh once each time and never send a spent refresh token; a refused refresh
//! token makes events wait, not dead-letter, until an operator re-authorises; the settings take
//! the long-lived token or OAuth, not both; `crm check` keeps the rotated token in the store.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wabridge_core::consumer::Outcome;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenStore;
use wabridge_sqlite::SqliteTokenStore;

use super::kommo::Kommo;
use super::kommo_fake::TOKEN;
use super::kommo_fake_oauth::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, REFRESH_TOKEN};
use super::*;

const LEASE: Duration = Duration::from_secs(3);

/// The OAuth settings against the fake, with `refresh_token` in the secret; two processes share
/// the account's 7 requests per second.
fn oauth_settings(h: &Harness<Kommo>, refresh_token: &str) -> HashMap<String, String> {
    [
        ("CRM_KIND", "kommo"),
        ("KOMMO_API_URL", &format!("http://{}", h.subject.addr)),
        ("KOMMO_CLIENT_ID", CLIENT_ID),
        ("KOMMO_CLIENT_SECRET", CLIENT_SECRET),
        ("KOMMO_REFRESH_TOKEN", refresh_token),
        ("KOMMO_REDIRECT_URI", REDIRECT_URI),
        ("KOMMO_RATE_PER_SECOND", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The data directory's token store (one row, whatever the connection's name).
fn store(h: &Harness<Kommo>) -> SqliteTokenStore {
    SqliteTokenStore::new(h.db.clone(), "kommo:test")
}

fn stores(h: &Harness<Kommo>) -> wabridge_crm::TokenStores {
    let db = h.db.clone();
    Arc::new(move |_: &str| {
        Arc::new(SqliteTokenStore::new(db.clone(), "kommo:test")) as Arc<dyn TokenStore>
    })
}

/// A new process: the adapter from settings, over the shared store.
fn process(h: &Harness<Kommo>, refresh_token: &str) -> Arc<dyn Crm> {
    let settings = oauth_settings(h, refresh_token);
    wabridge_crm::from_lookup_with(
        &Mapping::example("kommo").unwrap(),
        None,
        None,
        Some(stores(h)),
        move |n| settings.get(n).cloned(),
    )
    .unwrap()
}

async fn sync_of(h: &Harness<Kommo>, crm: Arc<dyn Crm>) -> Arc<CrmSync> {
    sync_over(&h.db, crm, Mapping::example("kommo").unwrap(), LEASE).await
}

fn refreshes(h: &Harness<Kommo>) -> u64 {
    h.subject.fake.oauth.refreshes.load(Ordering::SeqCst)
}

fn spent_sent(h: &Harness<Kommo>) -> Vec<String> {
    h.subject.fake.oauth.spent_sent.lock().unwrap().clone()
}

/// Both processes handle `events` at once, alternating.
async fn both(a: &Arc<CrmSync>, b: &Arc<CrmSync>, events: &[Value]) {
    let outcomes = futures::future::join_all(events.iter().enumerate().map(|(i, e)| {
        let sync = if i % 2 == 0 { a.clone() } else { b.clone() };
        let d = delivery(e, 1);
        async move { sync.handle(&d).await }
    }))
    .await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_rotating_refresh_tokens_through_an_expiry() {
    let h = Harness::<Kommo>::start().await;
    // Tokens that live eight seconds: the provider refreshes them 0.8 s ahead.
    h.subject.fake.oauth.expires_in.store(8, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let a = sync_of(&h, process(&h, REFRESH_TOKEN)).await;
    let b = sync_of(&h, process(&h, REFRESH_TOKEN)).await;
    let phones = ["5215512340301", "5215512340302"];
    let round = |r: usize, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| text(&format!("wamid.O{r}{i}"), phones[i % 2], "hola"))
            .collect()
    };
    // Neither process has a token: one refresh, with the configured refresh token.
    both(&a, &b, &round(0, 2)).await;
    assert_eq!(refreshes(&h), 1, "one refresh across both processes");
    // Past the refresh point, both at once, each holding the expiring token.
    tokio::time::sleep_until(started + Duration::from_millis(7_500)).await;
    both(&a, &b, &round(1, 6)).await;
    assert_eq!(
        refreshes(&h),
        2,
        "one refresh for the expiry, across both processes"
    );
    assert!(spent_sent(&h).is_empty(), "{:?}", spent_sent(&h));
    assert_eq!(h.subject.activities().len(), 8, "every event landed once");
    // The last rotated refresh token is the stored one: the next refresh (any process) works.
    let stored = store(&h).load().await.unwrap().unwrap();
    assert_eq!(stored.refresh_token, h.subject.fake.oauth.current());
    // The token endpoint took its turns on the account's pacer with the API calls.
    assert_eq!(h.subject.over_limit(), 0);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_refused_early_is_refreshed_and_the_call_made_again() {
    let h = Harness::<Kommo>::start().await;
    let sync = sync_of(&h, process(&h, REFRESH_TOKEN)).await;
    let ev = |k: &str| text(k, "5215512340311", "uno");
    assert_eq!(
        sync.handle(&delivery(&ev("wamid.E1"), 1)).await,
        Outcome::Done
    );
    assert_eq!(refreshes(&h), 1);
    h.subject.fake.oauth.expire_tokens();
    let before = h.subject.arrivals().len();
    assert_eq!(
        sync.handle(&delivery(&ev("wamid.E2"), 1)).await,
        Outcome::Done
    );
    assert_eq!(refreshes(&h), 2, "one refresh after the 401");
    // The note refused (401), the refresh, the note again.
    assert_eq!(h.subject.arrivals().len(), before + 3);
    assert_eq!(h.subject.activities().len(), 2);
    assert!(spent_sent(&h).is_empty());
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_makes_events_wait_until_reauthorised() {
    let h = Harness::<Kommo>::start().await;
    let sync = sync_of(&h, process(&h, REFRESH_TOKEN)).await;
    assert_eq!(
        sync.handle(&delivery(&text("wamid.R0", "5215512340321", "x"), 1))
            .await,
        Outcome::Done
    );
    // The grant is revoked in Kommo (the integration uninstalled, say).
    h.subject.fake.oauth.revoke();
    h.subject.fake.oauth.expire_tokens();
    let ev = text("wamid.R1", "5215512340321", "hola");
    match sync.handle(&delivery(&ev, 1)).await {
        Outcome::Retry { reason, .. } => {
            assert!(
                reason.contains("credentials") && reason.contains("KOMMO_REFRESH_TOKEN"),
                "{reason}"
            );
            assert!(
                !reason.contains("def50200") && !reason.contains(CLIENT_SECRET),
                "{reason}"
            );
        }
        other => panic!("a refused refresh token → wait, got {other:?}"),
    }
    assert_eq!(h.subject.activities().len(), 1, "nothing written");
    // Re-authorised: the new refresh token goes in the secret; the next process (a restart)
    // finds the stored one refused and uses it.
    h.subject
        .fake
        .oauth
        .reauthorise("def50200-kommo-reauthorised");
    let restarted = sync_of(&h, process(&h, "def50200-kommo-reauthorised")).await;
    assert_eq!(restarted.handle(&delivery(&ev, 2)).await, Outcome::Done);
    assert_eq!(h.subject.activities().len(), 2);
    h.assert_documented();
}

fn lookup(pairs: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    move |n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_take_the_long_lived_token_or_oauth_and_name_what_is_wrong() {
    let h = Harness::<Kommo>::start().await;
    let mapping = Mapping::example("kommo").unwrap();
    let good = oauth_settings(&h, REFRESH_TOKEN);
    let with = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
        good.iter()
            .filter(|(k, _)| *k != name)
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(value.map(|v| (name.to_string(), v.to_string())))
            .collect()
    };
    let cases = [
        (with("KOMMO_TOKEN", Some(TOKEN)), "not both"),
        (
            with("KOMMO_CLIENT_SECRET", None),
            "KOMMO_CLIENT_SECRET is not set",
        ),
        (
            with("KOMMO_REDIRECT_URI", None),
            "KOMMO_REDIRECT_URI is not set",
        ),
        (
            with("KOMMO_REDIRECT_URI", Some("gateway/oauth")),
            "KOMMO_REDIRECT_URI",
        ),
    ];
    for (pairs, named) in cases {
        let e =
            wabridge_crm::from_lookup_with(&mapping, None, None, Some(stores(&h)), lookup(pairs))
                .err()
                .expect("refused")
                .to_string();
        assert!(e.contains(named), "{named}: {e}");
        for secret in [TOKEN, CLIENT_SECRET, REFRESH_TOKEN] {
            assert!(!e.contains(secret), "{e}");
        }
    }
    // Neither: both ways are named.
    let e = wabridge_crm::from_lookup_with(
        &mapping,
        None,
        None,
        Some(stores(&h)),
        lookup(vec![("CRM_KIND".into(), "kommo".into())]),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("KOMMO_TOKEN") && e.contains("KOMMO_REFRESH_TOKEN"),
        "{e}"
    );
    // OAuth needs the engine's token store (a command without one says so).
    let e = wabridge_crm::from_lookup(&mapping, None, None, lookup(with("", None)))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("token store"), "{e}");
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_in_oauth_mode_keeps_the_rotated_refresh_token_in_the_store() {
    let h = Harness::<Kommo>::start().await;
    let settings = oauth_settings(&h, REFRESH_TOKEN);
    let mapping = Mapping::example("kommo").unwrap();
    let report =
        wabridge_crm::check::check_with(&mapping, Some(stores(&h)), |n| settings.get(n).cloned())
            .await
            .unwrap();
    assert!(report.passed(), "{report:?}");
    assert!(report.ok.iter().any(|l| l == "credentials accepted"));
    assert_eq!(refreshes(&h), 1);
    // `serve` after the check: the token the check rotated in, no spent one sent.
    let sync = sync_of(&h, process(&h, REFRESH_TOKEN)).await;
    let ev = text("wamid.C1", "5215512340331", "hola");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert!(spent_sent(&h).is_empty(), "{:?}", spent_sent(&h));
    assert_eq!(refreshes(&h), 1, "the check's access token served");
    h.assert_documented();
}
