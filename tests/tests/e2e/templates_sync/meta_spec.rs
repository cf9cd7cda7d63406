//! Meta's spec through Prism: the sync's request is one Meta's OpenAPI spec accepts.

use wabridge_core::config;
use wabridge_core::sends::template_sync::TemplateSyncConfig;
use wabridge_tests::prism::Prism;

use super::*;

#[tokio::test]
async fn the_sync_request_matches_metas_spec() {
    let Some(prism) = Prism::start() else { return };
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let config = TemplateSyncConfig::from_lookup(|n| match n {
        config::WHATSAPP_ACCESS_TOKEN => Some("EAAGtestToken123".into()),
        config::WHATSAPP_BUSINESS_ACCOUNT_ID => Some(WABA.into()),
        config::WHATSAPP_API_URL => Some(prism.url().to_string()),
        _ => None,
    })
    .unwrap();
    // Prism answers 422 (terminal) for a request that breaks the spec.
    let report = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_or_else(|e| panic!("Prism refused the template list request: {e:?}"));
    assert_eq!(report.pages, 1, "Meta's example has no paging.next");
    assert!(report.templates >= 1, "{report:?}");
    // Every example in Meta's spec lists 2023_april_promo: MARKETING, "Hi {{1}} ... {{2}}".
    let promo = registry
        .get("2023_april_promo", "en_US")
        .await
        .unwrap()
        .expect("Meta's example template recorded");
    assert_eq!(promo.body_parameters, Some(2));
    assert_eq!(promo.category.as_deref(), Some("MARKETING"));
    assert!(promo.status.is_some());
}
