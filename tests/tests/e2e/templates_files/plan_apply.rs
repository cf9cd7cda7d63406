//! The plan and apply cycle against the fake Meta: create everything, review, nothing left;
//! an edit, an edit refused by Meta's once-a-day rule (reported, never sent), a delete (only
//! when allowed, never while a queued send names the template), what needs attention
//! (rejected, paused, recategorised), and the hourly creation limit.

use serde_json::Value;
use wabridge_core::template_files::apply::{
    apply, ApplyOptions, ApplyReport, TemplateAdmin, TemplateHistory,
};
use wabridge_core::template_files::meta::create_body;
use wabridge_core::template_files::plan::{plan, Action, AppliedChange, Concern, Plan};

use super::*;
use wabridge_core::sends::template_sync::RemoteTemplate;
use wabridge_core::templates::TemplateStatus;

const NOW: i64 = 1_780_000_000_000;

async fn plan_now(
    files: &Files,
    admin: &GraphTemplateAdmin,
    h: &SqliteTemplateHistory,
    now: i64,
) -> Plan {
    let remote = admin.list().await.unwrap();
    let applied = h.history(None, 0).await.unwrap();
    plan(&files.locals(), &remote, &applied, now)
}

/// Applies `p` at `now`, as `ci:github`.
async fn apply_now(
    p: &Plan,
    files: &Files,
    admin: &GraphTemplateAdmin,
    h: &SqliteTemplateHistory,
    now: i64,
    allow_delete: bool,
) -> ApplyReport {
    apply(
        p,
        &files.locals(),
        &files.samples,
        admin,
        h,
        &options(now, allow_delete),
    )
    .await
    .unwrap()
}

fn options(now: i64, allow_delete: bool) -> ApplyOptions {
    ApplyOptions {
        allow_delete,
        applied_by: "ci:github".into(),
        now_ms: now,
    }
}

fn posts(meta: &MetaTemplates) -> usize {
    meta.requests().iter().filter(|r| r.method != "GET").count()
}

