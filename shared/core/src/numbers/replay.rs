//! What a destination received, kept for `wabridge replay` (`docs/destinations.md#replay`): a
//! bot that lost its state gets a period's events again, as new deliveries.
//!
//! Each delivery a destination's handler finishes is logged ([`DeliveryLog`], by the event's
//! key, once) with the event; a replay enqueues the logged events again on the destination's
//! queue under fresh keys ([`replay_key`]), so that a records destination's effects ledger
//! posts them again instead of finding them done. A replayed delivery logs nothing new (its
//! [`original_key`] is logged already), so replaying a period twice does not double it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::consumer::{Handler, Outcome};
use crate::error::StoreError;
use crate::event::Event;
use crate::queue::Delivery;

/// Between an event's key and the replay it was sent again by.
pub const REPLAY_MARK: &str = "~replay-";

/// The key of `key`'s event sent again by replay `tag` (its time, Unix ms).
pub fn replay_key(key: &str, tag: i64) -> String {
    format!("{}{REPLAY_MARK}{tag}", original_key(key))
}

/// The key the event had when it was first delivered.
pub fn original_key(key: &str) -> &str {
    key.split_once(REPLAY_MARK).map_or(key, |(k, _)| k)
}

/// Where finished deliveries are kept for replay.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Destination `destination` took the event `key` (its body `event`); a key logged already
    /// keeps its first time.
    async fn delivered(&self, destination: &str, key: &str, event: &str) -> Result<(), StoreError>;
}

/// A destination's handler whose finished deliveries are logged for replay.
pub struct Logged {
    name: String,
    inner: Arc<dyn Handler>,
    log: Arc<dyn DeliveryLog>,
}

impl Logged {
    pub fn new(name: &str, inner: Arc<dyn Handler>, log: Arc<dyn DeliveryLog>) -> Logged {
        Logged {
            name: name.to_string(),
            inner,
            log,
        }
    }
}

#[async_trait]
impl Handler for Logged {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let outcome = self.inner.handle(delivery).await;
        if !matches!(outcome, Outcome::Done) {
            return outcome;
        }
        // The inner handler parsed it, or it would not be done.
        let Ok(event) = Event::from_json(&delivery.body) else {
            return outcome;
        };
        let key = original_key(&event.key);
        match self.log.delivered(&self.name, key, &delivery.body).await {
            Ok(()) => Outcome::Done,
            // Delivered again later rather than missing from a replay: a relay bot
            // deduplicates on the message id, a records destination's ledger posts nothing twice.
            Err(e) => Outcome::retry(
                crate::retry::backoff(delivery.receive_count, None),
                format!("destination {}: cannot log the delivery: {e}", self.name),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_key_is_fresh_and_leads_back_to_the_first_key() {
        let once = replay_key("wamid.A", 1_000);
        assert_ne!(once, "wamid.A");
        assert_eq!(original_key(&once), "wamid.A");
        // A replay of a replay is keyed from the first key, not stacked.
        let twice = replay_key(&once, 2_000);
        assert_eq!(twice, "wamid.A~replay-2000");
        assert_eq!(original_key(&twice), "wamid.A");
        assert_eq!(original_key("wamid.B"), "wamid.B");
    }
}
