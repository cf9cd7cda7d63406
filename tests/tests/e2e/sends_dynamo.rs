//! The sends ports over DynamoDB (moto's server, real AWS SDK): idempotency under concurrent
//! creates, forward-only transitions, the claim lease, the pair window shared by sender
//! instances (its rules checked on the SQLite store too), append-only consent, template status
//! ordering, and the last-inbound window.

use std::sync::Arc;

use wabridge_aws::dynamo::consent::DynamoConsent;
use wabridge_aws::dynamo::sends::DynamoSends;
use wabridge_aws::dynamo::templates::DynamoTemplates;
use wabridge_aws::dynamo::window::DynamoWindow;
use wabridge_core::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ConsentStore, ContactRef,
};
use wabridge_core::sends::store::{Created, SendError, SendRecord, SendState, SendStore};
use wabridge_core::templates::{TemplateStatus, TemplateStore};
use wabridge_core::window::WindowStore;
use wabridge_sqlite::{Db, SqliteSends};
use wabridge_tests::{create_table, require_aws, unique_name};

fn record(id: &str, key: Option<&str>) -> SendRecord {
    SendRecord {
        id: id.into(),
        idempotency_key: key.map(str::to_string),
        request_hash: "h1".into(),
        request: serde_json::json!({"to": "+525512345678", "type": "template", "name": "t", "language": "es"}),
        contact: "phone:525512345678".into(),
        state: SendState::Queued,
        error: None,
        wamid: None,
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test]
async fn send_store_over_dynamodb() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("sends")).await;
    let store = Arc::new(DynamoSends::new(aws.dynamo.clone(), table));

    // Concurrent creates with one key: exactly one is new, all name the same send.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create(&record(&format!("snd_{i}"), Some("k1")))
                .await
                .unwrap()
        }));
    }
    let mut new = 0;
    let mut ids = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Created::New(r) => {
                new += 1;
                ids.push(r.id)
            }
            Created::Existing(r) => ids.push(r.id),
        }
    }
    ids.dedup();
    assert_eq!((new, ids.len()), (1, 1), "{ids:?}");
    let id = ids[0].clone();

    // Claim: one holder at a time, only while queued.
    assert!(store.claim(&id, 100, 60_100).await.unwrap());
    assert!(!store.claim(&id, 200, 60_200).await.unwrap());
    store.release(&id).await.unwrap();
    assert!(store.claim(&id, 300, 60_300).await.unwrap());

    // Forward only.
    let (r, moved) = store
        .transition(&id, SendState::Sent, None, Some("wamid.A"), 10)
        .await
        .unwrap()
        .unwrap();
    assert!(moved && r.state == SendState::Sent && r.wamid.as_deref() == Some("wamid.A"));
    assert!(
        !store.claim(&id, 400, 60_400).await.unwrap(),
        "no claim once sent"
    );
    assert_eq!(
        store.find_by_wamid("wamid.A").await.unwrap(),
        Some(id.clone())
    );
    assert!(
        store
            .transition(&id, SendState::Read, None, None, 11)
            .await
            .unwrap()
            .unwrap()
            .1
    );
    let (r, moved) = store
        .transition(&id, SendState::Delivered, None, None, 12)
        .await
        .unwrap()
        .unwrap();
    assert!(!moved && r.state == SendState::Read);
    let err = SendError {
        code: "meta_131026".into(),
        message: "undeliverable".into(),
    };
    assert!(
        !store
            .transition(&id, SendState::Failed, Some(&err), None, 13)
            .await
            .unwrap()
            .unwrap()
            .1
    );

    // Failed keeps its error.
    let Created::New(r2) = store.create(&record("snd_x", None)).await.unwrap() else {
        panic!()
    };
    let (r2, moved) = store
        .transition(&r2.id, SendState::Failed, Some(&err), None, 14)
        .await
        .unwrap()
        .unwrap();
    assert!(moved);
    assert_eq!(r2.error, Some(err));
    assert!(store
        .transition("snd_missing", SendState::Sent, None, None, 1)
        .await
        .unwrap()
        .is_none());
}

