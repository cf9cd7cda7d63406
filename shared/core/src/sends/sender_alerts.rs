//! The sender's part of the business alerts ([`crate::alerts`]): each send it ends is counted
//! once, for the failed-send rate.

use std::sync::Arc;

use crate::alerts::{AlertSink, Signal};
use crate::clock::now_ms;
use crate::sends::store::{SendError, SendState};

use super::sender::Sender;

impl Sender {
    /// Each send's outcome (accepted by Meta, or failed) goes to `sink`.
    pub fn with_alerts(mut self, sink: Arc<dyn AlertSink>) -> Self {
        self.alerts = sink;
        self
    }

    /// Counts the outcome of a send that just moved to `to` (once: only the delivery whose
    /// transition moved it gets here). A sink failure is logged, not retried: the send is
    /// done and must not go out again for a metric.
    pub(super) async fn count(&self, to: SendState, error: Option<&SendError>) {
        let failed = match to {
            SendState::Sent => false,
            SendState::Failed => true,
            // Refused by wabridge's own guards: not a send Meta saw.
            _ => return,
        };
        let signal = Signal::SendOutcome {
            attempted: true,
            failed,
            code: error.map(|e| e.code.clone()),
        };
        if let Err(e) = self.alerts.record(&signal, now_ms()).await {
            tracing::warn!(error = %e, "send outcome not counted");
        }
    }
}
