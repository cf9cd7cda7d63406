//! Log setup of the Lambdas: one JSON object per line on stdout (CloudWatch Logs ingests and
//! timestamps each line, so the subscriber adds no time), level from `RUST_LOG` (default
//! `info`), no span lists or targets. Phone numbers are masked by the callers
//! ([`crate::redact::mask`]), never here.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Default level when `RUST_LOG` is unset or invalid.
pub const DEFAULT_LAMBDA_LOG_LEVEL: &str = "info";

/// The filter for a `RUST_LOG` value: comma-separated directives, each a level (`debug`), a
/// target (`ingest`: every level) or `target=level` (`ingest=debug,aws_smithy_runtime=warn,info`).
/// Unset or invalid: [`DEFAULT_LAMBDA_LOG_LEVEL`]; set but empty: nothing is logged.
///
/// These are the directives of tracing-subscriber's `EnvFilter` that select by target and
/// level, with the same results. `EnvFilter`'s span and field-value directives
/// (`[span{field=value}]=debug`) are not supported: the Lambdas do not link it, because it
/// costs about 64 KB of ingest's zip, with its matchers (docs/benchmarks.md).
pub fn lambda_filter(rust_log: Option<&str>) -> Targets {
    let default = || {
        DEFAULT_LAMBDA_LOG_LEVEL
            .parse::<Targets>()
            .expect("a valid level")
    };
    let Some(spec) = rust_log else {
        return default();
    };
    let directives: Vec<&str> = spec.split(',').filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Targets::new();
    }
    directives.join(",").parse().unwrap_or_else(|_| default())
}

/// The Lambdas' subscriber, writing through `writer` (stdout in a Lambda, a buffer in tests),
/// filtered by `rust_log` ([`lambda_filter`]).
pub fn lambda_subscriber<W>(
    writer: W,
    rust_log: Option<&str>,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_target(false)
        // CloudWatch stamps every line already.
        .without_time()
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(json)
        .with(lambda_filter(rust_log))
}

/// Installs [`lambda_subscriber`] on stdout, filtered by `RUST_LOG`, as the global default
/// (and routes `log` records into it), once per cold start. A second call (or another
/// subscriber already installed) is ignored.
pub fn init_lambda_tracing() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let _ = lambda_subscriber(std::io::stdout, rust_log.as_deref()).try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn lambda_logs_are_one_json_object_per_line_without_time() {
        let buffer = Buffer::default();
        let subscriber = lambda_subscriber(buffer.clone(), Some("info"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(event_key = "wamid.X#message", "queued");
            tracing::warn!(attempt = 2, "retrying");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let warn = lines.last().unwrap();
        assert_eq!(warn["level"], "WARN");
        assert_eq!(warn["fields"]["message"], "retrying");
        assert_eq!(warn["fields"]["attempt"], 2);
        for l in &lines {
            assert!(l.get("timestamp").is_none(), "no time: {l}");
            assert!(l.get("target").is_none(), "no target: {l}");
        }
    }

    /// `RUST_LOG` selects as `EnvFilter` did for targets and levels (results checked against
    /// tracing-subscriber 0.3.23's `EnvFilter` when it was replaced).
    #[test]
    fn rust_log_selects_by_target_and_level() {
        use tracing::Level;
        fn enabled(rust_log: Option<&str>) -> Vec<&'static str> {
            let subscriber = lambda_subscriber(std::io::sink, rust_log);
            let mut on = Vec::new();
            tracing::subscriber::with_default(subscriber, || {
                if tracing::enabled!(target: "ingest::x", Level::DEBUG) {
                    on.push("ingest:debug");
                }
                if tracing::enabled!(target: "ingest::x", Level::INFO) {
                    on.push("ingest:info");
                }
                if tracing::enabled!(target: "hyper::x", Level::INFO) {
                    on.push("hyper:info");
                }
                if tracing::enabled!(target: "hyper::x", Level::WARN) {
                    on.push("hyper:warn");
                }
                if tracing::enabled!(target: "other", Level::ERROR) {
                    on.push("other:error");
                }
                if tracing::enabled!(target: "other", Level::TRACE) {
                    on.push("other:trace");
                }
            });
            on
        }
        let info = ["ingest:info", "hyper:info", "hyper:warn", "other:error"];
        assert_eq!(enabled(None), info, "unset: info");
        assert_eq!(enabled(Some("info")), info);
        assert_eq!(enabled(Some("INFO")), info);
        assert_eq!(enabled(Some("info,,")), info);
        assert_eq!(enabled(Some("bogus=lots")), info, "invalid: info");
        assert_eq!(
            enabled(Some("debug")),
            [
                "ingest:debug",
                "ingest:info",
                "hyper:info",
                "hyper:warn",
                "other:error"
            ]
        );
        assert_eq!(enabled(Some("warn")), ["hyper:warn", "other:error"]);
        assert_eq!(
            enabled(Some("ingest=debug")),
            ["ingest:debug", "ingest:info"]
        );
        assert_eq!(enabled(Some("ingest")), ["ingest:debug", "ingest:info"]);
        assert_eq!(
            enabled(Some("ingest=debug,hyper=warn,info")),
            ["ingest:debug", "ingest:info", "hyper:warn", "other:error"]
        );
        assert!(enabled(Some("off")).is_empty());
        assert!(enabled(Some("")).is_empty(), "set but empty: nothing");
    }
}