/// The pair window's rules, one reservation after another, on both engines' stores: the first
/// reservation for a recipient wins and the others are told how long to wait; another recipient
/// is not affected; the holder's redelivery takes it again; it opens to others once its interval
/// is over. (One after another: moto does not serialise concurrent conditional UpdateItem calls
/// the way DynamoDB does, so a race between instances is DynamoDB's guarantee, not something
/// this emulator can show.)
#[tokio::test]
async fn pair_window_has_one_holder_on_sqlite_and_dynamodb() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("pairs")).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteSends::new(Db::open(dir.path().join("p.db")).unwrap());
    let dynamo = DynamoSends::new(aws.dynamo.clone(), table);
    let stores: [(&str, &dyn SendStore); 2] = [("sqlite", &sqlite), ("dynamodb", &dynamo)];

    let (to, elsewhere) = ("phone:525512345678", "phone:5491112345678");
    // Two registered numbers (issue 21): the window is the (number, customer) pair's.
    let (mx, co) = (Some("106540352242922"), Some("107655329352713"));
    // (recipient, from number, send, ms after t0, expected wait in ms; None = taken)
    type Step<'a> = (&'a str, Option<&'a str>, &'a str, i64, Option<u64>);
    let steps: &[Step] = &[
        (to, None, "snd_0", 0, None),
        (to, None, "snd_1", 500, Some(5_500)),
        (to, None, "snd_2", 1_000, Some(5_000)),
        (elsewhere, None, "snd_1", 1_000, None),
        // snd_0's redelivery is not held back by itself; it moves the window to t0 + 8 s.
        (to, None, "snd_0", 2_000, None),
        (to, None, "snd_1", 7_000, Some(1_000)),
        (to, None, "snd_1", 8_000, None),
        // The same customer from two registered numbers: neither waits on the other, nor on
        // the implicit number's window above; a second send from one number waits.
        (to, mx, "snd_mx", 8_100, None),
        (to, co, "snd_co", 8_200, None),
        (to, mx, "snd_mx2", 9_100, Some(5_000)),
        (to, co, "snd_co2", 14_200, None),
    ];
    let six = std::time::Duration::from_secs(6);
    let t0 = 1_700_000_000_000i64;
    for (engine, store) in stores {
        for &(recipient, number, send, at, expected) in steps {
            let wait = store
                .reserve_pair(recipient, number, send, t0 + at, six)
                .await
                .unwrap();
            assert_eq!(
                wait,
                expected.map(std::time::Duration::from_millis),
                "{engine}: {send} to {recipient} from {number:?} at +{at} ms"
            );
        }
    }
}

