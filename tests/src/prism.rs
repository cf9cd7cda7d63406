//! Prism (npm `@stoplight/prism-cli`) mocking Meta's WhatsApp Cloud API from its OpenAPI spec,
//! so tests can check that every request the sender makes matches Meta's own schema: Prism
//! answers 422 with the list of violations for a request that does not.
//!
//! [`Prism::start`] runs `node_modules/.bin/prism mock` on a free loopback port with the spec at
//! `WHATSAPP_OPENAPI_SPEC` (fallback: the copy vendored in `tests/specs/`), waits until it
//! answers, and kills it when dropped. Without Prism (no `npm ci` yet) it returns `None`, unless
//! `WABRIDGE_REQUIRE_SERVICES=1` (the full test command), where a missing Prism is a failure.

use crate::workspace_root;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The spec file name in `tests/specs/`.
pub const SPEC_FILE: &str = "whatsapp-business-messaging-api_v23.0.yaml";

/// A running Prism mock server.
pub struct Prism {
    child: Child,
    url: String,
    /// Prism's output: removed when the server is dropped, kept when a test panicked.
    log: PathBuf,
}

impl Prism {
    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts Prism on Meta's spec. `None` when Prism or the spec is missing and services are
    /// not required; panics when they are (`WABRIDGE_REQUIRE_SERVICES=1`) or when Prism fails.
    pub fn start() -> Option<Prism> {
        let spec = match spec_path() {
            Some(spec) => spec,
            None => return missing("Meta's OpenAPI spec (set WHATSAPP_OPENAPI_SPEC)"),
        };
        Prism::start_with_spec(&spec)
    }

    /// Starts Prism on another spec file (for example a patched copy of Meta's).
    pub fn start_with_spec(spec: &Path) -> Option<Prism> {
        let bin = workspace_root().join("node_modules/.bin/prism");
        if !bin.exists() {
            return missing("Prism (run `npm ci` at the repository root)");
        }
        let port = free_port();
        let log = std::env::temp_dir().join(format!("wabridge-prism-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create prism log");
        let child = Command::new(&bin)
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let mut prism = Prism {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        prism.wait_ready(Duration::from_secs(90));
        Some(prism)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let log = self.log.clone();
        let started = Instant::now();
        let addr = self.url.trim_start_matches("http://").to_string();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("prism exited ({status}) before answering:\n{text}");
            }
            if answers_http(&addr) {
                return;
            }
            if started.elapsed() > limit {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("prism did not answer within {limit:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("prism's log is kept at {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Whether the full test command asked for every service (`WABRIDGE_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var("WABRIDGE_REQUIRE_SERVICES")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn missing(what: &str) -> Option<Prism> {
    if services_required() {
        panic!("{what} is missing and WABRIDGE_REQUIRE_SERVICES=1");
    }
    eprintln!("SKIPPED: {what} is missing (the full test command installs it)");
    None
}

/// `WHATSAPP_OPENAPI_SPEC`, or the vendored `tests/specs/<SPEC_FILE>`.
pub fn spec_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WHATSAPP_OPENAPI_SPEC") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let p = workspace_root().join("tests/specs").join(SPEC_FILE);
    p.is_file().then_some(p)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Any HTTP answer on `GET /` means Prism is serving.
fn answers_http(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(stream.read(&mut buf), Ok(n) if n >= 5 && buf.starts_with(b"HTTP/"))
}

/// Meta's spec without its one-segment paths (`/{Version}/{Phone-Number-ID}`,
/// `/{Version}/{Business-ID}`, …) other than `keep`, written into `dir`. Prism routes by path
/// template alone, so `GET /v23.0/<id>` would be checked against whichever comes first; with
/// one left, it is checked against the operation meant. `None` when the spec is missing and
/// services are not required (panics when they are).
pub fn spec_keeping(dir: &Path, keep: &str) -> Option<PathBuf> {
    let Some(spec) = spec_path() else {
        if services_required() {
            panic!("Meta's OpenAPI spec is missing and WABRIDGE_REQUIRE_SERVICES=1");
        }
        eprintln!("SKIPPED: Meta's OpenAPI spec is missing");
        return None;
    };
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(spec).expect("read the spec"))
            .expect("the spec is YAML");
    let paths = doc
        .get_mut("paths")
        .and_then(|p| p.as_mapping_mut())
        .expect("the spec has paths");
    let one_segment = |k: &str| {
        k.strip_prefix("/{Version}/{")
            .is_some_and(|rest| rest.ends_with('}') && !rest.contains('/'))
    };
    let before = paths.len();
    paths.retain(|k, _| {
        let k = k.as_str().unwrap_or("");
        !one_segment(k) || k == keep
    });
    assert!(before - paths.len() >= 10, "Meta's spec changed its paths");
    assert!(paths.contains_key(keep), "Meta's spec has no {keep}");
    let out = dir.join("spec-one-segment.yaml");
    std::fs::write(&out, serde_yaml_ng::to_string(&doc).expect("write YAML")).expect("write");
    Some(out)
}
