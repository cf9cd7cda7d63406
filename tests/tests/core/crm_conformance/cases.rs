//! The cases every adapter runs (see `conformance!`). Each drives crm-sync over real SQLite
//! stores and reads the outcome back from the CRM's fake, in the suite's terms.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::consumer::Outcome;

use super::*;
use crate::crm_http::fake::{ECHOED_PHONE, RETRY_AFTER_SECS};

fn activities_of<S: Subject>(subject: &S, effect: &str) -> usize {
    subject
        .activities()
        .iter()
        .filter(|a| a.effect == effect)
        .count()
}

/// Every effect id held once, and how many there are.
fn assert_each_once(activities: &[ActivityView]) -> usize {
    let mut per: HashMap<&str, usize> = HashMap::new();
    for a in activities {
        *per.entry(a.effect.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "held more than once: {twice:?}");
    per.len()
}

/// Handles `event` until it is done, redelivering after each retry (at most `receives`).
async fn until_done<S: Subject>(h: &Harness<S>, event: &Value, receives: u32) {
    for receive in 1..=receives {
        match h.handle(event, receive).await {
            Outcome::Done => return,
            Outcome::Retry { after, .. } => {
                tokio::time::sleep(after.min(Duration::from_secs(2))).await
            }
            other => panic!("{}: {other:?}", S::KIND),
        }
    }
    panic!("{}: not done after {receives} receives", S::KIND);
}

/// Mexican (`521…` / `52…`), Argentine (`549…` / `54…`) and Brazilian (with and without the
/// ninth digit) spellings, and a BSUID-only person: one contact per person, under its canonical
/// identity; redelivery adds nothing.
pub(crate) async fn one_contact_per_person<S: Subject>() {
    let h = Harness::<S>::start().await;
    let hola = |key: &str, wa: Option<&str>, bsuid: Option<&str>| {
        message(
            key,
            wa,
            bsuid,
            json!({"type": "text", "text": {"body": "hola"}}),
        )
    };
    let events = [
        hola("wamid.mx1", Some("5215512345678"), None),
        hola("wamid.mx2", Some("525512345678"), None),
        hola("wamid.ar1", Some("5491123456789"), None),
        hola("wamid.ar2", Some("541123456789"), None),
        hola("wamid.br1", Some("5511987654321"), None),
        hola("wamid.br2", Some("551187654321"), None),
        hola("wamid.u1", None, Some("BR.4a5b6c7d")),
        hola("wamid.u2", None, Some("BR.4a5b6c7d")),
    ];
    for receive in [1, 2] {
        for ev in &events {
            assert_eq!(h.handle(ev, receive).await, Outcome::Done, "{ev}");
        }
    }
    h.assert_documented();
    let contacts = h.subject.contacts();
    let keys: BTreeSet<&str> = contacts.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "+525512345678",
            "+5491123456789",
            "+5511987654321",
            "BR.4a5b6c7d"
        ]),
        "{contacts:?}"
    );
    assert_eq!(contacts.len(), 4, "one contact per person: {contacts:?}");
    assert!(
        contacts
            .iter()
            .all(|c| c.name.as_deref().is_some_and(|n| n.contains("Ana"))),
        "{contacts:?}"
    );
    let activities = h.subject.activities();
    assert_eq!(assert_each_once(&activities), events.len());
    let on = |effect: &str| {
        activities
            .iter()
            .find(|a| a.effect == effect)
            .map(|a| a.contact.clone())
    };
    assert_eq!(on("wamid.br2#activity").as_deref(), Some("+5511987654321"));
    assert_eq!(on("wamid.u2#activity").as_deref(), Some("BR.4a5b6c7d"));
    assert!(
        activities.iter().any(|a| a.text.contains("hola")),
        "{activities:?}"
    );
}