#[tokio::test]
async fn consent_templates_window_over_dynamodb() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("consent")).await;
    let consent = DynamoConsent::new(aws.dynamo.clone(), table.clone());
    let entry = |id: &str, action, at| ConsentEntry {
        id: id.into(),
        contact: "phone:525512345678".into(),
        to: "+525512345678".into(),
        category: ConsentCategory::Marketing,
        action,
        source: ConsentSource::WebForm,
        evidence: Some("form".into()),
        at,
        recorded_at: at,
        // The opt-out was written to one business number (issue 21): kept with it.
        number: (id == "b").then(|| "106540352242922".to_string()),
    };
    assert!(consent
        .append(&entry("b", ConsentAction::OptOut, 200))
        .await
        .unwrap());
    assert!(consent
        .append(&entry("a", ConsentAction::OptIn, 100))
        .await
        .unwrap());
    assert!(
        !consent
            .append(&entry("a", ConsentAction::OptIn, 100))
            .await
            .unwrap(),
        "redelivery ignored"
    );
    let h = consent.history("phone:525512345678").await.unwrap();
    assert_eq!(
        h.iter()
            .map(|e| (e.id.as_str(), e.number.as_deref()))
            .collect::<Vec<_>>(),
        [("a", None), ("b", Some("106540352242922"))]
    );
    assert_eq!(
        wabridge_core::consent::state_of(&h, ConsentCategory::Marketing),
        wabridge_core::consent::ConsentState::OptedOut
    );

    let templates = DynamoTemplates::new(aws.dynamo.clone(), table.clone());
    assert!(templates
        .put_status(
            "t",
            "es_MX",
            &TemplateStatus::new("PAUSED"),
            Some("low quality"),
            2000
        )
        .await
        .unwrap());
    assert!(!templates
        .put_status("t", "es_MX", &TemplateStatus::new("APPROVED"), None, 1000)
        .await
        .unwrap());
    templates
        .put_definition("t", "es_MX", Some("MARKETING"), Some(2))
        .await
        .unwrap();
    let info = templates.get("t", "es_MX").await.unwrap().unwrap();
    assert!(info.status.unwrap().refuses_sends());
    assert_eq!(
        (info.category.as_deref(), info.body_parameters),
        (Some("MARKETING"), Some(2))
    );
    assert!(templates.get("t", "pt_BR").await.unwrap().is_none());
    // A patch keeps what it does not name; a name's languages are read without a scan.
    templates
        .patch(
            "t",
            "es_MX",
            &wabridge_core::templates::TemplatePatch {
                quality: Some("RED".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let info = templates.get("t", "es_MX").await.unwrap().unwrap();
    assert_eq!(
        (info.quality.as_deref(), info.category.as_deref()),
        (Some("RED"), Some("MARKETING"))
    );
    templates
        .put_status("t", "pt_BR", &TemplateStatus::new("APPROVED"), None, 3000)
        .await
        .unwrap();
    templates
        .put_status(
            "other",
            "en_US",
            &TemplateStatus::new("APPROVED"),
            None,
            3000,
        )
        .await
        .unwrap();
    let registry =
        wabridge_core::templates::TemplateRegistry::new(std::sync::Arc::new(templates.clone()));
    assert_eq!(registry.approved_languages("t").await.unwrap(), ["pt_BR"]);
    let all: Vec<String> = templates
        .languages("t")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.language)
        .collect();
    assert_eq!(all, ["es_MX", "pt_BR"]);

    // Windows: forward only; the (number, customer) pair's apart from the customer's.
    let window = DynamoWindow::new(aws.dynamo.clone(), table);
    let service = wabridge_core::window::WindowService::new(Arc::new(window.clone()));
    window.record_inbound("phone:1", None, 500).await.unwrap();
    window.record_inbound("phone:1", None, 300).await.unwrap();
    let c1 = ContactRef {
        key: "phone:1".into(),
        display: "+1".into(),
    };
    assert_eq!(service.last_inbound(&c1, None).await.unwrap(), Some(500));
    assert_eq!(
        service.last_inbound(&c1, Some("111")).await.unwrap(),
        Some(500),
        "recorded before numbers were: counts for any number"
    );
    window
        .record_inbound("phone:1", Some("111"), 700)
        .await
        .unwrap();
    window
        .record_inbound("phone:1", Some("111"), 600)
        .await
        .unwrap();
    assert_eq!(
        service.last_inbound(&c1, Some("111")).await.unwrap(),
        Some(700)
    );
    assert_eq!(
        service.last_inbound(&c1, Some("222")).await.unwrap(),
        None,
        "no window on a number the customer did not write to"
    );
    assert_eq!(service.last_inbound(&c1, None).await.unwrap(), Some(700));
    let c2 = ContactRef {
        key: "phone:2".into(),
        display: "+2".into(),
    };
    assert_eq!(service.last_inbound(&c2, None).await.unwrap(), None);
}

/// `POST /consents` idempotency markers over DynamoDB: of concurrent claims of one key exactly
/// one wins, the others get the winner's hash and entry; the consent service then records one
/// entry, answers a retry with it and refuses another body.
#[tokio::test]
async fn consent_keys_over_dynamodb() {
    use wabridge_core::consent::{ConsentService, Keyed};
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("consentkeys")).await;
    let store = Arc::new(DynamoConsent::new(aws.dynamo.clone(), table));
    let entry = |at: i64| ConsentEntry {
        id: "api_0123456789abcdef".into(),
        contact: "phone:525512340077".into(),
        to: "+525512340077".into(),
        category: ConsentCategory::Marketing,
        action: ConsentAction::OptIn,
        source: ConsentSource::WebForm,
        evidence: Some("form 7".into()),
        at,
        recorded_at: at,
        number: None,
    };
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let e = entry(1_000 + i);
        tasks.push(tokio::spawn(async move {
            store.claim_key(&e, "hash-a").await.unwrap()
        }));
    }
    let mut winners = 0;
    let mut seen = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            None => winners += 1,
            Some((hash, first)) => {
                assert_eq!(hash, "hash-a");
                seen.push(first.at);
            }
        }
    }
    assert_eq!(winners, 1, "one claim wins");
    seen.dedup();
    assert_eq!(
        seen.len(),
        1,
        "every loser sees the winner's entry: {seen:?}"
    );

    let service = ConsentService::new(store.clone());
    let mut other = entry(5_000);
    other.id = "api_fedcba9876543210".into();
    assert_eq!(
        service.record_keyed(&other, "hash-b").await.unwrap(),
        Keyed::New(other.clone())
    );
    let mut retry = other.clone();
    retry.at = 6_000; // a retry without `at` defaults to a later time: the first entry wins
    assert_eq!(
        service.record_keyed(&retry, "hash-b").await.unwrap(),
        Keyed::Existing(other.clone())
    );
    assert_eq!(
        service.record_keyed(&retry, "hash-c").await.unwrap(),
        Keyed::Conflict
    );
    let history = store.history("phone:525512340077").await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e.id == other.id).count(),
        1,
        "{history:?}"
    );
}
