//! Errors and bounds: Graph errors classified (retry later or terminal), and the sync bounded
//! in pages, page size and time; a failed sync records nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wabridge_core::sends::template_sync::SyncError;

use super::*;

#[tokio::test]
async fn graph_errors_are_classified_and_the_sync_is_bounded() {
    let (_dir, db) = temp_db();
    let registry = registry(&db);

    // 5xx: retry later.
    let graph = GraphServer::start(Arc::new(|_| (503, "{}".into()))).await;
    let e = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(
        matches!(e, SyncError::Graph(_)) && e.is_retryable(),
        "{e:?}"
    );

    // Meta's invalid-parameter error: terminal, with Meta's message.
    let graph = GraphServer::start(Arc::new(|_| {
        (
            400,
            json!({"error": {"message": "(#100) Tried accessing nonexisting field",
                "type": "OAuthException", "code": 100, "fbtrace_id": "A1"}})
            .to_string(),
        )
    }))
    .await;
    let e = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("nonexisting field"), "{e}");

    // An answer that never ends: stops after max_pages requests.
    let graph = GraphServer::start(Arc::new(|after| {
        let n: u32 = after
            .and_then(|a| a.strip_prefix("c"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (
            200,
            json!({"data": [], "paging": {"cursors": {"after": format!("c{}", n + 1)},
                "next": "https://graph.facebook.com/next"}})
            .to_string(),
        )
    }))
    .await;
    let mut config = graph.config();
    config.max_pages = 3;
    let e = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::TooManyPages(3)), "{e:?}");
    assert_eq!(graph.seen().len(), 3);

    // A cursor that does not move: stops at once instead of looping.
    let graph = GraphServer::start(Arc::new(|_| {
        (
            200,
            json!({"data": [], "paging": {"cursors": {"after": "same"}, "next": "x"}}).to_string(),
        )
    }))
    .await;
    let e = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Invalid(_)), "{e:?}");
    assert_eq!(graph.seen().len(), 2);

    // A page over the size limit is refused.
    let graph = GraphServer::start(Arc::new(|_| (200, page_one().to_string()))).await;
    let mut config = graph.config();
    config.max_page_bytes = 512;
    let e = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::TooLarge { limit: 512 }), "{e:?}");

    // No answer within the timeout: retry later.
    let graph = GraphServer::start_with_delay(two_pages(), Duration::from_secs(5)).await;
    let mut config = graph.config();
    config.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = wabridge_graph::template_sync(config)
        .sync(&registry)
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("timed out"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // None of the failures above recorded anything.
    assert!(registry.list().await.unwrap().is_empty());
}
