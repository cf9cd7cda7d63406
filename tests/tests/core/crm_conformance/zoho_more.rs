//! What Zoho does beyond the suite: OAuth (an expired token refreshed and the call made again;
//! two processes refreshing once; a revoked grant making events wait), the settings path
//! (`from_lookup_with`: refusals name the variable, a good set reaches the fake), a person known
//! by the BSUID first gaining the phone, erasure, and `wabridge crm check`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::Outcome;
use wabridge_core::crm::Effect;
use wabridge_core::erasure::ErasureItem;
use wabridge_core::mapping::Mapping;
use wabridge_core::records::Record;
use wabridge_crm::check::check;
use wabridge_sqlite::SqliteTokenStore;

use super::zoho::Zoho;
use super::zoho_fake::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};
use super::*;

fn grants(h: &Harness<Zoho>) -> usize {
    h.subject.fake.grants.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_the_call_made_again() {
    let h = Harness::<Zoho>::start().await;
    assert_eq!(
        h.handle(&text("wamid.T1", "5215512340101", "uno"), 1).await,
        Outcome::Done
    );
    assert_eq!(grants(&h), 1);
    h.subject.fake.expire_tokens();
    let before = h.subject.arrivals().len();
    assert_eq!(
        h.handle(&text("wamid.T2", "5215512340101", "dos"), 1).await,
        Outcome::Done
    );
    assert_eq!(grants(&h), 2, "one refresh");
    // The note refused with INVALID_TOKEN, then sent again with the new token.
    assert_eq!(h.subject.arrivals().len(), before + 2);
    assert_eq!(h.subject.activities().len(), 2);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_refresh_an_expired_token_once() {
    let h = Harness::<Zoho>::with(Duration::from_secs(3), Duration::from_millis(30)).await;
    let other = h.restarted().await;
    let first = [
        text("wamid.W0", "5215512340102", "a"),
        text("wamid.W1", "5215512340103", "b"),
    ];
    assert_eq!(h.handle(&first[0], 1).await, Outcome::Done);
    assert_eq!(other.handle(&delivery(&first[1], 1)).await, Outcome::Done);
    assert_eq!(grants(&h), 1, "the second process used the stored token");
    h.subject.fake.expire_tokens();
    // Both processes, eight events each at once, all holding the expired token.
    let events: Vec<Value> = (0..16)
        .map(|i| {
            text(
                &format!("wamid.W{}", i + 2),
                ["5215512340102", "5215512340103"][i % 2],
                "x",
            )
        })
        .collect();
    let outcomes = futures::future::join_all(events.iter().enumerate().map(|(i, e)| {
        let sync = if i % 2 == 0 {
            h.sync.clone()
        } else {
            other.clone()
        };
        let d = delivery(e, 1);
        async move { sync.handle(&d).await }
    }))
    .await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    assert_eq!(grants(&h), 2, "one refresh across both processes");
    assert_eq!(h.subject.activities().len(), 18);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_makes_events_wait_with_one_call() {
    let h = Harness::<Zoho>::start().await;
    let ev = text("wamid.V1", "5215512340104", "hola");
    assert_eq!(
        h.handle(&text("wamid.V0", "5215512340104", "x"), 1).await,
        Outcome::Done
    );
    h.subject.fake.refuse_refreshes.store(100, Ordering::SeqCst);
    h.subject.fake.expire_tokens();
    let before = h.subject.arrivals().len();
    match h.handle(&ev, 1).await {
        Outcome::Retry { reason, .. } => {
            assert!(
                reason.contains("credentials") && reason.contains("ZOHO_REFRESH_TOKEN"),
                "{reason}"
            );
            assert!(
                !reason.contains(REFRESH_TOKEN) && !reason.contains(CLIENT_SECRET),
                "{reason}"
            );
        }
        other => panic!("a revoked grant → wait, got {other:?}"),
    }
    assert_eq!(
        h.subject.arrivals().len(),
        before + 1,
        "the 401, no retry with a dead token"
    );
    // Re-authorised: the event goes through.
    h.subject.fake.refuse_refreshes.store(0, Ordering::SeqCst);
    assert_eq!(h.handle(&ev, 2).await, Outcome::Done);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_known_by_the_bsuid_first_gains_the_phone_on_one_contact() {
    let h = Harness::<Zoho>::start().await;
    let hola = |key: &str, wa: Option<&str>| {
        message(
            key,
            wa,
            Some("CO.1a2b3c4d"),
            json!({"type": "text", "text": {"body": "hola"}}),
        )
    };
    assert_eq!(h.handle(&hola("wamid.Q1", None), 1).await, Outcome::Done);
    let contacts = h.subject.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].key, "CO.1a2b3c4d",
        "the BSUID is the identity of a BSUID-only person"
    );
    // A new process: the phone arrives with the BSUID and lands on the same contact.
    let fresh = h.restarted().await;
    let later = hola("wamid.Q2", Some("573001234567"));
    assert_eq!(fresh.handle(&delivery(&later, 1)).await, Outcome::Done);
    let contacts = h.subject.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].key, "+573001234567");
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_contacts_of_the_numbers_and_bsuids() {
    let h = Harness::<Zoho>::start().await;
    h.subject.lag_search_index(Duration::ZERO);
    let ev = message(
        "wamid.E1",
        Some("5215512340105"),
        Some("MX.e1e2e3"),
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    assert_eq!(h.handle(&ev, 1).await, Outcome::Done);
    assert_eq!(
        h.handle(&text("wamid.E2", "5215512340106", "otro"), 1)
            .await,
        Outcome::Done
    );
    let erasure = Effect {
        id: "erasure:1".into(),
        record: Record::Erasure(ErasureItem {
            v: Default::default(),
            erasure_id: "1".into(),
            contact_id: None,
            phones: vec!["+525512340105".into()],
            bsuids: vec!["MX.e1e2e3".into()],
            erased_at: 1,
        }),
        fields: Default::default(),
        contact: None,
        in_doubt: false,
    };
    let crm = h.subject.crm();
    crm.apply(&erasure).await.unwrap();
    // Again (a redelivery): nothing left to find, nothing fails.
    crm.apply(&erasure).await.unwrap();
    let keys: Vec<String> = h.subject.contacts().into_iter().map(|c| c.key).collect();
    assert_eq!(keys, vec!["+525512340106".to_string()]);
    h.assert_documented();
}

fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_name_what_is_wrong_and_a_good_set_reaches_zoho() {
    let h = Harness::<Zoho>::start().await;
    let url = format!("http://{}", h.subject.addr);
    let mapping = Mapping::example("zoho").unwrap();
    let db = h.subject.db.clone();
    let stores: wabridge_crm::TokenStores = Arc::new(move |c: &str| {
        Arc::new(SqliteTokenStore::new(db.clone(), c)) as Arc<dyn wabridge_core::oauth::TokenStore>
    });
    let good = [
        ("CRM_KIND", "zoho"),
        ("ZOHO_CLIENT_ID", CLIENT_ID),
        ("ZOHO_CLIENT_SECRET", CLIENT_SECRET),
        ("ZOHO_REFRESH_TOKEN", REFRESH_TOKEN),
        ("ZOHO_DATA_CENTER", "eu"),
        ("ZOHO_API_URL", url.as_str()),
        ("ZOHO_ACCOUNTS_URL", url.as_str()),
    ];
    let with = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
        good.iter()
            .filter(|(k, _)| *k != name)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(value.map(|v| (name.to_string(), v.to_string())))
            .collect()
    };
    let cases = [
        (with("ZOHO_CLIENT_ID", None), "ZOHO_CLIENT_ID"),
        (with("ZOHO_REFRESH_TOKEN", None), "ZOHO_REFRESH_TOKEN"),
        (with("ZOHO_DATA_CENTER", Some("mars")), "ZOHO_DATA_CENTER"),
        (with("ZOHO_CONCURRENCY", Some("0")), "ZOHO_CONCURRENCY"),
        (with("ZOHO_API_URL", Some("zohoapis.eu")), "ZOHO_API_URL"),
        (
            with("ZOHO_ACCOUNTS_URL", Some("ftp://accounts.zoho.eu")),
            "ZOHO_ACCOUNTS_URL",
        ),
    ];
    for (pairs, named) in &cases {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let e = wabridge_crm::from_lookup_with(
            &mapping,
            None,
            None,
            Some(stores.clone()),
            settings(&refs),
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(e.contains(named), "{named}: {e}");
        assert!(
            !e.contains(CLIENT_SECRET) && !e.contains(REFRESH_TOKEN),
            "{e}"
        );
    }
    // Without the engine's token store (a command that has none) it says so.
    let e = wabridge_crm::from_lookup(&mapping, None, None, settings(&good))
        .err()
        .unwrap();
    assert!(e.to_string().contains("token store"), "{e}");
    let crm = wabridge_crm::from_lookup_with(&mapping, None, None, Some(stores), settings(&good))
        .unwrap();
    assert_eq!(crm.kind(), "zoho");
    let sync = sync_over(&h.db, crm, mapping, Duration::from_secs(3)).await;
    let ev = text("wamid.S1", "5215512340107", "hola");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(h.subject.activities().len(), 1);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_missing_and_non_unique_fields_and_refused_credentials() {
    let subject = Zoho::start_with(Duration::ZERO).await;
    let url = format!("http://{}", subject.addr);
    let mapping = Mapping::example("zoho").unwrap();
    let run = |secret: &str| {
        let pairs = [
            ("CRM_KIND", "zoho"),
            ("ZOHO_CLIENT_ID", CLIENT_ID),
            ("ZOHO_CLIENT_SECRET", secret),
            ("ZOHO_REFRESH_TOKEN", REFRESH_TOKEN),
            ("ZOHO_API_URL", url.as_str()),
            ("ZOHO_ACCOUNTS_URL", url.as_str()),
        ];
        let lookup = settings(&pairs);
        let mapping = mapping.clone();
        async move { check(&mapping, lookup).await.unwrap() }
    };
    let report = run(CLIENT_SECRET).await;
    assert!(report.passed(), "{report:?}");
    assert!(report.ok.iter().any(|o| o == "credentials accepted"));
    subject.fake.missing_fields.lock().unwrap().extend([
        "Contacts/WhatsApp_BSUID".to_string(),
        "Deals/utm_medium".to_string(),
    ]);
    subject
        .fake
        .not_unique
        .lock()
        .unwrap()
        .insert("Contacts/WhatsApp_ID".into());
    let report = run(CLIENT_SECRET).await;
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("Contacts field `WhatsApp_BSUID`"),
        "{missing}"
    );
    assert!(
        missing.contains("`WhatsApp_ID` set to \"Do not allow duplicate values\""),
        "{missing}"
    );
    assert_eq!(report.missing.len(), 2, "{missing}");
    assert!(
        report.optional.iter().any(|o| o.contains("`utm_medium`")),
        "{report:?}"
    );
    let report = run("wrong-secret-value").await;
    let missing = report.missing.join("\n");
    assert!(
        !report.passed() && missing.contains("invalid_client"),
        "{missing}"
    );
    assert!(!missing.contains("wrong-secret-value"), "{missing}");
    assert!(subject.fake.problems.lock().unwrap().is_empty());
}
