//! Template registries per WABA (issue 21): with a numbers registry, `POST /sends` checks a
//! template against the sending number's WABA's registry; a template that WABA does not have is
//! refused `template_not_found` once that registry has been synced (never on a fresh install),
//! while a number of another WABA that has it sends it. Without a registry, nothing changes.

use std::sync::Arc;

use serde_json::json;
use wabridge_core::numbers::Numbers;
use wabridge_core::sends::service::Sends;
use wabridge_core::sends::template_sync::RemoteTemplate;
use wabridge_core::templates::TemplateStatus;
use wabridge_sqlite::{Db, SqliteEngine};

use super::refusal_code;

const WABA_MX: &str = "102290129340398";
const WABA_CO: &str = "202290129340398";

fn registry() -> Arc<Numbers> {
    let number = |label: &str, id: &str, waba: &str, key: &str| {
        format!(
            "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"{waba}\"\n\
             display_number = \"+52 55 5000 {}\"\ntoken_key = \"{key}\"\n[number.crm]\nkind = \"local\"\n",
            &id[..4]
        )
    };
    let text = number("ventas-mx", "106540352242922", WABA_MX, "TOKEN_MX")
        + &number("soporte-co", "206540352242922", WABA_CO, "TOKEN_CO");
    Arc::new(Numbers::parse("numbers.toml", text.as_bytes()).unwrap())
}

fn sends(db: &Db, numbers: Option<Arc<Numbers>>) -> Sends {
    let s = SqliteEngine::new(db.clone()).sends(wabridge_tests::admin_keys("test-api-key"));
    match numbers {
        Some(n) => s.with_numbers(n),
        None => s,
    }
}

fn pedido(from: Option<&str>) -> Vec<u8> {
    let mut body = json!({"to": "+525512345678", "template": "pedido_listo", "language": "es_MX",
                          "parameters": ["Ana"]});
    if let Some(from) = from {
        body["from"] = json!(from);
    }
    body.to_string().into_bytes()
}

/// `pedido_listo` (es_MX, APPROVED, one parameter) as a sync read it into `waba`'s registry.
async fn approved_in(s: &Sends, waba: &str) {
    let t = RemoteTemplate {
        status: Some(TemplateStatus::new("APPROVED")),
        category: Some("UTILITY".into()),
        body_parameters: 1,
        ..RemoteTemplate::named("pedido_listo", "es_MX")
    };
    s.policy
        .templates
        .of(waba)
        .apply_synced(&t, 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_template_the_senders_waba_lacks_is_refused_once_that_waba_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let s = sends(&db, Some(registry()));
    approved_in(&s, WABA_MX).await;
    // A fresh install: CO's registry was never synced, so it refuses nothing it does not know.
    s.submit(&pedido(Some("soporte-co")), None).await.unwrap();
    s.policy.templates.of(WABA_CO).mark_synced(2).await.unwrap();
    let e = s
        .submit(&pedido(Some("soporte-co")), None)
        .await
        .unwrap_err();
    let message = e.to_string();
    assert_eq!(refusal_code(e), (422, "template_not_found"));
    for part in ["pedido_listo", "es_MX", "soporte-co"] {
        assert!(message.contains(part), "{message}");
    }
    // MX has it: sent from MX, synced or not; and its checks are MX's (one parameter).
    s.submit(&pedido(Some("ventas-mx")), None).await.unwrap();
    s.policy.templates.of(WABA_MX).mark_synced(2).await.unwrap();
    s.submit(&pedido(Some("106540352242922")), None)
        .await
        .unwrap();
    let none = json!({"to": "+525512345678", "template": "pedido_listo", "language": "es_MX",
                      "from": "ventas-mx"});
    let e = s
        .submit(none.to_string().as_bytes(), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "template_parameter_count"));
    // Once CO has it (a template webhook or the next sync), CO sends it too.
    approved_in(&s, WABA_CO).await;
    s.submit(&pedido(Some("soporte-co")), None).await.unwrap();
}

