//! `templates apply | plan | history --table T` against a deployment (moto's DynamoDB and
//! Secrets Manager through the real AWS SDK): the token comes from the stack's secret
//! (`WABRIDGE_SECRETS_ARN`, not the environment), the history and the audit line go to its
//! table, and a queued send in the table blocks the delete of its template's name.

use wabridge_aws::dynamo::audit::DynamoAudit;
use wabridge_aws::dynamo::sends::DynamoSends;
use wabridge_aws::dynamo::template_history::DynamoTemplateHistory;
use wabridge_core::audit::AuditLog;
use wabridge_core::config;
use wabridge_core::sends::store::{SendRecord, SendState, SendStore};
use wabridge_core::template_files::apply::TemplateHistory;
use wabridge_tests::gateway::{cli, json_lines};
use wabridge_tests::{create_table, require_aws, unique_name};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_plan_against_a_deployment() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("templates")).await;
    let arn = aws
        .secrets
        .create_secret()
        .name(unique_name("wabridge-templates"))
        .secret_string(serde_json::json!({ config::WHATSAPP_ACCESS_TOKEN: TOKEN }).to_string())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let meta = MetaTemplates::start().await;
    let dir = example_folder();
    let data = tempfile::tempdir().unwrap();
    let env = vec![
        (config::WABRIDGE_SECRETS_ARN.to_string(), arn),
        (
            config::WHATSAPP_BUSINESS_ACCOUNT_ID.to_string(),
            WABA.to_string(),
        ),
        (config::WHATSAPP_API_URL.to_string(), meta.url.clone()),
        (config::WHATSAPP_APP_ID.to_string(), APP.to_string()),
    ];
    let run = |args: Vec<String>| {
        let (data, env) = (data.path().to_path_buf(), env.clone());
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&data, &args, &env)
        })
    };
    let args = |a: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--dir".into(),
            dir.path().display().to_string(),
            "--table".into(),
            table.clone(),
        ]);
        v
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let out = run(args(&["templates", "apply", "--by", "ci:deploy"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(meta.templates().len(), 6);
    // The token came from the secret: every request carried it.
    assert!(meta
        .requests()
        .iter()
        .filter(|r| !r.path.contains("upload:"))
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))));

    // The history is in the table, per WABA; nothing went to the local store.
    let history = DynamoTemplateHistory::new(aws.dynamo.clone(), table.clone(), WABA);
    let all = history.history(None, 0).await.unwrap();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all
        .iter()
        .all(|c| c.action == "create" && c.applied_by == "ci:deploy" && c.template_id.is_some()));
    assert!(!data.path().join("wabridge.db").exists());
    let out = run(vec![
        "templates".into(),
        "history".into(),
        "codigo_acceso".into(),
        "--json".into(),
        "--table".into(),
        table.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&out.stdout)).len(),
        2,
        "{}",
        text(&out)
    );
    let audit = DynamoAudit::new(aws.dynamo.clone(), table.clone())
        .since(0, 100)
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|l| l.action == "template_apply" && l.subject.as_deref() == Some("6 changes")),
        "{audit:?}"
    );

    // Reviewed: the plan against the deployment is clean.
    meta.review(|_| false);
    let out = run(args(&["templates", "plan"])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // A send still queued in the table names a template: its delete waits.
    let sends = DynamoSends::new(aws.dynamo.clone(), table.clone());
    sends
        .create(&SendRecord {
            id: "snd_tpl1".into(),
            idempotency_key: None,
            request_hash: "h".into(),
            request: serde_json::json!({"to": "+5215512345678", "contact": "phone:5215512345678",
                "type": "template", "name": "codigo_acceso", "language": "es_MX"}),
            contact: "phone:5215512345678".into(),
            state: SendState::Queued,
            error: None,
            wamid: None,
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    assert_eq!(history.queued_sends("codigo_acceso").await.unwrap(), 1);
    assert_eq!(history.queued_sends("pedido_enviado").await.unwrap(), 0);
    std::fs::remove_file(dir.path().join("codigo_acceso.toml")).unwrap();
    let out = run(args(&["templates", "apply", "--allow-delete"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // The name is in use: neither language goes while the send waits.
    for language in ["es_MX", "pt_BR"] {
        let line = format!("skipped delete codigo_acceso [{language}]: 1 queued send(s)");
        assert!(text(&out).contains(&line), "{}", text(&out));
    }
    let left = meta
        .templates()
        .iter()
        .filter(|t| t.name == "codigo_acceso")
        .count();
    assert_eq!(left, 2);
}
