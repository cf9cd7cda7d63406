//! Through the binary: `wabridge templates sync` / `templates list --json`, and the sync
//! `wabridge serve` runs at start.

use std::time::{Duration, Instant};

use serde_json::Value;
use wabridge_core::config;
use wabridge_tests::gateway::{cli, cli_ok, json_lines, Gateway};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_sync_and_list_through_the_binary() {
    let graph = GraphServer::start(two_pages()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let url = graph.url.clone();
    let (report, listed, table, missing) = tokio::task::spawn_blocking(move || {
        let env = [
            (config::WHATSAPP_ACCESS_TOKEN, TOKEN),
            (config::WHATSAPP_BUSINESS_ACCOUNT_ID, WABA),
            (config::WHATSAPP_API_URL, url.as_str()),
        ];
        let report = cli_ok(&data, &["templates", "sync"], &env);
        let listed = cli_ok(&data, &["templates", "list", "--json"], &[]);
        let table = cli_ok(&data, &["templates", "list"], &[]);
        let missing = cli(
            &data,
            &["templates", "sync"],
            &[(config::WHATSAPP_ACCESS_TOKEN, TOKEN)],
        );
        (report, listed, table, missing)
    })
    .await
    .unwrap();

    let report: Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(report["templates"], 4);
    assert_eq!(report["pages"], 2);
    let listed = json_lines(&listed);
    assert_eq!(listed.len(), 4, "{listed:?}");
    let find = |name: &str| {
        listed
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let order = find("order_confirmation");
    assert_eq!(order["language"], "es_MX");
    assert_eq!(order["status"], "APPROVED");
    assert_eq!(order["category"], "UTILITY");
    assert_eq!(order["body_parameters"], 3);
    let cart = find("cart_reminder");
    assert_eq!(cart["status"], "PAUSED");
    assert_eq!(cart["body_parameters"], 1);
    assert_eq!(find("promo_named")["body_parameters"], 3);
    assert!(
        table.lines().any(|l| l.starts_with("cart_reminder")
            && l.contains("PAUSED")
            && l.contains("MARKETING")),
        "{table}"
    );

    // Without a WABA id the sync refuses to run and says which variable is missing.
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(config::WHATSAPP_BUSINESS_ACCOUNT_ID),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_the_registry_when_it_starts() {
    let graph = GraphServer::start(two_pages()).await;
    let url = graph.url.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let gw = Gateway::start(&[
            (config::WHATSAPP_ACCESS_TOKEN, TOKEN),
            (config::WHATSAPP_BUSINESS_ACCOUNT_ID, WABA),
            (config::WHATSAPP_API_URL, url.as_str()),
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let listed = json_lines(&gw.cli_ok(&["templates", "list", "--json"]));
            if listed.len() == 4 || Instant::now() > deadline {
                break listed;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(listed.len(), 4, "serve did not sync at start: {listed:?}");
    assert!(graph.seen().len() >= 2);
}