/// Twenty first messages of one new person at once (one process, as crm-sync runs them): one
/// contact, twenty activities. A CRM without an upsert must not let two of them miss the
/// search and both create the contact.
pub(crate) async fn concurrent_first_messages<S: Subject>() {
    let h = Harness::<S>::start().await;
    // Long enough that a second search for the person cannot see the first one's create.
    h.subject.lag_search_index(Duration::from_secs(2));
    let events: Vec<Value> = (0..20)
        .map(|i| {
            text(
                &format!("wamid.N{i}"),
                "5215512340006",
                &format!("hola {i}"),
            )
        })
        .collect();
    let outcomes = futures::future::join_all(events.iter().map(|e| h.handle(e, 1))).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Done), "{outcomes:?}");
    h.assert_documented();
    let contacts = h.subject.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(assert_each_once(&h.subject.activities()), 20);
}

/// A person writes with phone and BSUID, then with the BSUID alone (the phone hidden): the
/// later messages land on the contact kept under the phone, not on a second contact.
pub(crate) async fn bsuid_alone_after_phone<S: Subject>() {
    let h = Harness::<S>::start().await;
    let hola = |key: &str, wa: Option<&str>| {
        message(
            key,
            wa,
            Some("MX.9f8e7d6c"),
            json!({"type": "text", "text": {"body": "hola"}}),
        )
    };
    for ev in [
        hola("wamid.p1", Some("5215512345670")),
        hola("wamid.p2", None),
    ] {
        assert_eq!(h.handle(&ev, 1).await, Outcome::Done, "{ev}");
    }
    // A new process, whose caches know nothing of the person.
    let fresh = h.restarted().await;
    let later = hola("wamid.p3", None);
    assert_eq!(fresh.handle(&delivery(&later, 1)).await, Outcome::Done);
    h.assert_documented();
    let contacts = h.subject.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].key, "+525512345670");
    let activities = h.subject.activities();
    assert_eq!(assert_each_once(&activities), 3);
    assert!(
        activities.iter().all(|a| a.contact == "+525512345670"),
        "{activities:?}"
    );
}

/// The worker dies after the CRM created the activity but before the ledger's confirm; a new
/// process gets the redelivery (in doubt) and finds the earlier create instead of repeating it.
pub(crate) async fn activity_once_across_a_crash<S: Subject>() {
    let lease = Duration::from_millis(300);
    let h = Harness::<S>::with_lease(lease).await;
    h.subject.lag_search_index(Duration::from_millis(200));
    assert_eq!(
        h.handle(&text("wamid.C1", "5215512340001", "primero"), 1)
            .await,
        Outcome::Done
    );
    let ev = text("wamid.C2", "5215512340001", "segundo");
    let effect = "wamid.C2#activity";
    h.subject.fault_next_activity(Fault::SlowAfter);
    let sync = h.sync.clone();
    let d = delivery(&ev, 1);
    let worker = tokio::spawn(async move { sync.handle(&d).await });
    wabridge_tests::eventually(
        "the CRM creates the activity",
        Duration::from_secs(20),
        || {
            let created = activities_of(&h.subject, effect) == 1;
            async move { created.then_some(()) }
        },
    )
    .await;
    assert!(!worker.is_finished(), "the worker must die mid-call");
    worker.abort();
    assert!(worker.await.unwrap_err().is_cancelled());
    // The dead worker's claim expires; the queue redelivers to a fresh process.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let fresh = h.restarted().await;
    let mut outcome = fresh.handle(&delivery(&ev, 2)).await;
    for receive in 3..8 {
        let Outcome::Retry { after, .. } = outcome else {
            break;
        };
        tokio::time::sleep(after.min(Duration::from_secs(2))).await;
        outcome = fresh.handle(&delivery(&ev, receive)).await;
    }
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        activities_of(&h.subject, effect),
        1,
        "{}: created twice",
        S::KIND
    );
    assert_eq!(assert_each_once(&h.subject.activities()), 2);
    h.assert_documented();
}

