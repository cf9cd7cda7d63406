//! Pipedrive with OAuth, over the local Pipedrive and its OAuth server (`pipedrive_fake_oauth`,
//! which rotates refresh tokens and refuses spent ones): adapters of two instances share one
//! SQLite token store through an expiry (one refresh), a revoked access token is refreshed and
//! the call made again, a refused refresh token makes events wait (never dead-letter), the
//! settings choose the API token or OAuth and name what is wrong, and `wabridge crm check`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wabridge_core::clock::Clock;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::{TokenProvider, TokenStore};
use wabridge_crm::pipedrive::oauth::{ApiDomain, PipedriveTokenEndpoint};
use wabridge_crm::pipedrive::{PipedriveAuth, PipedriveCrm, PipedriveSettings};
use wabridge_sqlite::{Db, SqliteTokenStore};

use super::pipedrive_fake::{self, PipedriveFake};
use super::pipedrive_fake_oauth::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};
use super::{delivery, sync_over, text};
use crate::crm_http::TIMEOUT;

/// The Essential plan's OAuth burst limit per 2 s, and the search limit.
const LIMITS: (usize, usize) = (80, 10);
const LEASE: Duration = Duration::from_secs(3);

struct Subject {
    fake: Arc<PipedriveFake>,
    base: String,
    /// The token store (and the crm-sync stores) of every instance.
    db: Db,
    /// The instances' token providers' clock: moved past an access token's expiry.
    clock: Clock,
    _dir: tempfile::TempDir,
}

impl Subject {
    async fn start() -> Subject {
        let fake = Arc::new(PipedriveFake::new(LIMITS));
        let addr: SocketAddr = pipedrive_fake::serve(fake.clone()).await;
        let base = format!("http://{addr}");
        // The company's host, as Pipedrive names it in every token answer.
        *fake.oauth.api_domain.lock().unwrap() = Some(base.clone());
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db")).unwrap();
        Subject {
            fake,
            base,
            db,
            clock: Clock::manual(wabridge_core::clock::now_ms()),
            _dir: dir,
        }
    }

    /// The adapter of a new instance: its own token provider over the shared store.
    fn adapter(&self) -> Arc<dyn Crm> {
        self.adapter_on(&self.base)
    }

    /// [`Self::adapter`] with `PIPEDRIVE_API_URL` set to `base`.
    fn adapter_on(&self, base: &str) -> Arc<dyn Crm> {
        let mapping = mapping();
        let api_domain = ApiDomain::default();
        let endpoint = PipedriveTokenEndpoint::new(
            &self.base,
            CLIENT_ID,
            CLIENT_SECRET,
            &self.base,
            api_domain.clone(),
            TIMEOUT,
        )
        .unwrap();
        let store = SqliteTokenStore::new(self.db.clone(), "pipedrive:test");
        let tokens = TokenProvider::new(Arc::new(endpoint), Arc::new(store), REFRESH_TOKEN)
            .with_clock(self.clock.clone());
        let settings = PipedriveSettings {
            base: base.to_string(),
            auth: PipedriveAuth::OAuth {
                tokens: Arc::new(tokens),
                api_domain,
            },
            id_field: mapping.id_property.clone().unwrap(),
            bsuid_field: wabridge_crm::bsuid_field(&mapping).map(String::from),
            effect_field: mapping.effect_property.clone(),
            limits: LIMITS,
            timeout: TIMEOUT,
            search_lag: Duration::from_millis(200),
            conversations: mapping.conversations.clone(),
        };
        assert!(!format!("{settings:?}").contains(REFRESH_TOKEN));
        Arc::new(PipedriveCrm::new(settings).unwrap())
    }

    fn notes(&self) -> usize {
        self.fake.notes.lock().unwrap().len()
    }

    fn arrivals(&self) -> usize {
        self.fake.arrivals.lock().unwrap().len()
    }

