//! The real `wabridge` binary for end-to-end tests: built once per test process, `serve` spawned
//! on port 0 over a data dir, the CLI run against the same dir.
//!
//! ```no_run
//! # async fn demo() {
//! use wabridge_tests::gateway::Gateway;
//! let gw = Gateway::start(&[("WHATSAPP_APP_SECRET", "s3cret")]);
//! let (status, _body) = gw.post_signed(br#"{"object":"whatsapp_business_account","entry":[]}"#).await;
//! assert_eq!(status, 200);
//! gw.wait_drained();
//! let records = gw.records(); // `wabridge records --json`, one JSON value per line
//! # }
//! ```
//!
//! Every process started here gets a clean environment as far as wabridge is concerned: each
//! name of `wabridge_core::config` inherited from the test runner is removed, then the `env`
//! the test passes is applied. Its stderr is forwarded through `eprintln!`, so libtest shows it
//! only when the test fails. The server is killed when the [`Gateway`] is dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use wabridge_core::config;
use wabridge_core::signature::{sign, AppSecret};

/// The `wabridge` executable of this test run, found once per test process.
///
/// Asks cargo for the workspace's test build (`cargo test --workspace --all-targets --no-run`,
/// the same build the test command has just done, so normally a no-op check): cargo rebuilds
/// anything stale, so tests never run an old binary, and the binary shares the test build's
/// feature set. A plain `cargo build -p wabridge` resolves features differently and rebuilt
/// most dependencies a second time (minutes on a clean machine). The real executable is part
/// of that build because `functions/local` has integration tests of its own.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(crate::workspace_root())
            .args([
                "test",
                "--workspace",
                "--all-targets",
                "--no-run",
                "--message-format=json",
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo test --no-run");
        assert!(
            out.status.success(),
            "cargo test --workspace --no-run failed"
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| {
                m["reason"] == "compiler-artifact"
                    && m["target"]["name"] == "wabridge"
                    && m["target"]["kind"][0] == "bin"
                    && m["profile"]["test"] == false
            })
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the wabridge executable")
    })
}

/// The configuration names a test runner's environment could leak into the binary.
const CLEARED: &[&str] = &[
    config::WHATSAPP_APP_SECRET,
    config::WHATSAPP_VERIFY_TOKEN,
    config::WHATSAPP_ACCESS_TOKEN,
    config::WHATSAPP_PHONE_NUMBER_ID,
    config::WHATSAPP_API_URL,
    config::WHATSAPP_API_VERSION,
    config::WABRIDGE_API_KEY,
    config::WABRIDGE_MAX_BODY_BYTES,
    config::WABRIDGE_DATA,
    config::CRM_KIND,
    config::CRM_WEBHOOK_URL,
    config::CRM_WEBHOOK_SECRET,
    config::HUBSPOT_TOKEN,
    config::HUBSPOT_API_URL,
    config::CRM_TIMEOUT_MS,
    config::WABRIDGE_MAPPING,
    config::WABRIDGE_NUMBERS,
    config::WABRIDGE_TABLE,
    config::EVENTS_QUEUE_URL,
    config::EVENTS_DLQ_URL,
    config::SENDS_QUEUE_URL,
    config::SENDS_DLQ_URL,
    config::WABRIDGE_SECRETS_ARN,
    config::WABRIDGE_ATTRIBUTION,
    config::META_DATASET_ID,
    config::WHATSAPP_BUSINESS_ACCOUNT_ID,
    config::META_CONVERSIONS_API_URL,
    config::WABRIDGE_SENDS_PER_SECOND,
    config::WABRIDGE_SENDER_INSTANCES,
    config::WABRIDGE_LEDGER_RETENTION_DAYS,
    config::WABRIDGE_RETRY_HORIZON,
    config::WABRIDGE_SEND_RETRY_HORIZON,
];

/// A `wabridge` command with the cleared environment plus `env`.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    for name in CLEARED {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `wabridge ARGS` to completion with AWS pointed at `endpoint` (moto) plus `env`, as an
/// operator runs the CLI against a deployment.
pub fn against_aws(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", crate::REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    all.extend_from_slice(env);
    command(&all)
        .env_remove("AWS_PROFILE")
        .args(args)
        .output()
        .expect("run wabridge")
}

/// Runs `wabridge ARGS --data DATA` to completion (whatever its exit status).
pub fn cli(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(env)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run wabridge")
}

/// [`cli`] that must succeed; returns its stdout. Panics with its stderr otherwise.
pub fn cli_ok(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = cli(data, args, env);
    assert!(
        out.status.success(),
        "wabridge {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// Parses output holding one JSON object per line.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {l:?}: {e}"))
        })
        .collect()
}

