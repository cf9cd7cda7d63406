//! Log setup of the Lambdas: one JSON object per line on stdout (CloudWatch Logs ingests and
//! timestamps each line, so the subscriber adds no time), level from `RUST_LOG` (default
//! `info`), no span lists or targets. Phone numbers are masked by the callers
//! ([`crate::redact::mask`]), never here.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Default level when `RUST_LOG` is unset or invalid.
pub const DEFAULT_LAMBDA_LOG_LEVEL: &str = "info";

/// The Lambdas' subscriber, writing through `writer` (stdout in a Lambda, a buffer in tests).
pub fn lambda_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LAMBDA_LOG_LEVEL)),
        )
        .with_current_span(false)
        .with_target(false)
        // CloudWatch stamps every line already.
        .without_time()
        .with_writer(writer)
        .finish()
}

/// Installs [`lambda_subscriber`] on stdout as the global default (and routes `log` records
/// into it), once per cold start. A second call (or another subscriber already installed) is
/// ignored.
pub fn init_lambda_tracing() {
    let _ = lambda_subscriber(std::io::stdout).try_init();
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
        let subscriber = lambda_subscriber(buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(event_key = "wamid.X#message", "queued");
            tracing::warn!(attempt = 2, "retrying");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        // RUST_LOG may raise the level in a developer's shell; `warn` passes any default.
        assert!(!lines.is_empty(), "{text}");
        let warn = lines.last().unwrap();
        assert_eq!(warn["level"], "WARN");
        assert_eq!(warn["fields"]["message"], "retrying");
        assert_eq!(warn["fields"]["attempt"], 2);
        for l in &lines {
            assert!(l.get("timestamp").is_none(), "no time: {l}");
            assert!(l.get("target").is_none(), "no target: {l}");
        }
    }
}
