//! Tests of the SQLite template registry.

use super::*;
use wabridge_core::templates::TemplateRegistry;

/// A database of schema 2 (templates without `quality`) opens, keeps its rows and takes a
/// quality score; the language list reads one name's rows only.
#[tokio::test]
async fn a_schema_2_registry_gains_quality() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE templates (name TEXT NOT NULL, language TEXT NOT NULL, status TEXT,
                reason TEXT, status_at INTEGER NOT NULL DEFAULT 0, category TEXT,
                body_parameters INTEGER, PRIMARY KEY (name, language)) WITHOUT ROWID;
             INSERT INTO templates (name, language, status, category) VALUES
                ('pedido', 'es_MX', 'APPROVED', 'UTILITY'),
                ('pedido', 'pt_BR', 'PENDING', 'UTILITY'),
                ('otro', 'es_MX', 'APPROVED', 'UTILITY');
             PRAGMA user_version=2;",
        )
        .unwrap();
    }
    let registry = TemplateRegistry::new(std::sync::Arc::new(SqliteTemplates::new(
        Db::open(&path).unwrap(),
    )));
    let yellow: wabridge_core::webhook::model::TemplateStatusUpdate =
        serde_json::from_value(serde_json::json!({"message_template_name": "pedido",
            "message_template_language": "es_MX", "new_quality_score": "yellow"}))
        .unwrap();
    registry
        .apply_update("message_template_quality_update", &yellow, 1)
        .await
        .unwrap()
        .unwrap();
    let got = registry.get("pedido", "es_MX").await.unwrap().unwrap();
    assert_eq!(got.quality.as_deref(), Some("YELLOW"));
    assert_eq!(
        got.category.as_deref(),
        Some("UTILITY"),
        "a patch keeps the rest"
    );
    assert_eq!(
        registry.approved_languages("pedido").await.unwrap(),
        ["es_MX"]
    );
    // Schema 5: the old rows are the implicit number's registry, no WABA's.
    let db = Db::open(&path).unwrap();
    let registries = SqliteTemplates::registries(db.clone());
    assert_eq!(registries.implicit().list().await.unwrap().len(), 3);
    let keyed = registries.per_waba();
    assert!(keyed.of("102290129340398").list().await.unwrap().is_empty());
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::db::SCHEMA_VERSION);
}

/// Two WABAs' registries hold the same name and language apart, each with its own sync
/// mark; without per-WABA keys every WABA reads the implicit registry.
#[tokio::test]
async fn registries_are_per_waba() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let registries = SqliteTemplates::registries(db.clone()).per_waba();
    let (mx, co) = (registries.of("111"), registries.of("222"));
    mx.define("pedido", "es_MX", Some("UTILITY"), Some(2))
        .await
        .unwrap();
    co.define("pedido", "es_MX", Some("MARKETING"), Some(1))
        .await
        .unwrap();
    let get = |r: TemplateRegistry| async move { r.get("pedido", "es_MX").await.unwrap().unwrap() };
    assert_eq!(get(mx.clone()).await.body_parameters, Some(2));
    assert_eq!(get(co.clone()).await.category.as_deref(), Some("MARKETING"));
    assert_eq!(
        registries.of("333").get("pedido", "es_MX").await.unwrap(),
        None
    );
    assert_eq!(mx.synced_at().await.unwrap(), None);
    mx.mark_synced(42).await.unwrap();
    mx.mark_synced(43).await.unwrap();
    assert_eq!(mx.synced_at().await.unwrap(), Some(43));
    assert_eq!(co.synced_at().await.unwrap(), None);
    let single = SqliteTemplates::registries(db);
    assert_eq!(single.of("111").get("pedido", "es_MX").await.unwrap(), None);
    single.implicit().mark_synced(7).await.unwrap();
    assert_eq!(single.of("222").synced_at().await.unwrap(), Some(7));
}

/// Each template webhook updates what it is about; a notice changes nothing yet; a value
/// without what it updates says which field it lacks.
#[tokio::test]
async fn template_updates_reach_the_registry() {
    use wabridge_core::webhook::model::TemplateStatusUpdate;
    let dir = tempfile::tempdir().unwrap();
    let registry = TemplateRegistry::new(std::sync::Arc::new(SqliteTemplates::new(
        Db::open(dir.path().join("t.db")).unwrap(),
    )));
    registry
        .define("promo", "es_MX", Some("UTILITY"), Some(1))
        .await
        .unwrap();
    let update =
        |v: serde_json::Value| -> TemplateStatusUpdate { serde_json::from_value(v).unwrap() };
    let named =
        serde_json::json!({"message_template_name": "promo", "message_template_language": "es_MX"});
    let with = |extra: serde_json::Value| {
        let mut v = named.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        update(v)
    };
    let apply = |field: &'static str, u: TemplateStatusUpdate| {
        let registry = registry.clone();
        async move { registry.apply_update(field, &u, 1000).await.unwrap() }
    };
    // A notice of tomorrow's change: nothing yet.
    let notice =
        with(serde_json::json!({"new_category": "UTILITY", "correct_category": "MARKETING"}));
    assert_eq!(apply("template_category_update", notice).await, Ok(false));
    let get = || async { registry.get("promo", "es_MX").await.unwrap().unwrap() };
    assert_eq!(get().await.category.as_deref(), Some("UTILITY"));
    // Done: MARKETING at once.
    let done =
        with(serde_json::json!({"previous_category": "UTILITY", "new_category": "marketing"}));
    assert_eq!(apply("template_category_update", done).await, Ok(true));
    assert_eq!(get().await.category.as_deref(), Some("MARKETING"));
    let quality = with(serde_json::json!({"new_quality_score": "RED"}));
    apply("message_template_quality_update", quality)
        .await
        .unwrap();
    let edited =
        with(serde_json::json!({"message_template_element": "Hola {{1}}, tu {{2}} y {{3}}"}));
    apply("message_template_components_update", edited)
        .await
        .unwrap();
    let info = get().await;
    assert_eq!(
        (info.quality.as_deref(), info.body_parameters),
        (Some("RED"), Some(3))
    );
    assert_eq!(
        info.category.as_deref(),
        Some("MARKETING"),
        "kept by the other patches"
    );
    // Missing what it updates.
    let e = apply(
        "message_template_quality_update",
        with(serde_json::json!({})),
    )
    .await;
    assert_eq!(
        e,
        Err(wabridge_core::templates::MissingField("new_quality_score"))
    );
}