/// The create is applied but its answer is lost, and the CRM's search index has not caught
/// up when the in-doubt retry looks: a miss is not trusted until the lag has passed.
pub(crate) async fn in_doubt_waits_out_index_lag<S: Subject>() {
    let h = Harness::<S>::start().await;
    h.subject.lag_search_index(Duration::from_millis(1000));
    let sync = h.restarted().await;
    assert_eq!(
        sync.handle(&delivery(&text("wamid.L1", "5215512340002", "uno"), 1))
            .await,
        Outcome::Done
    );
    h.subject.fault_next_activity(Fault::SlowAfter);
    let ev = text("wamid.L2", "5215512340002", "dos");
    let mut outcome = sync.handle(&delivery(&ev, 1)).await;
    for receive in 2..8 {
        let Outcome::Retry { after, .. } = outcome else {
            break;
        };
        tokio::time::sleep(after.min(Duration::from_secs(2))).await;
        outcome = sync.handle(&delivery(&ev, receive)).await;
    }
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        activities_of(&h.subject, "wamid.L2#activity"),
        1,
        "{}: duplicate",
        S::KIND
    );
    h.assert_documented();
}

/// Each status change of a message we sent is an activity on the recipient's contact; a late
/// `delivered` after `read` changes nothing; a failure carries its error code.
pub(crate) async fn outbound_statuses<S: Subject>() {
    let h = Harness::<S>::start().await;
    assert_eq!(
        h.handle(&text("wamid.I1", "5215500000001", "hola"), 1)
            .await,
        Outcome::Done
    );
    for st in ["sent", "read", "delivered", "failed"] {
        assert_eq!(
            h.handle(&status("wamid.OUT", "5215500000001", st), 1).await,
            Outcome::Done,
            "{st}"
        );
    }
    h.assert_documented();
    let statuses: Vec<ActivityView> = h
        .subject
        .activities()
        .into_iter()
        .filter(|a| a.effect.ends_with("#status"))
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|a| a.contact == "+525500000001"),
        "{statuses:?}"
    );
    let text_of = |st: &str| {
        statuses
            .iter()
            .find(|a| a.effect == format!("wamid.OUT:{st}#status"))
            .map(|a| a.text.clone())
            .unwrap_or_default()
    };
    assert!(text_of("sent").contains("sent"));
    assert!(text_of("read").contains("read"));
    assert!(text_of("failed").contains("failed") && text_of("failed").contains("131026"));
    assert!(
        text_of("delivered").is_empty(),
        "a late delivered is dropped"
    );
}

/// A keyword opt-out, then Meta's `user_preferences` resume: the contact's consent field.
pub(crate) async fn consent_fields<S: Subject>() {
    let h = Harness::<S>::start().await;
    let phone = "+525599990000";
    assert_eq!(
        h.handle(&text("wamid.K1", "5215599990000", "BAJA"), 1)
            .await,
        Outcome::Done
    );
    let consent = |h: &Harness<S>| {
        h.subject
            .contacts()
            .into_iter()
            .find(|c| c.key == phone)
            .and_then(|c| c.consent)
    };
    assert_eq!(consent(&h).as_deref(), Some("opt_out"));
    let resume = json!({"v": 1, "key": "pref:5215599990000:1763780500:resume", "kind": "user_preference",
        "field": "user_preferences", "waba_id": "W1",
        "item": {"wa_id": "5215599990000", "detail": "User requested to resume marketing messages",
                 "category": "marketing_messages", "value": "resume", "timestamp": 1763780500},
        "received_at": 1763780500000i64});
    assert_eq!(h.handle(&resume, 1).await, Outcome::Done);
    assert_eq!(consent(&h).as_deref(), Some("opt_in"));
    h.assert_documented();
}

/// A click-to-WhatsApp referral: first and last touch on the contact, and a deal (with the
/// click id) on that contact, once across redelivery.
pub(crate) async fn attribution_and_deal<S: Subject>() {
    let h = Harness::<S>::start().await;
    let clid = "Aff-n8ZTODiE79d22KtAwQKj9e";
    let referral = message(
        "wamid.R1",
        Some("5215599990001"),
        None,
        json!({"type": "text", "text": {"body": "Hola, vi su anuncio"},
               "referral": {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726",
                            "source_type": "ad", "headline": "Chat with us", "media_type": "image",
                            "ctwa_clid": clid}}),
    );
    for receive in [1, 2] {
        assert_eq!(h.handle(&referral, receive).await, Outcome::Done);
    }
    h.assert_documented();
    let contact = h
        .subject
        .contacts()
        .into_iter()
        .find(|c| c.key == "+525599990001")
        .expect("contact");
    assert_eq!(contact.first_clid.as_deref(), Some(clid), "{contact:?}");
    assert_eq!(contact.last_clid.as_deref(), Some(clid), "{contact:?}");
    let deals = h.subject.deals();
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0].effect, "wamid.R1#lead");
    assert_eq!(deals[0].contact, "+525599990001");
    assert_eq!(deals[0].clid.as_deref(), Some(clid));
}

