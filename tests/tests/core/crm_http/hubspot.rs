//! HubSpot: upserts, communications, batching, rate limits, in-doubt creates, every record kind.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::records::{ContactRecord, Record};

use super::*;

#[tokio::test]
async fn hubspot_upserts_contacts_and_logs_communications_as_documented() {
    let rig = rig("hubspot", Fake::default()).await;
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(1, 10), 1)).await,
        Outcome::Done
    );
    assert_eq!(
        rig.sync.handle(&delivery(&text_event(11, 10), 1)).await,
        Outcome::Done
    );
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let props = rig
        .fake
        .contact_props
        .lock()
        .unwrap()
        .get("+525500000001")
        .cloned()
        .unwrap();
    assert_eq!(props["phone"], "+525500000001");
    assert_eq!(props["firstname"], "Cliente");
    assert_eq!(props["lastname"], "11");
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(comms.len(), 2);
    assert_eq!(comms[0]["properties"]["hs_communication_body"], "mensaje 1");
    assert_eq!(comms[0]["properties"]["hs_timestamp"], "1763780000000");
    assert_eq!(
        comms[0]["properties"]["wabridge_effect_id"],
        "wamid.T1#activity"
    );
    // Every status change of a message we sent is one more communication saying so; a failed
    // one carries its error. A late lower status is dropped by the forward-only rule.
    for (st, suffix) in [
        ("sent", "s"),
        ("read", "r"),
        ("delivered", "d"),
        ("failed", "f"),
    ] {
        let mut item = json!({"id": "wamid.OUT", "status": st, "timestamp": "1763780100", "recipient_id": "5215500000001"});
        if st == "failed" {
            item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
        }
        let ev = json!({"v": 1, "key": format!("wamid.OUT:{suffix}"), "kind": "status", "field": "messages",
            "waba_id": "W1", "item": item, "received_at": 1});
        assert_eq!(rig.sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    }
    let comms = rig.fake.comms.lock().unwrap().clone();
    let bodies: Vec<&str> = comms[2..]
        .iter()
        .map(|c| c["properties"]["hs_communication_body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "WhatsApp message wamid.OUT sent",
            "WhatsApp message wamid.OUT read",
            "WhatsApp message wamid.OUT failed: 131026 Message undeliverable"
        ]
    );
    assert_eq!(
        comms[4]["properties"]["wabridge_effect_id"],
        "wamid.OUT:f#status"
    );
    // Every call went through a batch endpoint; no single-object creates.
    let paths = rig.fake.paths.lock().unwrap().clone();
    assert!(paths.iter().all(|p| p.contains("/batch/")), "{paths:?}");
    assert!(rig.fake.problems.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_batches_concurrent_events_and_maps_each_result_back() {
    let rig = rig("hubspot", Fake::default()).await;
    // 300 events of 60 people at once: several events of one person meet in one upsert batch
    // (HubSpot refuses duplicate ids there: the test server answers 400 to that).
    let events: Vec<Value> = (0..300).map(|i| text_event(i, 60)).collect();
    let outcomes = handle_all(&rig.sync, &events).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let contacts = rig.fake.contacts.lock().unwrap().clone();
    assert_eq!(contacts.len(), 60);
    let comms = rig.fake.comms.lock().unwrap().clone();
    assert_eq!(comms.len(), 300);
    for c in &comms {
        // Results come back reversed: each communication still belongs to its own event's
        // contact, with its own text.
        let effect = c["properties"]["wabridge_effect_id"].as_str().unwrap();
        let i: usize = effect
            .trim_start_matches("wamid.T")
            .trim_end_matches("#activity")
            .parse()
            .unwrap();
        assert_eq!(
            c["properties"]["hs_communication_body"],
            format!("mensaje {i}")
        );
        let phone = format!("+5255{:08}", i % 60);
        assert_eq!(
            c["associations"][0]["to"]["id"].as_str(),
            Some(contacts[&phone].as_str()),
            "{effect}"
        );
    }
    let (create_calls, create_inputs) = batch_counts(&rig.fake, COMMS);
    let (upsert_calls, upsert_inputs) = batch_counts(&rig.fake, UPSERT);
    println!("300 concurrent events: {create_calls} communication calls for {create_inputs} inputs, {upsert_calls} upsert calls for {upsert_inputs} inputs");
    assert_eq!(create_inputs, 300);
    assert!(create_calls * 10 <= create_inputs, "{create_calls} calls");
    assert!(upsert_calls * 10 <= 300, "{upsert_calls} calls");
    let stats = rig.hubspot.as_ref().unwrap().stats();
    assert_eq!(stats.communications.inputs, 300);
    assert!(stats.communications.largest > 1, "{stats:?}");
    assert!(stats.contacts.largest <= 100 && stats.communications.largest <= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_batch_errors_reach_the_right_callers() {
    let rig = rig("hubspot", Fake::default()).await;
    // One input of a shared batch is invalid (207 Multi-Status): only its event dead-letters.
    let mut events: Vec<Value> = (0..20).map(|i| text_event(i, 20)).collect();
    events[7]["item"]["text"]["body"] = json!("RECHAZAR esto");
    let outcomes = handle_all(&rig.sync, &events).await;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(o, Outcome::DeadLetter(r) if r.contains("VALIDATION_ERROR") && r.contains("hubspot")),
                "{o:?}"
            );
        } else {
            assert_eq!(*o, Outcome::Done, "event {i}");
        }
    }
    assert_eq!(rig.fake.comms.lock().unwrap().len(), 19);
    let (calls, inputs) = batch_counts(&rig.fake, COMMS);
    assert_eq!(inputs, 20);
    assert!(calls < 20, "batched: {calls} calls");

    // A whole batch answered 429 / 503: every caller gets that class, from ONE call.
    let crm = rig.hubspot.clone().unwrap();
    let contact = |i: usize| {
        let phone = format!("+52550000{i:04}");
        let mut fields = serde_json::Map::new();
        fields.insert("whatsapp_id".into(), json!(phone));
        Effect {
            id: format!("e{i}#contact"),
            record: Record::Contact(ContactRecord {
                id: format!("c{i}"),
                phone_e164: Some(phone),
                ..Default::default()
            }),
            fields,
            contact: None,
            in_doubt: false,
        }
    };
    for (fault, expect_rate_limit) in [(Fault::RateLimit, true), (Fault::ServerError, false)] {
        rig.fake.scripted.lock().unwrap().push_back(fault);
        let before = rig.fake.calls.load(Ordering::Relaxed);
        let effects: Vec<Effect> = (0..10).map(contact).collect();
        let results = futures::future::join_all(effects.iter().map(|e| crm.apply(e))).await;
        assert_eq!(
            rig.fake.calls.load(Ordering::Relaxed) - before,
            1,
            "one call"
        );
        for r in results {
            match r {
                Err(CrmError::RateLimited(Some(d))) if expect_rate_limit => {
                    assert_eq!(d, Duration::from_millis(20))
                }
                Err(CrmError::Transient(m)) if !expect_rate_limit => assert!(m.contains("502")),
                other => panic!("{fault:?}: {other:?}"),
            }
        }
    }
}

/// Account-level records (template status, number quality, unknown fields) and statuses of
/// messages sent to a group have no HubSpot object: nothing is written, each is logged and
/// counted, and redelivery changes nothing. (Contacts, communications, consent, attribution
/// and deals: the conformance suite, `crm_conformance`.)
#[tokio::test]
async fn hubspot_skips_account_records_and_counts_them() {
    let rig = rig("hubspot", Fake::default()).await;
    let tpl = json!({"v": 1, "key": "tpl:1:APPROVED:1", "kind": "template_status", "field": "message_template_status_update",
        "waba_id": "W1", "entry_time": 1763780000, "item": {"event": "APPROVED", "message_template_id": 123,
        "message_template_name": "promo_es", "message_template_language": "es_MX", "reason": "NONE"}, "received_at": 1});
    let quality = json!({"v": 1, "key": "q:1", "kind": "quality_update", "field": "phone_number_quality_update",
        "waba_id": "W1", "item": {"display_phone_number": "5215500000000", "event": "FLAGGED", "current_limit": "TIER_1K"}, "received_at": 1});
    let unknown = json!({"v": 1, "key": "u:1", "kind": "unknown", "field": "account_alerts",
        "waba_id": "W1", "item": {"alert": "x"}, "received_at": 1});
    // A status of a message sent to a group: no contact to log it on.
    let group = json!({"v": 1, "key": "s:wamid.G:read", "kind": "status", "field": "messages",
        "waba_id": "W1", "item": {"id": "wamid.G", "status": "read", "timestamp": "1763780600",
        "recipient_id": "120363045678901234", "recipient_type": "group"}, "received_at": 1});
    for receive in [1, 2] {
        for ev in [&tpl, &quality, &unknown, &group] {
            assert_eq!(rig.sync.handle(&delivery(ev, receive)).await, Outcome::Done);
        }
    }
    assert_eq!(rig.fake.calls.load(Ordering::Relaxed), 0);
    let skipped = rig.hubspot.as_ref().unwrap().stats().skipped;
    assert_eq!(
        skipped.into_iter().collect::<Vec<_>>(),
        [
            ("activity", 1),
            ("quality", 1),
            ("template_status", 1),
            ("unknown", 1)
        ]
    );
}

/// The worker dies after HubSpot created a deal but before our ledger's confirm (its
/// future is dropped while HubSpot's answer is on its way). The message is redelivered to a
/// fresh process (new adapter, empty caches, same ledger): the in-doubt effect searches by its
/// effect id, finds the object, and creates nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_crash_between_create_and_confirm_creates_nothing_twice() {
    let lease = Duration::from_millis(300);
    let rig = rig_with("hubspot", Fake::default(), lease, true).await;
    let count = |store: &Mutex<Vec<Value>>, effect: &str| {
        store
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o["properties"]["wabridge_effect_id"] == effect)
            .count()
    };
    // Communications: the conformance suite (crm_conformance) covers them for every adapter.
    for (i, path, effect) in [(2, DEALS, "wamid.T2#lead")] {
        let ev = text_event(i, 10);
        rig.fake
            .fail_once
            .lock()
            .unwrap()
            .insert(path.to_string(), Fault::SlowAfter);
        let store = if path == DEALS {
            &rig.fake.deals
        } else {
            &rig.fake.comms
        };
        // The worker dies once HubSpot created the object, before its answer arrives (the fake
        // holds it): waiting for the object, not a fixed time, keeps this true on a slow machine.
        let sync = rig.sync.clone();
        let d = delivery(&ev, 1);
        let worker = tokio::spawn(async move { sync.handle(&d).await });
        wabridge_tests::eventually(
            "HubSpot creates the object",
            Duration::from_secs(20),
            || {
                let created = count(store, effect) == 1;
                async move { created.then_some(()) }
            },
        )
        .await;
        assert!(!worker.is_finished(), "the worker must die mid-call");
        worker.abort();
        assert!(worker.await.unwrap_err().is_cancelled());
        assert_eq!(count(store, effect), 1, "created at HubSpot, not confirmed");
        // The lease of the dead worker's claim runs out, then SQS redelivers.
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
        let searches_before = rig
            .fake
            .paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.ends_with("/search"))
            .count();
        let fresh = hubspot_crm(rig.addr);
        let sync = crm_sync("hubspot", &rig.db, fresh, lease, true).await;
        assert_eq!(sync.handle(&delivery(&ev, 2)).await, Outcome::Done);
        assert_eq!(count(store, effect), 1, "{effect}: no duplicate");
        let searched: Vec<String> = rig.fake.paths.lock().unwrap()[..]
            .iter()
            .filter(|p| p.ends_with("/search"))
            .skip(searches_before)
            .cloned()
            .collect();
        assert_eq!(searched, [path.replace("batch/create", "search")]);
    }
    // Everything else of the event happened once.
    assert_eq!(rig.fake.comms.lock().unwrap().len(), 1);
    assert_eq!(rig.fake.deals.lock().unwrap().len(), 1);
    assert!(rig.fake.problems.lock().unwrap().is_empty());
}