/// A running `wabridge serve --addr 127.0.0.1:0 --data DIR`; killed when dropped.
pub struct Gateway {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub url: String,
    /// The data dir (SQLite file `wabridge.db`, `secrets.json`).
    pub data_dir: PathBuf,
    /// Lines the server printed before its address (the dev secrets on a first start).
    pub startup_lines: Vec<String>,
    env: Vec<(String, String)>,
    stdout: mpsc::Receiver<String>,
    /// Every line the server wrote to stderr (its logs), as well as forwarded to the test's.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Starts the gateway over a fresh temporary data dir (removed on drop).
    pub fn start(env: &[(&str, &str)]) -> Gateway {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut gw = Gateway::start_in(tmp.path(), env);
        gw._tmp = Some(tmp);
        gw
    }

    /// Starts the gateway over `data` (created if missing; kept after drop, e.g. for a restart).
    pub fn start_in(data: &Path, env: &[(&str, &str)]) -> Gateway {
        let mut child = command(env)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wabridge serve");
        let stderr = forward_stderr(child.stderr.take().expect("stderr piped"));
        // Keep reading stdout for the server's whole life: a closed pipe would fail its prints.
        let out = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut before = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => match line.strip_prefix("listening on ") {
                    Some(url) => break url.trim().trim_end_matches('/').to_string(),
                    None => before.push(line),
                },
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("wabridge serve did not print its address; stdout: {before:?}")
                }
            }
        };
        Gateway {
            child,
            url,
            data_dir: data.to_path_buf(),
            startup_lines: before,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdout: rx,
            stderr,
            _tmp: None,
        }
    }

    /// The server's log lines so far (its stderr).
    pub fn logs(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `{url}/webhook`.
    pub fn webhook(&self) -> String {
        format!("{}/webhook", self.url)
    }

    /// The environment the gateway was started with, plus `extra`.
    fn env_with<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        env
    }

    /// Runs the CLI against this gateway's data dir with the environment it was started with
    /// plus `extra_env`.
    pub fn cli(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        cli(&self.data_dir, args, &self.env_with(extra_env))
    }

    /// [`Gateway::cli`] that must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        cli_ok(&self.data_dir, args, &self.env_with(&[]))
    }

    /// `wabridge records --json`: every local CRM record, one JSON object each.
    pub fn records(&self) -> Vec<Value> {
        json_lines(&self.cli_ok(&["records", "--json"]))
    }

    /// `wabridge stats` as JSON.
    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.cli_ok(&["stats"])).expect("stats prints JSON")
    }

    /// Waits (up to `timeout`) until the events queue has nothing visible or in flight.
    pub fn wait_drained_for(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats();
            let q = &s["events_queue"];
            if q["visible"] == 0 && q["hidden"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "events queue never drained: {s}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// [`Gateway::wait_drained_for`] 20 seconds.
    pub fn wait_drained(&self) {
        self.wait_drained_for(Duration::from_secs(20))
    }

    /// The app secret the server verifies with: `WHATSAPP_APP_SECRET` from the start env, else
    /// the generated dev secret in `DATA/secrets.json`.
    pub fn app_secret(&self) -> String {
        if let Some((_, v)) = self
            .env
            .iter()
            .find(|(k, v)| k == config::WHATSAPP_APP_SECRET && !v.is_empty())
        {
            return v.clone();
        }
        let file = self.data_dir.join("secrets.json");
        let v: Value = serde_json::from_slice(
            &std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display())),
        )
        .expect("secrets.json is JSON");
        v["app_secret"]
            .as_str()
            .expect("secrets.json has app_secret")
            .to_string()
    }

    /// `X-Hub-Signature-256` of `body` under [`Gateway::app_secret`].
    pub fn signature(&self, body: &[u8]) -> String {
        sign(
            &AppSecret::new(self.app_secret()).expect("non-empty app secret"),
            body,
        )
    }

    /// POSTs `body` to `/webhook` signed like Meta does; returns the status and the body (JSON,
    /// or the text as a JSON string).
    pub async fn post_signed(&self, body: &[u8]) -> (u16, Value) {
        post_signed_with(&self.webhook(), &self.app_secret(), body).await
    }

    /// Stops the server with SIGTERM; returns whether it exited 0 after printing `stopped`.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for wabridge") {
                let saw_stopped = self.stdout.try_iter().any(|l| l == "stopped");
                return status.success() && saw_stopped;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP client the tests call the gateway with (20 s timeout).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client")
}

/// POSTs `body` to `url` with `X-Hub-Signature-256` under `secret`.
pub async fn post_signed_with(url: &str, secret: &str, body: &[u8]) -> (u16, Value) {
    try_post_signed(url, secret, body)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// [`post_signed_with`] that returns the transport error (a server killed mid-request) instead
/// of panicking.
pub async fn try_post_signed(
    url: &str,
    secret: &str,
    body: &[u8],
) -> Result<(u16, Value), reqwest::Error> {
    let signature = sign(&AppSecret::new(secret).expect("non-empty secret"), body);
    let r = http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body.to_vec())
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Copies a child's stderr through `eprintln!` (captured by libtest, shown when a test fails).
fn forward_stderr(
    stderr: impl Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = kept.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[wabridge] {line}");
            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    kept
}