#[tokio::test]
async fn the_language_picker_reads_the_senders_waba() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let s = sends(&db, Some(registry()));
    approved_in(&s, WABA_MX).await;
    let no_language = |from: &str| {
        json!({"to": "+525512345678", "template": "pedido_listo", "parameters": ["Ana"],
               "from": from})
        .to_string()
        .into_bytes()
    };
    let r = s.submit(&no_language("ventas-mx"), None).await.unwrap();
    assert_eq!(r.request["language"], "es_MX");
    let e = s
        .submit(&no_language("soporte-co"), None)
        .await
        .unwrap_err();
    assert_eq!(refusal_code(e), (422, "template_language_unavailable"));
}

/// Without a numbers registry the one implicit registry holds every template, and a template
/// it lacks is sent as before, synced or not.
#[tokio::test]
async fn without_a_registry_nothing_is_refused_as_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let s = sends(&db, None);
    s.policy.templates.implicit().mark_synced(1).await.unwrap();
    s.submit(&pedido(None), None).await.unwrap();
    // A template webhook of any WABA lands in the implicit registry.
    let t = RemoteTemplate {
        status: Some(TemplateStatus::new("PAUSED")),
        ..RemoteTemplate::named("pedido_listo", "es_MX")
    };
    s.policy
        .templates
        .of(WABA_CO)
        .apply_synced(&t, 5)
        .await
        .unwrap();
    let e = s.submit(&pedido(None), None).await.unwrap_err();
    assert_eq!(refusal_code(e), (422, "template_not_sendable"));
}

fn change(name: &str, at: i64) -> wabridge_core::template_files::plan::AppliedChange {
    wabridge_core::template_files::plan::AppliedChange {
        name: name.into(),
        language: "es_MX".into(),
        action: "edit".into(),
        template_id: Some("1200000000000001".into()),
        content_hash: "ab".repeat(32),
        applied_by: "cli".into(),
        applied_at_ms: at,
    }
}

/// The apply history is per WABA (Meta's edit limits count per template of one WABA); a
/// database of schema 5 keeps its applies as the implicit number's.
#[tokio::test]
async fn the_apply_history_is_per_waba() {
    use wabridge_core::template_files::apply::TemplateHistory;
    use wabridge_sqlite::SqliteTemplateHistory;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // Schema 5's history: no `waba` column.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE template_applies (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL, language TEXT NOT NULL, action TEXT NOT NULL,
                template_id TEXT, content_hash TEXT NOT NULL, applied_by TEXT NOT NULL,
                applied_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             INSERT INTO template_applies (name, language, action, content_hash, applied_by,
                applied_at, expires_at) VALUES ('pedido', 'es_MX', 'create', 'x', 'cli', 5, 99);
             PRAGMA user_version=5;",
        )
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    let implicit = SqliteTemplateHistory::new(db.clone());
    let (mx, co) = (
        SqliteTemplateHistory::for_waba(db.clone(), WABA_MX),
        SqliteTemplateHistory::for_waba(db.clone(), WABA_CO),
    );
    mx.record(&change("pedido", 10)).await.unwrap();
    mx.record(&change("otro", 11)).await.unwrap();
    co.record(&change("pedido", 12)).await.unwrap();
    let names = |h: Vec<wabridge_core::template_files::plan::AppliedChange>| {
        h.into_iter()
            .map(|c| (c.name, c.applied_at_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(mx.history(None, 0).await.unwrap()),
        [("pedido".to_string(), 10), ("otro".to_string(), 11)]
    );
    assert_eq!(
        names(co.history(Some("pedido"), 0).await.unwrap()),
        [("pedido".to_string(), 12)]
    );
    assert_eq!(
        names(implicit.history(None, 0).await.unwrap()),
        [("pedido".to_string(), 5)],
        "schema 5's rows are the implicit number's"
    );
}