    fn assert_documented(&self) {
        let problems = self.fake.problems.lock().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}

fn mapping() -> Mapping {
    Mapping::example("pipedrive").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_refresh_through_an_expiry() {
    let s = Subject::start().await;
    let a = sync_over(&s.db, s.adapter(), mapping(), LEASE).await;
    let b = sync_over(&s.db, s.adapter(), mapping(), LEASE).await;
    let first = text("wamid.PO0", "5215512340201", "a");
    assert_eq!(a.handle(&delivery(&first, 1)).await, Outcome::Done);
    let second = text("wamid.PO1", "5215512340202", "b");
    assert_eq!(b.handle(&delivery(&second, 1)).await, Outcome::Done);
    assert_eq!(
        s.fake.oauth.grants(),
        1,
        "the second instance used the stored token"
    );
    // Past the access token's hour: both instances, eight events each at once.
    s.clock.advance(Duration::from_secs(3600));
    let events: Vec<Value> = (0..16)
        .map(|i| {
            let from = ["5215512340201", "5215512340202"][i % 2];
            text(&format!("wamid.PO{}", i + 2), from, "x")
        })
        .collect();
    let outcomes = futures::future::join_all(events.iter().enumerate().map(|(i, e)| {
        let sync = if i % 2 == 0 { a.clone() } else { b.clone() };
        let d = delivery(e, 1);
        async move { sync.handle(&d).await }
    }))
    .await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    // The fake refuses a spent refresh token: the second refresh used the rotated one.
    assert_eq!(
        s.fake.oauth.grants(),
        2,
        "one refresh across both instances"
    );
    assert_eq!(s.notes(), 18);
    // A third instance (a restart) starts from the stored tokens, not the spent configured one.
    let c = sync_over(&s.db, s.adapter(), mapping(), LEASE).await;
    let third = text("wamid.PO99", "5215512340203", "c");
    assert_eq!(c.handle(&delivery(&third, 1)).await, Outcome::Done);
    assert_eq!(s.fake.oauth.grants(), 2);
    s.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_is_refreshed_and_the_call_made_again() {
    let s = Subject::start().await;
    // An api_domain that is not an https origin is not followed: calls stay on the base.
    *s.fake.oauth.api_domain.lock().unwrap() = Some("http://elsewhere.invalid".into());
    let sync = sync_over(&s.db, s.adapter(), mapping(), LEASE).await;
    let ev = text("wamid.PR0", "5215512340204", "uno");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(s.fake.oauth.grants(), 1);
    s.fake.oauth.expire_tokens();
    let before = s.arrivals();
    let ev = text("wamid.PR1", "5215512340204", "dos");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(s.fake.oauth.grants(), 2, "one refresh");
    // The note refused with 401, then sent again with the new token.
    assert_eq!(s.arrivals(), before + 2);
    assert_eq!(s.notes(), 2);
    s.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_to_the_api_domain_the_refresh_named() {
    let s = Subject::start().await;
    // `PIPEDRIVE_API_URL` names a host nobody answers on: only the token answer's api_domain
    // (the fake) can take the calls.
    let sync = sync_over(&s.db, s.adapter_on("http://127.0.0.1:9"), mapping(), LEASE).await;
    let ev = text("wamid.PD0", "5215512340207", "hola");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(s.notes(), 1);
    s.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_makes_events_wait_with_one_call() {
    let s = Subject::start().await;
    let sync = sync_over(&s.db, s.adapter(), mapping(), LEASE).await;
    let ev0 = text("wamid.PV0", "5215512340205", "x");
    assert_eq!(sync.handle(&delivery(&ev0, 1)).await, Outcome::Done);
    s.fake.oauth.refuse_refreshes.store(100, Ordering::SeqCst);
    s.fake.oauth.expire_tokens();
    let before = s.arrivals();
    let ev = text("wamid.PV1", "5215512340205", "hola");
    // However often it comes back, it waits: the app must be re-authorised, the event is fine.
    for receive in [1, 5] {
        match sync.handle(&delivery(&ev, receive)).await {
            Outcome::Retry { reason, .. } => {
                assert!(
                    reason.contains("credentials")
                        && reason.contains("PIPEDRIVE_REFRESH_TOKEN")
                        && reason.contains("Invalid grant"),
                    "{reason}"
                );
                assert!(
                    !reason.contains("refresh-") && !reason.contains(CLIENT_SECRET),
                    "{reason}"
                );
            }
            other => panic!("a refused refresh token → wait, got {other:?}"),
        }
    }
    assert_eq!(
        s.arrivals(),
        before + 1,
        "the 401, then no call with a dead token"
    );
    // Re-authorised: the event goes through.
    s.fake.oauth.refuse_refreshes.store(0, Ordering::SeqCst);
    assert_eq!(sync.handle(&delivery(&ev, 6)).await, Outcome::Done);
    assert_eq!(s.notes(), 2);
    s.assert_documented();
}

/// Settings, and the names their refusal must name.
type Case = (Vec<(String, String)>, &'static [&'static str]);

fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_choose_the_api_token_or_oauth_and_name_what_is_wrong() {
    let s = Subject::start().await;
    let db = s.db.clone();
    let stores: wabridge_crm::TokenStores = Arc::new(move |c: &str| {
        Arc::new(SqliteTokenStore::new(db.clone(), c)) as Arc<dyn TokenStore>
    });
    let good = [
        ("CRM_KIND", "pipedrive"),
        ("PIPEDRIVE_CLIENT_ID", CLIENT_ID),
        ("PIPEDRIVE_CLIENT_SECRET", CLIENT_SECRET),
        ("PIPEDRIVE_REFRESH_TOKEN", REFRESH_TOKEN),
        ("PIPEDRIVE_API_URL", s.base.as_str()),
        ("PIPEDRIVE_OAUTH_URL", s.base.as_str()),
    ];
    let with = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
        good.iter()
            .filter(|(k, _)| *k != name)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(value.map(|v| (name.to_string(), v.to_string())))
            .collect()
    };
    let api_token_only: Vec<(String, String)> = [
        ("CRM_KIND", "pipedrive"),
        ("PIPEDRIVE_API_URL", s.base.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cases: Vec<Case> = vec![
        // Both ways at once, and neither: the error names every variable involved.
        (
            with("PIPEDRIVE_API_TOKEN", Some(pipedrive_fake::TOKEN)),
            &["PIPEDRIVE_API_TOKEN", "PIPEDRIVE_CLIENT_ID", "not both"],
        ),
        (
            api_token_only,
            &[
                "PIPEDRIVE_API_TOKEN",
                "PIPEDRIVE_CLIENT_ID",
                "PIPEDRIVE_REFRESH_TOKEN",
            ],
        ),
        (
            with("PIPEDRIVE_CLIENT_SECRET", None),
            &["PIPEDRIVE_CLIENT_SECRET"],
        ),
        (
            with("PIPEDRIVE_REFRESH_TOKEN", None),
            &["PIPEDRIVE_REFRESH_TOKEN"],
        ),
        (
            with("PIPEDRIVE_OAUTH_URL", Some("oauth.pipedrive.com")),
            &["PIPEDRIVE_OAUTH_URL"],
        ),
        (
            with("PIPEDRIVE_BURST_LIMIT", Some("0")),
            &["PIPEDRIVE_BURST_LIMIT"],
        ),
    ];
    for (pairs, named) in &cases {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let e = wabridge_crm::from_lookup_with(
            &mapping(),
            None,
            None,
            Some(stores.clone()),
            settings(&refs),
        )
        .err()
        .expect("refused")
        .to_string();
        for name in *named {
            assert!(e.contains(name), "{name}: {e}");
        }
        assert!(
            !e.contains(CLIENT_SECRET)
                && !e.contains(REFRESH_TOKEN)
                && !e.contains(pipedrive_fake::TOKEN),
            "{e}"
        );
    }
    // Without the engine's token store (a command that has none) it says so.
    let e = wabridge_crm::from_lookup(&mapping(), None, None, settings(&good))
        .err()
        .unwrap();
    assert!(e.to_string().contains("token store"), "{e}");
    let crm = wabridge_crm::from_lookup_with(&mapping(), None, None, Some(stores), settings(&good))
        .unwrap();
    assert_eq!(crm.kind(), "pipedrive");
    let sync = sync_over(&s.db, crm, mapping(), LEASE).await;
    let ev = text("wamid.PS1", "5215512340206", "hola");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(s.fake.oauth.grants(), 1);
    assert_eq!(s.notes(), 1);
    s.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_check_refreshes_in_memory_and_names_a_refused_client() {
    let s = Subject::start().await;
    let run = |secret: &str| {
        let pairs = [
            ("CRM_KIND", "pipedrive"),
            ("PIPEDRIVE_CLIENT_ID", CLIENT_ID),
            ("PIPEDRIVE_CLIENT_SECRET", secret),
            ("PIPEDRIVE_REFRESH_TOKEN", REFRESH_TOKEN),
            ("PIPEDRIVE_API_URL", s.base.as_str()),
            ("PIPEDRIVE_OAUTH_URL", s.base.as_str()),
        ];
        let lookup = settings(&pairs);
        async move {
            wabridge_crm::check::check(&mapping(), lookup)
                .await
                .unwrap()
        }
    };
    let report = run("wrong-secret-value").await;
    let missing = report.missing.join("\n");
    assert!(
        !report.passed() && missing.contains("Invalid client: client is invalid"),
        "{missing}"
    );
    assert!(!missing.contains("wrong-secret-value"), "{missing}");
    assert_eq!(s.fake.oauth.grants(), 0);
    let report = run(CLIENT_SECRET).await;
    assert!(report.passed(), "{report:?}");
    assert!(report.ok.iter().any(|o| o == "credentials accepted"));
    assert_eq!(s.fake.oauth.grants(), 1);
    s.assert_documented();
}
