//! The business alerts of an event ([`crate::alerts`]), emitted once the event's CRM effects
//! are applied, through the effects ledger: a redelivered event finds its `alert` effect done
//! and counts nothing twice.

use std::time::Duration;

use crate::alerts::Signal;
use crate::consumer::Outcome;
use crate::error::StoreError;
use crate::event::Event;
use crate::ledger::{effect_id, Claim};

use super::CrmSync;

/// The ledger's effect name of an event's signals.
pub const ALERT_EFFECT: &str = "alert";

impl CrmSync {
    /// Emits `signals` unless the ledger says this event emitted them already. `Some` ends the
    /// delivery (another delivery holds the claim: it retries after the lease).
    pub(super) async fn signal(
        &self,
        event: &Event,
        signals: &[Signal],
    ) -> Result<Option<Outcome>, StoreError> {
        if signals.is_empty() {
            return Ok(None);
        }
        let id = effect_id(&event.key, ALERT_EFFECT);
        match self.ledger.claim(&id, self.lease).await? {
            Claim::Done => return Ok(None),
            Claim::Busy(left) => {
                return Ok(Some(Outcome::retry(
                    left.max(Duration::from_millis(100)),
                    "the event's alerts are being emitted by another delivery",
                )))
            }
            // In doubt: an earlier delivery stopped between emitting and confirming. A metric
            // counted twice is better than an alert lost.
            Claim::Proceed { .. } => {}
        }
        let at = event
            .entry_time
            .map_or(event.received_at, |t| t.saturating_mul(1000));
        for signal in signals {
            if let Err(e) = self.alerts.record(signal, at).await {
                self.ledger.abandon(&id).await?;
                return Err(e);
            }
        }
        self.ledger.confirm(&id).await?;
        Ok(None)
    }
}
