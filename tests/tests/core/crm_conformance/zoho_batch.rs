//! Zoho's record writes batched across events: concurrent events share upsert and note calls,
//! each record's answer of a 207 Multi-Status reaches its own event (one refused record
//! dead-letters that event alone), and the fake holds Zoho's 100 records a call.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::Outcome;
use wabridge_core::crm::Crm;
use wabridge_crm::zoho::ZohoCrm;

use super::zoho::Zoho;
use super::*;

/// The profile name an org validation rule of the fake refuses.
const REFUSED_NAME: &str = "Nombre Rechazado";

/// crm-sync over the harness's stores writing to `crm` (kept, to read its counters).
async fn sync_with(h: &Harness<Zoho>, crm: &Arc<ZohoCrm>) -> Arc<CrmSync> {
    let dyn_crm: Arc<dyn Crm> = crm.clone();
    sync_over(&h.db, dyn_crm, h.subject.mapping(), Duration::from_secs(3)).await
}

/// The write calls the fake saw to `route`: (calls, records).
fn writes_to(h: &Harness<Zoho>, route: &str) -> (usize, usize) {
    let writes = h.subject.fake.writes.lock().unwrap();
    let mine = writes.iter().filter(|(r, _)| r == route);
    (mine.clone().count(), mine.map(|(_, n)| n).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_good_and_refused_records_splits_per_record() {
    let h = Harness::<Zoho>::with(Duration::from_secs(3), Duration::from_millis(30)).await;
    h.subject
        .fake
        .refused_values
        .lock()
        .unwrap()
        .insert(REFUSED_NAME.into());
    // One call in flight (a Free org's app, held lower): the writes of the 30 events gather
    // while it is busy.
    let crm = Arc::new(h.subject.adapter_with(&h.subject.mapping(), 1));
    let sync = sync_with(&h, &crm).await;
    let events: Vec<Value> = (0..30)
        .map(|i| {
            let mut e = text(
                &format!("wamid.M{i}"),
                &format!("52155{:08}", 7000 + i),
                &format!("hola {i}"),
            );
            if i % 5 == 0 {
                e["contact"]["profile"]["name"] = json!(REFUSED_NAME);
            }
            e
        })
        .collect();
    let outcomes = futures::future::join_all(events.iter().map(|e| {
        let (sync, d) = (sync.clone(), delivery(e, 1));
        async move { sync.handle(&d).await }
    }))
    .await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::DeadLetter(reason) if i % 5 == 0 => assert!(
                reason.contains("INVALID_DATA") && reason.contains("Last_Name"),
                "{i}: {reason}"
            ),
            Outcome::Done if i % 5 != 0 => {}
            other => panic!("event {i}: {other:?}"),
        }
    }
    h.assert_documented();
    assert_eq!(h.subject.contacts().len(), 24);
    let notes = h.subject.activities();
    assert_eq!(notes.len(), 24);
    assert!(notes.iter().all(|n| !n.effect.starts_with("wamid.M0#")));
    // The refused records shared calls with good ones: Zoho answered 207 and only they failed.
    assert!(h.subject.fake.multi_status.load(Ordering::Relaxed) >= 1);
    let (calls, records) = writes_to(&h, "POST /crm/v8/Contacts/upsert");
    assert_eq!(records, 30, "each contact sent once, none retried alone");
    assert!(calls < 15, "{calls} upsert calls for 30 contacts");
    let (calls, records) = writes_to(&h, "POST /crm/v8/Notes");
    assert_eq!(records, 24);
    assert!(calls < 12, "{calls} note calls for 24 notes");
    let stats = crm.batch_stats();
    assert!(stats.largest > 1 && stats.largest <= 100, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_takes_100_records_a_call_and_refuses_101_with_zohos_body() {
    let h = Harness::<Zoho>::start().await;
    assert_eq!(
        h.handle(&text("wamid.L0", "5215512347100", "hola"), 1)
            .await,
        Outcome::Done
    );
    let contact = h
        .subject
        .fake
        .contacts
        .lock()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    h.subject
        .fake
        .live_tokens
        .lock()
        .unwrap()
        .insert("1000.test".into());
    let notes = |n: usize| {
        let note = json!({"Note_Title": "WhatsApp", "Note_Content": "x",
            "Parent_Id": {"module": {"api_name": "Contacts"}, "id": contact}});
        json!({ "data": vec![note; n] })
    };
    let post = |body: Value| {
        let url = format!("http://{}/crm/v8/Notes", h.subject.addr);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("authorization", "Zoho-oauthtoken 1000.test")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(notes(100)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 100);
    h.assert_documented();
    let (status, body) = post(notes(101)).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "LIMIT_EXCEEDED", "{body}");
    assert_eq!(body["details"]["limit"], 100);
    assert_eq!(body["status"], "error");
    assert_eq!(h.subject.activities().len(), 101, "none of the 101 written");
    assert_eq!(
        h.subject.problems().len(),
        1,
        "an adapter sending 101 fails its case"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_refused_records_only_is_answered_per_record_without_retries() {
    let h = Harness::<Zoho>::with(Duration::from_secs(3), Duration::from_millis(30)).await;
    h.subject
        .fake
        .refused_values
        .lock()
        .unwrap()
        .insert(REFUSED_NAME.into());
    let crm = Arc::new(h.subject.adapter_with(&h.subject.mapping(), 1));
    let sync = sync_with(&h, &crm).await;
    let events: Vec<Value> = (0..10)
        .map(|i| {
            let mut e = text(
                &format!("wamid.R{i}"),
                &format!("52155{:08}", 7100 + i),
                "hola",
            );
            e["contact"]["profile"]["name"] = json!(REFUSED_NAME);
            e
        })
        .collect();
    let outcomes = futures::future::join_all(events.iter().map(|e| {
        let (sync, d) = (sync.clone(), delivery(e, 1));
        async move { sync.handle(&d).await }
    }))
    .await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::DeadLetter(r) if r.contains("INVALID_DATA")),
            "{outcome:?}"
        );
    }
    h.assert_documented();
    assert!(h.subject.contacts().is_empty());
    // Zoho's 400 named each record: no record was sent again alone.
    let (calls, records) = writes_to(&h, "POST /crm/v8/Contacts/upsert");
    assert_eq!(records, 10);
    assert!(calls < 10, "{calls} calls");
}
