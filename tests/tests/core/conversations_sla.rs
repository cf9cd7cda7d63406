//! The SLA week of [`wabridge_tests::conversation_sla`] over the embedded engine (conversation
//! store, events queue, effects ledger and the `local` CRM in one SQLite file): two breaches,
//! each once, with business hours; idle closes by the sweep that the lazy path never repeats;
//! the backlog; the report's exact figures.

use serde_json::Value;
use wabridge_tests::conversation_sla as sla;

#[tokio::test]
async fn an_sla_week_over_sqlite_breaches_once_closes_once_and_reports_exact_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (sync, conversations, queue, records) = sla::sqlite(&dir.path().join("t.db"));
    sla::run(&conversations, queue, &sync).await;
    let mut all = Vec::new();
    for kind in ["conversation", "sla_breach"] {
        let got = records.list(Some(kind), 0, 10_000).await.unwrap();
        all.extend(got.into_iter().map(|r| Value::Object(r.body)));
    }
    sla::check_breaches(&all);

    sla::set_outcomes(&conversations).await;
    let by_origin = sla::report(&conversations, "origin").await;
    let by_agent = sla::report(&conversations, "agent").await;
    sla::check_report(&by_origin, &by_agent);
}
