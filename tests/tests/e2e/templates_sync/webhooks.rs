//! Ordering with webhooks: a template status webhook newer than the sync's read keeps its
//! status; an older one arriving late changes nothing.

use serde_json::json;
use wabridge_core::clock::now_ms;
use wabridge_core::templates::TemplateStatus;

use super::*;

#[tokio::test]
async fn a_webhook_status_newer_than_the_sync_is_kept() {
    let graph = GraphServer::start(two_pages()).await;
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let t = now_ms();
    let webhook = |name: &str, event: &str| {
        json!({"event": event, "message_template_id": 1, "message_template_name": name,
               "message_template_language": "es_MX", "reason": "NONE"})
    };
    // Newer than what the sync observes: the template was re-approved after the sync's read
    // (entry.time has whole seconds, so half a second before the read may still be newer).
    registry
        .apply_status_update(
            &wabridge_tests::model(webhook("cart_reminder", "APPROVED")),
            t - 500,
        )
        .await
        .unwrap()
        .unwrap();
    // Older: paused an hour ago; the sync's APPROVED is news.
    registry
        .apply_status_update(
            &wabridge_tests::model(webhook("order_confirmation", "PAUSED")),
            t - 3_600_000,
        )
        .await
        .unwrap()
        .unwrap();

    let report = wabridge_graph::template_sync(graph.config())
        .sync_with_clock(&registry, || t)
        .await
        .unwrap();
    assert_eq!(report.templates, 4);
    assert_eq!(
        report.statuses_written, 3,
        "cart_reminder kept its newer status"
    );

    let cart = registry
        .get("cart_reminder", "es_MX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cart.status, Some(TemplateStatus::new("APPROVED")));
    assert_eq!(cart.status_at, t - 500);
    assert_eq!(
        cart.body_parameters,
        Some(1),
        "the definition is still learned"
    );
    let order = registry
        .get("order_confirmation", "es_MX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status, Some(TemplateStatus::new("APPROVED")));

    // A webhook older than the sync's observation arriving late changes nothing either.
    let applied = registry
        .apply_status_update(
            &wabridge_tests::model(webhook("order_confirmation", "PAUSED")),
            t - 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!applied);
    assert_eq!(
        registry
            .get("order_confirmation", "es_MX")
            .await
            .unwrap()
            .unwrap()
            .status,
        Some(TemplateStatus::new("APPROVED"))
    );
}