#[tokio::test]
async fn create_review_edit_delete_and_the_plan_comes_back_clean() {
    let meta = MetaTemplates::start().await;
    let admin = admin(&meta.url);
    let (_d, _db, h) = history();
    let dir = example_folder();
    let files = Files::read(dir.path());

    // Everything is new: three files, six languages.
    let p = plan_now(&files, &admin, &h, NOW).await;
    assert_eq!(
        p.count(|a| matches!(a, Action::Create)),
        6,
        "{}",
        p.render()
    );
    let report = apply_now(&p, &files, &admin, &h, NOW, false).await;
    assert!(
        report.failed.is_empty() && report.skipped.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.applied.len(), 6);

    // Meta holds exactly what the files say; the image sample went through the upload API.
    let stored = meta.templates();
    assert_eq!(stored.len(), 6);
    let png = std::fs::read(dir.path().join("media/oferta_fin_de_ano.png")).unwrap();
    assert_eq!(meta.uploaded(), vec![png]);
    for (_, t, _) in &files.files {
        for language in t.languages.keys() {
            let s = stored
                .iter()
                .find(|s| s.name == t.name && &s.language == language)
                .unwrap();
            let mut expected = create_body(t, language, None)["components"].clone();
            let mut got = Value::Array(s.components.clone());
            if let Some(h) = got.pointer_mut("/0/example/header_handle") {
                assert!(h[0].as_str().unwrap().starts_with("4::"), "{h}");
                *h = Value::Null;
                expected[0]["example"] = serde_json::json!({"header_handle": null});
            }
            assert_eq!(got, expected, "{} [{language}]", t.name);
            assert_eq!(s.category, t.category);
        }
    }
    // The history names each change with Meta's id, who applied it and the content hash.
    let recorded = h.history(Some("pedido_enviado"), 0).await.unwrap();
    assert_eq!(recorded.len(), 3);
    for r in &recorded {
        assert_eq!(r.action, "create");
        assert_eq!(r.applied_by, "ci:github");
        let id = r.template_id.as_deref().unwrap();
        assert!(stored
            .iter()
            .any(|s| s.id == id && s.language == r.language));
        assert_eq!(r.content_hash.len(), 64);
    }

    // Before review: nothing to change, six awaiting Meta (not clean: a release waits).
    let p = plan_now(&files, &admin, &h, NOW + 1000).await;
    assert!(p.changes.is_empty(), "{}", p.render());
    assert_eq!(p.attention.len(), 6);
    assert!(p
        .attention
        .iter()
        .all(|a| a.concern == Concern::AwaitingReview));
    // Meta approves: clean, and a second apply sends nothing.
    meta.review(|_| false);
    let p = plan_now(&files, &admin, &h, NOW + 2000).await;
    assert!(p.is_clean(), "{}", p.render());
    let before = posts(&meta);
    let report = apply_now(&p, &files, &admin, &h, NOW + 2000, false).await;
    assert!(report.applied.is_empty());
    assert_eq!(posts(&meta), before);

    // An edit of one language's body: planned as exactly that, applied, back in review.
    let file = dir.path().join("pedido_enviado.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "Olá {{first_name}}, seu pedido",
            "Oi {{first_name}}, seu pedido",
        ),
    )
    .unwrap();
    let files = Files::read(dir.path());
    let p = plan_now(&files, &admin, &h, NOW + 3000).await;
    assert_eq!(p.changes.len(), 1, "{}", p.render());
    assert_eq!(p.changes[0].language, "pt_BR");
    assert_eq!(
        p.changes[0].action,
        Action::Edit {
            fields: vec!["body.text".into()]
        }
    );
    let report = apply_now(&p, &files, &admin, &h, NOW + 3000, false).await;
    assert_eq!(report.applied.len(), 1, "{report:?}");
    let pt = meta
        .templates()
        .into_iter()
        .find(|s| s.name == "pedido_enviado" && s.language == "pt_BR")
        .unwrap();
    assert_eq!(pt.status, "PENDING");
    assert!(pt.components[1]["text"]
        .as_str()
        .unwrap()
        .starts_with("Oi "));
    meta.review(|_| false);

    // A second edit the same day: reported by the plan, never sent.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("Oi {{first_name}}", "Olá, {{first_name}}"),
    )
    .unwrap();
    let files = Files::read(dir.path());
    let p = plan_now(&files, &admin, &h, NOW + 4000).await;
    assert!(p.changes.is_empty(), "{}", p.render());
    assert_eq!(p.attention[0].concern, Concern::EditRefused);
    assert!(
        p.render().contains("edited once in 24 hours"),
        "{}",
        p.render()
    );
    let before = posts(&meta);
    apply_now(&p, &files, &admin, &h, NOW + 4000, false).await;
    assert_eq!(posts(&meta), before, "nothing sent");
    // A day later the plan proposes it.
    let p = plan_now(&files, &admin, &h, NOW + 3000 + 86_400_000 + 1).await;
    assert_eq!(p.changes.len(), 1, "{}", p.render());

    // A language dropped from a file: a delete, only with --allow-delete.
    let codigo = dir.path().join("codigo_acceso.toml");
    let text = std::fs::read_to_string(&codigo).unwrap();
    let cut = text.find("[languages.pt_BR]").unwrap();
    std::fs::write(&codigo, &text[..cut]).unwrap();
    let files = Files::read(dir.path());
    let later = NOW + 3 * 86_400_000;
    let p = plan_now(&files, &admin, &h, later).await;
    let deletes: Vec<_> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    assert_eq!(deletes.len(), 1, "{}", p.render());
    assert_eq!(
        (deletes[0].name.as_str(), deletes[0].language.as_str()),
        ("codigo_acceso", "pt_BR")
    );
    let report = apply_now(&p, &files, &admin, &h, later, false).await;
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].reason.contains("--allow-delete"));
    assert_eq!(
        meta.templates()
            .iter()
            .filter(|t| t.name == "codigo_acceso")
            .count(),
        2
    );
    let report = apply_now(&p, &files, &admin, &h, later, true).await;
    assert!(
        report
            .applied
            .iter()
            .any(|a| a.action == "delete" && a.language == "pt_BR"),
        "{report:?}"
    );
    let left: Vec<String> = meta
        .templates()
        .iter()
        .filter(|t| t.name == "codigo_acceso")
        .map(|t| t.language.clone())
        .collect();
    assert_eq!(left, ["es_MX"], "one language deleted, the other kept");

    // The requests as Meta documents them: the bearer token on every call but the upload
    // itself (`OAuth`), creates posting JSON to the WABA's edge, one language per delete.
    for r in meta.requests() {
        let auth = r.authorization.as_deref().unwrap_or("");
        if r.path.contains("/upload:") {
            assert_eq!(auth, format!("OAuth {TOKEN}"), "{r:?}");
        } else {
            assert_eq!(auth, format!("Bearer {TOKEN}"), "{}", r.path);
        }
        if r.method == "POST" && r.path.ends_with("/message_templates") {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert!(
                body["name"].is_string() && body["components"].is_array(),
                "{body}"
            );
        }
        if r.method == "DELETE" {
            assert!(
                r.query.contains("name=codigo_acceso") && r.query.contains("hsm_id="),
                "{}",
                r.query
            );
        }
    }
}

