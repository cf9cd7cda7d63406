//! The `wabridge` executable itself, as cargo builds it for this test run. Having an integration
//! test here also makes `cargo test --workspace` build the real binary with the test run's
//! feature set, which the end-to-end tests (`wabridge-tests`) then reuse instead of building it
//! a second time.

use std::path::Path;
use std::process::{Command, Output};

use hmac::{KeyInit, Mac};

fn wabridge(args: &[&str], secret: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wabridge"));
    cmd.args(args).env_remove("WHATSAPP_APP_SECRET");
    if let Some(s) = secret {
        cmd.env("WHATSAPP_APP_SECRET", s);
    }
    cmd.output().expect("run wabridge")
}

/// Meta's header computed here with the hmac crate, independently of the binary's code.
fn expected_header(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!(
        "X-Hub-Signature-256: sha256={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

fn write(dir: &Path, name: &str, body: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn sign_prints_the_header_meta_would_send() {
    let dir = tempfile::tempdir().unwrap();
    let body = "{\"object\":\"whatsapp_business_account\",\"entry\":[],\"nota\":\"¿Tienen envío a Monterrey?\"}\n";
    let file = write(dir.path(), "p.json", body.as_bytes());
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    let out = wabridge(&["sign", &file, "--data", data], Some("s3cr3t-de-prueba"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.trim_end(),
        expected_header("s3cr3t-de-prueba", body.as_bytes())
    );

    // Another secret, another header: the secret really is the key.
    let other = wabridge(&["sign", &file, "--data", data], Some("outro-segredo"));
    assert_ne!(String::from_utf8(other.stdout).unwrap(), printed);
}

#[test]
fn sign_without_a_secret_or_file_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty-data");
    let data = data.to_str().unwrap();
    let file = write(dir.path(), "p.json", b"{}");

    // No env secret and no data dir yet: refuse instead of signing with some default.
    let out = wabridge(&["sign", &file, "--data", data], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WHATSAPP_APP_SECRET"), "{err}");
    assert!(out.stdout.is_empty());

    // The error names the file, then the operating system's reason on a `caused by:` line.
    let missing = dir.path().join("nope.json");
    let out = wabridge(
        &["sign", missing.to_str().unwrap(), "--data", data],
        Some("k"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some(format!("error: cannot read {}", missing.display()).as_str()),
        "{err}"
    );
    assert!(
        lines.next().is_some_and(|l| l.starts_with("caused by: ")),
        "{err}"
    );
}

/// A bad flag value stops the command with status 1 and a message naming the flag.
#[test]
fn bad_arguments_fail_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (args, flag) in [
        (
            vec!["report", "attribution", "--format", "xml", "--data", data],
            "--format",
        ),
        (
            vec!["report", "attribution", "--since", "soon", "--data", data],
            "--since",
        ),
        (
            vec![
                "send",
                "--template",
                "t",
                "--lang",
                "es",
                "--api-key",
                "k",
                "--data",
                data,
            ],
            "--to",
        ),
    ] {
        let out = wabridge(&args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(flag),
            "{args:?}: {err}"
        );
    }
}

/// Every command that only reads refuses a data dir without a database, naming the path, and
/// leaves nothing behind (an empty database would make a report of nothing look real).
#[test]
fn reading_commands_refuse_a_missing_database_and_create_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nowhere");
    let data_s = data.to_str().unwrap();
    for args in [
        vec!["records", "--data", data_s],
        vec!["templates", "list", "--data", data_s],
        vec!["report", "attribution", "--data", data_s],
        vec!["dead-letters", "list", "--data", data_s],
    ] {
        let out = wabridge(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no database at") && stderr.contains("wabridge.db"),
            "{args:?}: {stderr}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
}

/// A setting that does not parse stops `serve` at start, naming the variable, instead of
/// running with a default (`WABRIDGE_SENDS_PER_SECOND=abc` used to mean 80 a second).
#[test]
fn serve_refuses_to_start_on_a_setting_that_does_not_parse() {
    for (name, value) in [
        ("WABRIDGE_SENDS_PER_SECOND", "abc"),
        ("WABRIDGE_SYNC_CONCURRENCY", "0"),
        ("WABRIDGE_LEDGER_RETENTION_DAYS", "forever"),
        ("WABRIDGE_MAX_BODY_BYTES", "-1"),
        ("CRM_TIMEOUT_MS", "ten"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wabridge"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env(name, value)
            .env_remove("CRM_KIND")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run wabridge serve");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                child.kill().ok();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let status = status.unwrap_or_else(|| panic!("{name}={value}: serve kept running"));
        assert!(!status.success(), "{name}={value}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(value),
            "{name}={value}: {stderr}"
        );
    }
}
