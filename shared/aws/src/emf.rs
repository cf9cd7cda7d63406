//! Business alerts on AWS ([`wabridge_core::alerts`]): each signal as one Embedded Metric
//! Format line on stdout (CloudWatch Logs turns it into metrics of the `wabridge` namespace,
//! with no API call), plus its warn line.

use async_trait::async_trait;
use wabridge_core::alerts::{emf, log, AlertSink, Signal};
use wabridge_core::error::StoreError;

type Writer = Box<dyn Fn(&str) + Send + Sync>;

/// Writes EMF lines through `out` (stdout in a Lambda).
pub struct EmfAlerts {
    out: Writer,
}

impl EmfAlerts {
    /// On stdout, where the Lambda runtime hands each line to CloudWatch Logs.
    pub fn stdout() -> EmfAlerts {
        EmfAlerts::with_writer(|line| println!("{line}"))
    }

    /// Through `out`, one call per line (tests collect them).
    pub fn with_writer(out: impl Fn(&str) + Send + Sync + 'static) -> EmfAlerts {
        EmfAlerts { out: Box::new(out) }
    }
}

#[async_trait]
impl AlertSink for EmfAlerts {
    async fn record(&self, signal: &Signal, at_ms: i64) -> Result<(), StoreError> {
        log(signal);
        if let Some(line) = emf::line(signal, at_ms) {
            (self.out)(&line.to_string());
        }
        Ok(())
    }
}