#[tokio::test]
async fn what_needs_attention_and_a_queued_send_blocks_its_delete() {
    let meta = MetaTemplates::start().await;
    let admin = admin(&meta.url);
    let (_d, db, h) = history();
    let dir = example_folder();
    let files = Files::read(dir.path());
    let p = plan_now(&files, &admin, &h, NOW).await;
    apply_now(&p, &files, &admin, &h, NOW, false).await;
    // Meta rejects the offer, then pauses and recategorises others.
    meta.review(|t| t.name == "oferta_fin_de_ano");
    meta.with("codigo_acceso", "pt_BR", |t| t.status = "PAUSED".into());
    meta.with("pedido_enviado", "es_AR", |t| {
        t.category = "MARKETING".into()
    });
    let p = plan_now(&files, &admin, &h, NOW + 1000).await;
    let concerns: Vec<(String, String, Concern)> = p
        .attention
        .iter()
        .map(|a| (a.name.clone(), a.language.clone(), a.concern))
        .collect();
    assert_eq!(
        concerns,
        [
            ("codigo_acceso".into(), "pt_BR".into(), Concern::Paused),
            (
                "oferta_fin_de_ano".into(),
                "es_MX".into(),
                Concern::Rejected
            ),
            (
                "pedido_enviado".into(),
                "es_AR".into(),
                Concern::Recategorised
            ),
        ]
    );
    // The sync reads the same into the registry: Meta's reason and quality per language.
    let registry = wabridge_core::templates::TemplateRegistry::new(std::sync::Arc::new(
        wabridge_sqlite::SqliteTemplates::new(db.clone()),
    ));
    wabridge_graph::template_sync(config(&meta.url))
        .sync(&registry)
        .await
        .unwrap();
    let offer = registry
        .get("oferta_fin_de_ano", "es_MX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.status.unwrap().as_str(), "REJECTED");
    assert_eq!(offer.reason.as_deref(), Some("INVALID_FORMAT"));
    assert_eq!(offer.quality.as_deref(), Some("UNKNOWN"));
    let rendered = p.render();
    assert!(
        rendered.contains("rejected by Meta (INVALID_FORMAT)"),
        "{rendered}"
    );
    assert!(
        rendered.contains("the file says UTILITY, Meta says MARKETING"),
        "{rendered}"
    );
    assert!(p.changes.is_empty());

    // A template that only Meta has, named by a queued send: the delete waits.
    meta.put(Stored {
        id: "1999".into(),
        name: "aviso_viejo".into(),
        language: "es_MX".into(),
        category: "UTILITY".into(),
        status: "APPROVED".into(),
        parameter_format: None,
        components: vec![serde_json::json!({"type": "BODY", "text": "Aviso"})],
        reason: None,
        quality: "GREEN".into(),
        edited_at: None,
    });
    let sends = wabridge_sqlite::SqliteEngine::new(db.clone())
        .sends(wabridge_tests::admin_keys("k-0123456789abcdef"));
    sends
        .policy
        .templates
        .implicit()
        .apply_synced(
            &RemoteTemplate {
                status: Some(TemplateStatus::new("APPROVED")),
                category: Some("UTILITY".into()),
                body_parameters: 0,
                ..RemoteTemplate::named("aviso_viejo", "es_MX")
            },
            1,
        )
        .await
        .unwrap();
    sends
        .submit(
            br#"{"to": "+5215512345678", "template": "aviso_viejo", "language": "es_MX"}"#,
            None,
        )
        .await
        .unwrap();
    let p = plan_now(&files, &admin, &h, NOW + 2000).await;
    assert!(p
        .changes
        .iter()
        .any(|c| c.name == "aviso_viejo" && c.action == Action::Delete));
    let report = apply_now(&p, &files, &admin, &h, NOW + 2000, true).await;
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.name == "aviso_viejo" && s.reason.contains("1 queued send")),
        "{report:?}"
    );
    assert!(meta.templates().iter().any(|t| t.name == "aviso_viejo"));
}

#[tokio::test]
async fn creations_keep_under_metas_hourly_limit() {
    let meta = MetaTemplates::start().await;
    let admin = admin(&meta.url);
    let (_d, _db, h) = history();
    // 98 creations in the last hour: two more may go now, the rest wait.
    for i in 0..98 {
        h.record(&AppliedChange {
            name: format!("t{i}"),
            language: "es_MX".into(),
            action: "create".into(),
            template_id: Some(i.to_string()),
            content_hash: "h".into(),
            applied_by: "cli".into(),
            applied_at_ms: NOW - 30 * 60 * 1000 + i,
        })
        .await
        .unwrap();
    }
    let dir = example_folder();
    let files = Files::read(dir.path());
    let p = plan_now(&files, &admin, &h, NOW).await;
    let report = apply_now(&p, &files, &admin, &h, NOW, false).await;
    assert_eq!(report.applied.len(), 2, "{report:?}");
    assert_eq!(report.skipped.len(), 4);
    assert!(
        report.skipped[0]
            .reason
            .contains("100 creations per WABA per hour"),
        "{report:?}"
    );
    assert_eq!(meta.templates().len(), 2);
}

/// Without the app id, a media header's sample cannot be uploaded: that template fails with a
/// message naming the setting, the others are created.
#[tokio::test]
async fn a_media_sample_needs_the_app_id() {
    let meta = MetaTemplates::start().await;
    let admin = GraphTemplateAdmin::new(config(&meta.url), None);
    let (_d, _db, h) = history();
    let dir = example_folder();
    let files = Files::read(dir.path());
    let p = plan_now(&files, &admin, &h, NOW).await;
    let report = apply_now(&p, &files, &admin, &h, NOW, false).await;
    assert_eq!(report.applied.len(), 5, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].name, "oferta_fin_de_ano");
    assert!(
        report.failed[0].reason.contains("WHATSAPP_APP_ID"),
        "{report:?}"
    );
    assert!(meta.uploaded().is_empty());
}
