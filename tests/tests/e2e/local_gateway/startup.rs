//! `wabridge serve` refusing to start: every bad setting, a data dir already in use.

use std::path::Path;
use std::time::{Duration, Instant};

use wabridge_tests::gateway;

use super::*;

/// Runs `wabridge serve` over `data`, which must exit by itself (within 30 s): its status and
/// stderr.
fn serve_until_it_exits(data: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = gateway::command(env)
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("serve kept running with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// A retention that is not a whole number of days stops `serve` at start, naming the variable,
/// rather than purging on a guess.
#[test]
fn serve_refuses_a_bad_ledger_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (status, err) =
        serve_until_it_exits(dir.path(), &[("WABRIDGE_LEDGER_RETENTION_DAYS", "0")]);
    assert!(!status.success());
    assert!(err.contains("WABRIDGE_LEDGER_RETENTION_DAYS"), "{err}");
}

/// A second `serve` on a data dir in use stops at start with a message saying why: the inbox
/// keeps its recent dedupe keys in memory, so two would not see each other's keys. Once the
/// first is gone, the data dir serves again and still knows what the first accepted.
#[tokio::test]
async fn a_second_serve_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let body = batch("L");
    let (status, v) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200, "{v}");
    let (status, err) = serve_until_it_exits(dir.path(), &[]);
    assert!(!status.success());
    assert!(err.contains("another wabridge process"), "{err}");
    assert!(
        err.contains("one `wabridge serve` per data directory"),
        "{err}"
    );

    drop(server);
    let server = start(dir.path());
    let (status, v) = post_signed(&server.webhook(), &body).await;
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(v["duplicates"].as_u64(), Some(4), "{v}");
}

/// Every numeric, duration, enumerated, URL or file setting that does not parse stops `serve`
/// at start, naming the variable (issue 19: `WABRIDGE_SENDS_PER_SECOND=abc` used to run at
/// 80/s). `extra` turns on the part that reads the setting (a CRM kind, the Graph API client).
#[test]
fn every_bad_setting_stops_serve_naming_the_variable() {
    const GRAPH: &[(&str, &str)] = &[
        ("WHATSAPP_ACCESS_TOKEN", "EAAGtest"),
        ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
    ];
    const WEBHOOK: &[(&str, &str)] = &[
        ("CRM_KIND", "webhook"),
        ("CRM_WEBHOOK_URL", "http://127.0.0.1:9/crm"),
        ("CRM_WEBHOOK_SECRET", "whsec_c2V0dGluZ3MtdGVzdA=="),
    ];
    type Env = &'static [(&'static str, &'static str)];
    let cases: &[(&str, &str, Env)] = &[
        ("WABRIDGE_MAX_BODY_BYTES", "1MB", &[]),
        ("WABRIDGE_SYNC_CONCURRENCY", "0", &[]),
        ("WABRIDGE_SENDS_PER_SECOND", "abc", &[]),
        ("WABRIDGE_SENDER_INSTANCES", "two", &[]),
        ("WABRIDGE_LEDGER_RETENTION_DAYS", "forever", &[]),
        ("WABRIDGE_RETRY_HORIZON", "7", &[]),
        ("WABRIDGE_SEND_RETRY_HORIZON", "4d", &[]),
        ("CRM_KIND", "salesforce-classic", &[]),
        ("CRM_TIMEOUT_MS", "fast", WEBHOOK),
        ("CRM_WEBHOOK_URL", "not a url", WEBHOOK),
        ("WHATSAPP_API_URL", "graph.facebook.com", GRAPH),
        ("WHATSAPP_API_VERSION", "23", GRAPH),
        ("WABRIDGE_MAPPING", "/nonexistent/mapping.toml", &[]),
        ("WABRIDGE_ATTRIBUTION", "/nonexistent/attribution.toml", &[]),
        ("META_CONVERSIONS_API_URL", "nope", &[]),
        ("WABRIDGE_CONVERSATION_IDLE_HOURS", "1d", &[]),
        ("WABRIDGE_CONSENT_SCOPE", "per-number", &[]),
        ("WABRIDGE_FIRST_RESPONSE_SLA_MINUTES", "0", &[]),
        ("WABRIDGE_FIRST_RESPONSE_SLA_MINUTES", "15m", &[]),
        ("WABRIDGE_SWEEP_INTERVAL", "forever", &[]),
    ];
    for (name, value, extra) in cases {
        let dir = tempfile::tempdir().unwrap();
        // The case's own value wins over the same name in `extra`.
        let mut env: Vec<(&str, &str)> = extra.iter().filter(|(n, _)| n != name).copied().collect();
        env.push((name, value));
        let (status, err) = serve_until_it_exits(dir.path(), &env);
        assert!(!status.success(), "{name}={value}: serve started");
        assert!(
            err.contains(name),
            "{name}={value}: the error does not name it: {err}"
        );
    }
}