/// 2,000 events of 40 people at once through the real queue and worker (128 in flight, as
/// `wabridge serve` runs): every activity once, and the CRM's documented rate limit held
/// within 5 % in every rolling window.
pub(crate) async fn burst_holds_the_rate_limit<S: Subject>() {
    let h = Harness::<S>::start().await;
    let events: Vec<Value> = (0..2000)
        .map(|i| {
            text(
                &format!("wamid.B{i}"),
                &format!("52155{:08}", i % 40),
                &format!("mensaje {i}"),
            )
        })
        .collect();
    let (dead, elapsed) = drain(&h.db, &h.sync, &events, 1, 1, 128).await;
    assert_eq!(dead, 0);
    h.assert_documented();
    assert_eq!(assert_each_once(&h.subject.activities()), 2000);
    assert_eq!(h.subject.contacts().len(), 40);
    let arrivals = h.subject.arrivals();
    let rate = events.len() as f64 / elapsed.as_secs_f64();
    match S::LIMIT {
        Some((max, window)) => {
            let busiest = busiest_window(&arrivals, window);
            println!(
                "BURST {}: 2000 events in {elapsed:.2?} ({rate:.0}/s), {} calls, busiest {window:?} window {busiest} calls (limit {max}), {} answered 429",
                S::KIND,
                arrivals.len(),
                h.subject.over_limit()
            );
            assert!(
                busiest * 100 <= max * 105,
                "{}: {busiest} calls in {window:?}, limit {max}",
                S::KIND
            );
        }
        None => println!(
            "BURST {}: 2000 events in {elapsed:.2?} ({rate:.0}/s), {} calls, no documented rate limit",
            S::KIND,
            arrivals.len()
        ),
    }
    if let Some(max) = S::CONCURRENCY {
        let peak = h.subject.peak_concurrency();
        println!(
            "BURST {}: at most {peak} calls in flight (limit {max})",
            S::KIND
        );
        assert!(
            peak <= max,
            "{}: {peak} calls in flight, limit {max}",
            S::KIND
        );
        assert_eq!(h.subject.over_limit(), 0, "{}: answered 429", S::KIND);
    }
}

/// 429 without a delay is absorbed in process; 429 with `Retry-After` waits at least that long;
/// 5xx and timeouts go back to the queue with backoff, and one blip is absorbed. Each failing
/// class is followed by a success, so the circuit breaker (its own tests) never opens here.
pub(crate) async fn retried_failures<S: Subject>() {
    let h = Harness::<S>::start().await;
    let ev = |i: usize| {
        text(
            &format!("wamid.F{i}"),
            "5215512340003",
            &format!("intento {i}"),
        )
    };
    assert_eq!(h.handle(&ev(0), 1).await, Outcome::Done);
    h.subject.script(&[Fault::RateLimit]);
    assert_eq!(
        h.handle(&ev(1), 1).await,
        Outcome::Done,
        "a 429 absorbed in process"
    );
    h.subject.script(&[Fault::RateLimitRetryAfter]);
    match h.handle(&ev(2), 1).await {
        Outcome::Retry { after, reason } => {
            assert!(after >= Duration::from_secs(RETRY_AFTER_SECS), "{after:?}");
            assert!(reason.contains("rate limited"), "{reason}");
        }
        other => panic!("429 + Retry-After → retry, got {other:?}"),
    }
    assert_eq!(h.handle(&ev(2), 2).await, Outcome::Done);
    for (i, fault) in [(3, Fault::ServerError), (5, Fault::SlowBefore)] {
        h.subject.script(&[fault; 3]);
        match h.handle(&ev(i), 1).await {
            Outcome::Retry { after, .. } => {
                assert!(after <= Duration::from_secs(4), "{fault:?}: {after:?}")
            }
            other => panic!("{fault:?} → retry, got {other:?}"),
        }
        until_done(&h, &ev(i), 5).await;
    }
    h.subject.script(&[Fault::ServerError]);
    assert_eq!(
        h.handle(&ev(4), 1).await,
        Outcome::Done,
        "one 5xx absorbed in process"
    );
    assert!(!h.sync.breaker().stats().open);
    h.assert_documented();
    assert_eq!(assert_each_once(&h.subject.activities()), 6);
}

