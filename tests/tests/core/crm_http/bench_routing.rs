//! What routing by number costs crm-sync (issue 21: within 5 % of the one-number throughput),
//! against CRMs answering in 50 ms. Ignored; run with
//! `cargo test --release -p wabridge-tests --test core -- --ignored --nocapture crm_http::bench_routing`.
//!
//! The same 3,000 events, alternating between two business numbers, go through one loop with
//! 128 in flight: once to one crm-sync (today's single number: no registry), once through the
//! registry's dispatch to each number's own crm-sync and webhook CRM (two targets on the same
//! fake, as two numbers with their own CRMs). The rounds alternate (this machine is noisy).

use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::numbers::dispatch::NumberDispatch;
use wabridge_core::numbers::Numbers;

use super::*;

const EVENTS: usize = 3000;
const CONTACTS: usize = 500;
const ROUNDS: usize = 3;

const REGISTRY: &str = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "webhook", settings = { CRM_WEBHOOK_URL = "http://mx.invalid/hook" } }

[[number]]
label = "soporte-co"
phone_number_id = "206540352242922"
waba_id = "202290129340398"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
crm = { kind = "webhook", settings = { CRM_WEBHOOK_URL = "http://co.invalid/hook" } }
"#;

/// A customer's text to one of the two numbers (customer `c` always to the same one).
fn routed_text(i: usize) -> Value {
    let mut event = text_event(i, CONTACTS);
    let (id, waba, display) = if (i % CONTACTS).is_multiple_of(2) {
        ("106540352242922", "102290129340398", "15550783881")
    } else {
        ("206540352242922", "202290129340398", "576015002222")
    };
    event["phone_number_id"] = json!(id);
    event["waba_id"] = json!(waba);
    event["display_phone_number"] = json!(display);
    event
}

fn sync_on(db: &Db, crm: Arc<dyn Crm>) -> CrmSync {
    CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        crm,
        Arc::new(Mapping::example("webhook").unwrap()),
    )
    .with_lease(Duration::from_secs(3))
}

async fn run(routed: bool) -> (f64, u64) {
    let fake = Arc::new(Fake {
        latency: Duration::from_millis(50),
        ..Default::default()
    });
    let addr = serve(fake.clone()).await;
    let webhook = |path: &str| -> Arc<dyn Crm> {
        Arc::new(WebhookCrm::new(&format!("http://{addr}/{path}"), SECRET, TIMEOUT).unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let events: Vec<Value> = (0..EVENTS).map(routed_text).collect();
    let (dead, elapsed) = if routed {
        let numbers = Arc::new(Numbers::parse("numbers.toml", REGISTRY.as_bytes()).unwrap());
        let (mx, co) = (webhook("hook?line=mx"), webhook("hook?line=co"));
        let dispatch = NumberDispatch::new(numbers.clone(), |label| {
            let crm = if label == Some("ventas-mx") { &mx } else { &co };
            let n = numbers.find(label.unwrap()).unwrap();
            Arc::new(sync_on(&db, crm.clone()).with_number(n.business_number()))
        });
        crate::crm_conformance::drain_with(&db, Arc::new(dispatch), None, &events, 1, 1, 128).await
    } else {
        let sync = Arc::new(sync_on(&db, webhook("hook")));
        crate::crm_conformance::drain(&db, &sync, &events, 1, 1, 128).await
    };
    assert_eq!(dead, 0);
    let calls = fake.calls.load(std::sync::atomic::Ordering::Relaxed);
    (EVENTS as f64 / elapsed.as_secs_f64(), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_routing_one_number_and_two() {
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        one.push(run(false).await);
        two.push(run(true).await);
    }
    let median = |v: &[(f64, u64)]| {
        let mut r: Vec<f64> = v.iter().map(|r| r.0).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (a, b) = (median(&one), median(&two));
    let each = |v: &[(f64, u64)]| {
        v.iter()
            .map(|r| format!("{:.0}", r.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "BENCH routing webhook 1x128, 50 ms CRM: one number {a:.0} events/s [{}] ({} calls), two numbers routed {b:.0} events/s [{}] ({} calls): {:.1} %",
        each(&one),
        one[0].1,
        each(&two),
        two[0].1,
        100.0 * b / a
    );
}
