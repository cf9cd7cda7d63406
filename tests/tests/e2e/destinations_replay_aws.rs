//! `wabridge replay` against a deployment (docs/destinations.md#replay) over moto's DynamoDB,
//! SNS and SQS: the relay Lambda's handler logs each finished delivery once (an SQS
//! redelivery logs nothing new); `wabridge replay --table T --queue-url URL` sends the bot a
//! period's events again, exactly that period, through its queue and relay function; a second
//! replay does not double; an erased person's deliveries are not replayed; a claim-checked event
//! is not logged; bad flags are named.

use std::sync::Mutex;

use serde_json::{json, Value};
use wabridge_core::clock::Clock;
use wabridge_core::numbers::replay::DeliveryLog;

use crate::destinations_aws::{bot, stack, MX, WABA_MX};
use wabridge_tests::{gateway, require_aws};

const ANA: &str = "5215512345678";
const LUIS: &str = "5215587654321";
const HOUR_MS: i64 = 3_600_000;

fn message(wamid: &str, wa_id: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_MX, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": MX},
        "contacts": [{"profile": {"name": "Cliente"}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": "1763780000", "type": "text",
                      "text": {"body": "¿Tienen envío a Monterrey?"}}]}}]}]})
}

/// The message ids the bot got, in order.
fn relayed(got: &Mutex<Vec<(String, String)>>) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|(body, _)| {
            let v: Value = serde_json::from_str(body).unwrap();
            v["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `wabridge replay ARGS` against moto; (success, stdout, stderr).
fn replay(args: &[&str]) -> (bool, String, String) {
    let endpoint = wabridge_tests::moto_endpoint().unwrap();
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let out = gateway::against_aws(&endpoint, &all, &[]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_relay_logs_its_deliveries_and_replay_sends_a_period_again_once() {
    let s = stack(require_aws!()).await;
    let (url, _, got) = bot().await;
    let app = s.relay_app(&url);
    let engine = s.aws.engine(&s.table);
    let log = engine.deliveries();
    let logged = || async { log.logged("bot", 0, i64::MAX).await.unwrap().len() };

    // Three hours ago the bot got OLD (logged as the relay logs it, on a clock 3 h back).
    s.post(&message("wamid.OLD", ANA)).await;
    let old = s.batch(&s.bot.url).await;
    assert_eq!(old.records.len(), 1);
    let record = &old.records[0];
    let body = record.body.clone().unwrap();
    let key = wabridge_core::event::Event::from_json(&body).unwrap().key;
    let earlier = Clock::manual(wabridge_core::clock::now_ms() - 3 * HOUR_MS);
    log.clone()
        .with_clock(earlier)
        .delivered("bot", &key, &body)
        .await
        .unwrap();
    s.finish(&s.bot.url, &old).await;

    // Now Ana and Luis write: delivered and logged once each, though SQS hands the batch to
    // the function twice (the bot gets them twice, as it would from Meta; the log does not).
    s.post(&message("wamid.ANA", ANA)).await;
    s.post(&message("wamid.LUIS", LUIS)).await;
    let event = s.batch(&s.bot.url).await;
    assert_eq!(event.records.len(), 2);
    for _ in 0..2 {
        let answer = relay::handle(&app, event.clone(), None).await;
        assert!(answer.batch_item_failures.is_empty());
    }
    s.finish(&s.bot.url, &event).await;
    assert_eq!(relayed(&got).len(), 4);
    assert_eq!(logged().await, 3, "each key logged once");
    // A claim-checked event (over 200 KiB) is not logged: no DynamoDB item holds it.
    let mut big = wabridge_core::event::Event::from_json(&body).unwrap();
    big.key = "m:wamid.BIG".into();
    let text = json!({"type": "text", "text": {"body": "x".repeat(210 * 1024)}}).to_string();
    big.item = serde_json::value::RawValue::from_string(text).unwrap();
    log.delivered("bot", &big.key, &big.to_json())
        .await
        .unwrap();
    assert_eq!(logged().await, 3, "the oversized event is left out");
    got.lock().unwrap().clear();

    let table = s.table.as_str();
    let queue = s.bot.url.as_str();
    let deliver_all = || async {
        let event = s.batch(&s.bot.url).await;
        let answer = relay::handle(&app, event.clone(), None).await;
        assert!(answer.batch_item_failures.is_empty());
        s.finish(&s.bot.url, &event).await;
    };
    let sorted = |want: &[&str]| {
        let mut ids = relayed(&got);
        ids.sort();
        got.lock().unwrap().clear();
        assert_eq!(ids, want);
    };

    // The last two hours: Ana's and Luis's messages, not OLD.
    let base = [
        "--destination",
        "bot",
        "--table",
        table,
        "--queue-url",
        queue,
    ];
    let since = |since: &'static str| [&base[..], &["--since", since]].concat();
    let (ok, out, err) = replay(&since("2h"));
    assert!(ok, "{err}");
    assert!(
        out.contains("enqueued 2 deliveries on destination:bot"),
        "{out}"
    );
    deliver_all().await;
    sorted(&["wamid.ANA", "wamid.LUIS"]);
    assert_eq!(logged().await, 3, "a replayed delivery logs nothing new");

    // From 4 to 2 hours ago: OLD only.
    let (ok, out, err) = replay(&[&since("4h")[..], &["--until", "2h"]].concat());
    assert!(ok, "{err}");
    assert!(out.contains("enqueued 1 deliveries"), "{out}");
    deliver_all().await;
    sorted(&["wamid.OLD"]);

    // A second replay of the same period sends the same two, not four.
    let (ok, out, _) = replay(&since("2h"));
    assert!(ok && out.contains("enqueued 2 deliveries"), "{out}");
    deliver_all().await;
    sorted(&["wamid.ANA", "wamid.LUIS"]);

    // Luis is erased: his logged deliveries go, and a replay leaves him out.
    let audit = engine.audit(wabridge_tests::AUDIT_RETENTION);
    let erased = engine
        .erasure(&s.events.url, audit)
        .erase("+52 1 55 8765 4321", "test")
        .await
        .unwrap();
    let erased = serde_json::to_string(&erased).unwrap();
    assert!(erased.contains("delivery"), "{erased}");
    let (ok, out, _) = replay(&since("4h"));
    assert!(ok && out.contains("enqueued 2 deliveries"), "{out}");
    deliver_all().await;
    sorted(&["wamid.ANA", "wamid.OLD"]);
    let bodies = log.logged("bot", 0, i64::MAX).await.unwrap();
    assert!(bodies.iter().all(|b| !b.contains(LUIS)), "{bodies:?}");

    // Bad flags are named.
    for (args, flag) in [
        (
            vec!["--destination", "bot", "--since", "2h", "--table", table],
            "--queue-url",
        ),
        (
            vec![
                "--destination",
                "bot",
                "--since",
                "2h",
                "--queue-url",
                queue,
            ],
            "--queue-url",
        ),
        (
            vec![
                "--destination",
                "Bot MX",
                "--since",
                "2h",
                "--table",
                table,
                "--queue-url",
                queue,
            ],
            "--destination",
        ),
        (
            vec![
                "--destination",
                "bot",
                "--since",
                "soon",
                "--table",
                table,
                "--queue-url",
                queue,
            ],
            "--since",
        ),
        (
            vec![
                "--destination",
                "bot",
                "--since",
                "2h",
                "--table",
                table,
                "--queue-url",
                "bot",
            ],
            "--queue-url",
        ),
    ] {
        let (ok, _, err) = replay(&args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
