//! What Kommo does beyond the suite: notes of concurrent events share batch calls, a search
//! answered 204 (nothing) creates the contact while a full-text hit on another person's longer
//! number is not taken for the person, the settings path (refusals name the variable, the token
//! never shows), and `wabridge crm check`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_core::consumer::Outcome;
use wabridge_core::mapping::Mapping;
use wabridge_crm::check::check;
use wabridge_crm::kommo::NOTES_BATCH_MAX;

use super::kommo::{custom, Kommo};
use super::kommo_fake::{Contact, TOKEN};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_of_concurrent_events_share_batch_calls() {
    let h = Harness::<Kommo>::start().await;
    assert_eq!(
        h.handle(&text("wamid.NB0", "5215512340201", "hola"), 1)
            .await,
        Outcome::Done
    );
    let events: Vec<Value> = (1..=120)
        .map(|i| text(&format!("wamid.NB{i}"), "5215512340201", &format!("m {i}")))
        .collect();
    let calls = h.subject.arrivals().len();
    let outcomes = futures::future::join_all(events.iter().map(|e| h.handle(e, 1))).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    h.assert_documented();
    let batches = h.subject.fake.note_batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 121, "{batches:?}");
    assert!(batches.iter().all(|n| *n <= NOTES_BATCH_MAX), "{batches:?}");
    // 120 notes in at most a handful of calls (50 a call), not 120.
    let made = h.subject.arrivals().len() - calls;
    assert!(made <= 6, "{made} calls for 120 notes: {batches:?}");
    assert_eq!(h.subject.activities().len(), 121);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_204_search_creates_and_a_longer_number_is_not_the_person() {
    let h = Harness::<Kommo>::start().await;
    h.subject.lag_search_index(Duration::ZERO);
    // Another person whose number contains this one's digits: Kommo's full-text `query` finds
    // them both ways.
    h.subject.fake.contacts.lock().unwrap().insert(
        1,
        Contact {
            body: json!({"name": "Otro", "custom_fields_values": [{"field_code": "PHONE",
                "values": [{"value": "+52 55 1234 56789", "enum_code": "WORK"}]}]}),
            created: Instant::now() - Duration::from_secs(60),
        },
    );
    assert_eq!(
        h.handle(&text("wamid.Q1", "5215512345678", "hola"), 1)
            .await,
        Outcome::Done
    );
    // A new person's search finds nothing: 204, no body, and the contact is created.
    assert_eq!(
        h.handle(&text("wamid.Q2", "5215599887766", "hola"), 1)
            .await,
        Outcome::Done
    );
    h.assert_documented();
    assert!(
        h.subject
            .fake
            .empty_searches
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let contacts = h.subject.contacts();
    assert_eq!(contacts.len(), 3, "{contacts:?}");
    let other = h.subject.fake.contacts.lock().unwrap()[&1].body.clone();
    assert_eq!(other["name"], "Otro", "the other person left alone");
    assert_eq!(custom(&other, false, "whatsapp_id"), None);
    let on = |effect: &str| {
        h.subject
            .activities()
            .into_iter()
            .find(|a| a.effect == effect)
            .map(|a| a.contact)
    };
    assert_eq!(on("wamid.Q1#activity").as_deref(), Some("+525512345678"));
}

fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_name_what_is_wrong_and_a_good_set_reaches_kommo() {
    let h = Harness::<Kommo>::start().await;
    let url = format!("http://{}", h.subject.addr);
    let mapping = Mapping::example("kommo").unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("CRM_KIND", "kommo")], "KOMMO_TOKEN"),
        (
            &[("CRM_KIND", "kommo"), ("KOMMO_TOKEN", TOKEN)],
            "KOMMO_SUBDOMAIN",
        ),
        (
            &[
                ("CRM_KIND", "kommo"),
                ("KOMMO_TOKEN", TOKEN),
                ("KOMMO_SUBDOMAIN", "acme.kommo.com"),
            ],
            "KOMMO_SUBDOMAIN",
        ),
        (
            &[
                ("CRM_KIND", "kommo"),
                ("KOMMO_TOKEN", TOKEN),
                ("KOMMO_SUBDOMAIN", "acme"),
                ("KOMMO_RATE_PER_SECOND", "8"),
            ],
            "KOMMO_RATE_PER_SECOND",
        ),
        (
            &[
                ("CRM_KIND", "kommo"),
                ("KOMMO_TOKEN", TOKEN),
                ("KOMMO_API_URL", "acme.kommo.com"),
            ],
            "KOMMO_API_URL",
        ),
    ];
    for (pairs, named) in cases {
        let e = wabridge_crm::from_lookup(&mapping, None, None, settings(pairs))
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains(named), "{named}: {e}");
        assert!(!e.contains(TOKEN), "{e}");
    }
    let printed = format!("{:?}", h.subject.settings());
    assert!(!printed.contains(TOKEN), "{printed}");
    let good = [
        ("CRM_KIND", "kommo"),
        ("KOMMO_TOKEN", TOKEN),
        ("KOMMO_API_URL", url.as_str()),
        ("KOMMO_RATE_PER_SECOND", "5"),
    ];
    let crm = wabridge_crm::from_lookup(&mapping, None, None, settings(&good)).unwrap();
    assert_eq!(crm.kind(), "kommo");
    let sync = sync_over(&h.db, crm, mapping, Duration::from_secs(3)).await;
    let ev = text("wamid.S1", "5215512340207", "hola");
    assert_eq!(sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(h.subject.activities().len(), 1);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_missing_fields_and_a_refused_token() {
    let subject = Kommo::start_with(Duration::ZERO).await;
    let url = format!("http://{}", subject.addr);
    let mapping = Mapping::example("kommo").unwrap();
    let run = |token: &str| {
        let pairs = [
            ("CRM_KIND", "kommo"),
            ("KOMMO_TOKEN", token),
            ("KOMMO_API_URL", url.as_str()),
        ];
        let lookup = settings(&pairs);
        let mapping = mapping.clone();
        async move { check(&mapping, lookup).await.unwrap() }
    };
    let report = run(TOKEN).await;
    assert!(report.passed(), "{report:?}");
    assert!(report.ok.iter().any(|o| o == "credentials accepted"));
    subject.fake.missing_fields.lock().unwrap().extend([
        "whatsapp_bsuid".to_string(),
        "wabridge_effect_id".to_string(),
        "utm_medium".to_string(),
    ]);
    let report = run(TOKEN).await;
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("contact field `whatsapp_bsuid`"),
        "{missing}"
    );
    assert!(
        missing.contains("lead field `wabridge_effect_id`"),
        "{missing}"
    );
    assert_eq!(report.missing.len(), 2, "{missing}");
    assert!(
        report.optional.iter().any(|o| o.contains("`utm_medium`")),
        "{report:?}"
    );
    let report = run("revoked-long-lived-token").await;
    let missing = report.missing.join("\n");
    assert!(
        !report.passed() && missing.contains("credentials") && missing.contains("401"),
        "{missing}"
    );
    assert!(!missing.contains("revoked-long-lived-token"), "{missing}");
    assert!(subject.fake.problems.lock().unwrap().is_empty());
}
