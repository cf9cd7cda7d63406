//! Parsing, counting, paging: every page read, the BODY's distinct placeholders counted, the
//! request as Meta documents it; and a large WABA read in full.

use std::time::Instant;

use serde_json::{json, Value};
use wabridge_core::templates::TemplateStatus;

use super::*;

#[tokio::test]
async fn sync_reads_every_page_and_counts_distinct_body_parameters() {
    let graph = GraphServer::start(two_pages()).await;
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let report = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .expect("sync succeeds");
    assert_eq!(report.pages, 2);
    assert_eq!(report.templates, 4);
    assert_eq!(report.statuses_written, 4);
    assert_eq!(report.skipped, 1, "the item without a name is skipped");

    // What was asked: the WABA's template list, the fields we need, a page size, the second
    // page by the first page's `after` cursor; the token as a bearer; Meta's User-Agent form.
    let seen = graph.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.path, format!("/v23.0/{WABA}/message_templates"));
        let fields: Vec<&str> = s.param("fields").unwrap().split(',').collect();
        for f in [
            "name",
            "language",
            "status",
            "category",
            "components",
            "parameter_format",
        ] {
            assert!(fields.contains(&f), "fields {fields:?} lack {f}");
        }
        assert_eq!(s.param("limit"), Some("100"));
        assert_eq!(
            s.authorization.as_deref(),
            Some("Bearer EAAGtemplateSyncToken")
        );
        assert!(s.user_agent.as_deref().unwrap().starts_with("wabridge/"));
    }
    assert_eq!(seen[0].param("after"), None);
    assert_eq!(seen[1].param("after"), Some("QVFIUpage1"));

    let get = |name: &'static str, lang: &'static str| {
        let registry = registry.clone();
        async move { registry.get(name, lang).await.unwrap().unwrap() }
    };
    let order = get("order_confirmation", "es_MX").await;
    assert_eq!(
        order.body_parameters,
        Some(3),
        "{{1}} twice counts once; header and URL button placeholders are not body parameters"
    );
    assert_eq!(order.category.as_deref(), Some("UTILITY"));
    assert_eq!(order.status, Some(TemplateStatus::new("APPROVED")));
    let promo = get("promo_named", "pt_BR").await;
    assert_eq!(promo.body_parameters, Some(3), "NAMED: distinct names");
    assert_eq!(promo.category.as_deref(), Some("MARKETING"));
    let cart = get("cart_reminder", "es_MX").await;
    assert_eq!(cart.status, Some(TemplateStatus::new("PAUSED")));
    assert_eq!(cart.body_parameters, Some(1));
    let hello = get("hello_world", "en_US").await;
    assert_eq!(hello.body_parameters, Some(0));

    let listed: Vec<(String, String)> = registry
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.language))
        .collect();
    assert_eq!(
        listed,
        [
            ("cart_reminder", "es_MX"),
            ("hello_world", "en_US"),
            ("order_confirmation", "es_MX"),
            ("promo_named", "pt_BR"),
        ]
        .map(|(n, l)| (n.to_string(), l.to_string()))
    );
}

/// 20 full pages of 100 templates: every one recorded with its own count, in one sync.
#[tokio::test]
async fn a_large_waba_is_read_in_full() {
    const PAGES: u32 = 20;
    let graph = GraphServer::start(Arc::new(|after| {
        let page: u32 = after
            .and_then(|a| a.strip_prefix("p"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let data: Vec<Value> = (0..100)
            .map(|i| {
                let n = page * 100 + i;
                let params: Vec<String> = (1..=n % 5).map(|k| format!("{{{{{k}}}}}")).collect();
                json!({"name": format!("tpl_{n:05}"), "language": "es_MX", "status": "APPROVED",
                       "category": "UTILITY", "id": n.to_string(),
                       "components": [{"type": "BODY", "text": format!("Hola {}", params.join(" "))}]})
            })
            .collect();
        let mut body = json!({"data": data, "paging": {"cursors": {"after": format!("p{}", page + 1)}}});
        if page + 1 < PAGES {
            body["paging"]["next"] = json!("https://graph.facebook.com/next");
        }
        (200, body.to_string())
    }))
    .await;
    let (_dir, db) = temp_db();
    let registry = registry(&db);
    let started = Instant::now();
    let report = wabridge_graph::template_sync(graph.config())
        .sync(&registry)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "synced {} templates in {} pages in {elapsed:?}",
        report.templates, report.pages
    );
    assert_eq!(report.pages, PAGES as usize);
    assert_eq!(report.templates, (PAGES * 100) as usize);
    let all = registry.list().await.unwrap();
    assert_eq!(all.len(), (PAGES * 100) as usize);
    for t in &all {
        let n: u32 = t.name.trim_start_matches("tpl_").parse().unwrap();
        assert_eq!(t.body_parameters, Some(n % 5), "{}", t.name);
    }
}