/// A 400 is the record's fault: dead-lettered at once with the CRM's own words, the phone
/// number the CRM echoed masked.
pub(crate) async fn rejection_dead_letters_masked<S: Subject>() {
    let h = Harness::<S>::start().await;
    let before = h.subject.arrivals().len();
    h.subject.script(&[Fault::BadRequest]);
    match h
        .handle(&text("wamid.X1", "5215512340004", "hola"), 1)
        .await
    {
        Outcome::DeadLetter(reason) => {
            assert!(reason.contains(S::REJECTION_WORDS), "{reason}");
            assert!(reason.contains("400"), "{reason}");
            let digits = ECHOED_PHONE.trim_start_matches('+');
            assert!(
                !reason.contains(digits) && !reason.contains(&digits[3..]),
                "unmasked: {reason}"
            );
        }
        other => panic!("400 → dead letter, got {other:?}"),
    }
    assert_eq!(
        h.subject.arrivals().len(),
        before + 1,
        "no retry of a rejected record"
    );
    assert_eq!(activities_of(&h.subject, "wamid.X1#activity"), 0);
}

/// 401 and 403: our credentials broke, not the event. It waits (back to the queue, never the
/// dead letters, no quick retries hammering the CRM) and goes through once they work.
pub(crate) async fn unauthorized_waits<S: Subject>() {
    let h = Harness::<S>::start().await;
    let ev = text("wamid.A1", "5215512340005", "hola");
    for fault in [Fault::Unauthorized, Fault::Forbidden] {
        let before = h.subject.arrivals().len();
        h.subject.script(&[fault]);
        match h.handle(&ev, 1).await {
            Outcome::Retry { reason, .. } => {
                assert!(reason.contains("credentials"), "{fault:?}: {reason}")
            }
            other => panic!("{fault:?} → wait, got {other:?}"),
        }
        assert_eq!(
            h.subject.arrivals().len(),
            before + 1,
            "{fault:?}: one call, no quick retries"
        );
    }
    assert_eq!(h.handle(&ev, 2).await, Outcome::Done);
    assert_eq!(activities_of(&h.subject, "wamid.A1#activity"), 1);
    // A revoked token: every call refused. After OPEN_AFTER refusals in a row the circuit
    // opens (its `circuit_open` metric is what the stack's CRM alarm watches) and later events
    // wait on the queue without calling the CRM; none is dead-lettered.
    let refused = wabridge_core::breaker::OPEN_AFTER as usize;
    h.subject.script(&vec![Fault::Unauthorized; refused]);
    for i in 0..refused {
        let ev = text(&format!("wamid.A{}", i + 2), "5215512340005", "otra");
        match h.handle(&ev, 1).await {
            Outcome::Retry { .. } => {}
            other => panic!("refused call {i}: {other:?}"),
        }
    }
    assert!(h.sync.breaker().stats().open, "the circuit opened");
    let before = h.subject.arrivals().len();
    match h.handle(&text("wamid.A99", "5215512340005", "y"), 1).await {
        Outcome::Retry { reason, .. } => assert!(reason.contains("circuit open"), "{reason}"),
        other => panic!("open circuit → wait, got {other:?}"),
    }
    assert_eq!(
        h.subject.arrivals().len(),
        before,
        "no call while the circuit is open"
    );
    h.assert_documented();
}
