//! The 24-hour customer service window: free-form (non-template) messages may be sent to a
//! contact only within 24 h of the contact's last inbound message; outside it only approved
//! templates (Meta refuses with 131047 otherwise).
//!
//! The window belongs to a (business number, customer) pair: a customer who wrote to the sales
//! line opened no window on the support line. Every inbound message is recorded under its
//! number (`phone_number_id`) and, for sends that name no number (one implicit number), under
//! the customer alone. A send from a number reads that number's window. Windows recorded before
//! numbers were tracked have no number: they count for a number only while the customer has
//! none recorded per number (a transition of at most 24 h after an upgrade).
//!
//! Entry point for the sync handler: [`WindowService::record_inbound`] with the contact, the
//! number and the message's `timestamp` (seconds × 1000), for every inbound message.
//! Out-of-order and redelivered messages are harmless: the store keeps the latest time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::consent::ContactRef;
use crate::error::StoreError;

/// Meta's customer service window.
pub const WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// What a store holds of one customer's last inbound messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastInbound {
    /// The latest inbound message to any number (Unix ms).
    pub any: Option<i64>,
    /// The latest to the number asked about.
    pub number: Option<i64>,
    /// Whether any number's time is recorded for the customer.
    pub per_number: bool,
}

impl LastInbound {
    /// The window's start for a send from `number` (`None`: no number named).
    pub fn for_number(&self, number: Option<&str>) -> Option<i64> {
        match number {
            None => self.any,
            Some(_) if self.per_number => self.number,
            // Recorded before numbers were: the customer's latest message counts.
            Some(_) => self.any,
        }
    }
}

#[async_trait]
pub trait WindowStore: Send + Sync {
    /// Records an inbound message at `at_ms` to `number` (keeps the latest of what is stored
    /// and `at_ms`, for the customer and for the pair).
    async fn record_inbound(
        &self,
        contact: &str,
        number: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError>;
    /// The latest inbound message times of the customer, the one to `number` among them.
    async fn last_inbound(
        &self,
        contact: &str,
        number: Option<&str>,
    ) -> Result<LastInbound, StoreError>;
}

#[derive(Clone)]
pub struct WindowService {
    store: Arc<dyn WindowStore>,
}

impl WindowService {
    pub fn new(store: Arc<dyn WindowStore>) -> WindowService {
        WindowService { store }
    }

    pub async fn record_inbound(
        &self,
        contact: &ContactRef,
        number: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let number = number.filter(|n| !n.is_empty());
        self.store.record_inbound(&contact.key, number, at_ms).await
    }

    /// When the window of `contact` with `number` (any number when `None`) last opened.
    pub async fn last_inbound(
        &self,
        contact: &ContactRef,
        number: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let number = number.filter(|n| !n.is_empty());
        let last = self.store.last_inbound(&contact.key, number).await?;
        Ok(last.for_number(number))
    }

    /// Whether the window is open at `now_ms`.
    pub async fn is_open(
        &self,
        contact: &ContactRef,
        number: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(is_open_at(
            self.last_inbound(contact, number).await?,
            now_ms,
        ))
    }
}

/// Whether a window whose last inbound was at `last` is open at `now_ms`.
pub fn is_open_at(last: Option<i64>, now_ms: i64) -> bool {
    last.is_some_and(|last| now_ms - last < WINDOW.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_reads_its_own_window_once_numbers_are_recorded() {
        let legacy = LastInbound {
            any: Some(5),
            number: None,
            per_number: false,
        };
        assert_eq!(legacy.for_number(Some("1")), Some(5), "before numbers were");
        assert_eq!(legacy.for_number(None), Some(5));
        let other = LastInbound {
            any: Some(9),
            number: None,
            per_number: true,
        };
        assert_eq!(other.for_number(Some("1")), None, "wrote to another number");
        assert_eq!(other.for_number(None), Some(9));
        let own = LastInbound {
            any: Some(9),
            number: Some(7),
            per_number: true,
        };
        assert_eq!(own.for_number(Some("1")), Some(7));
    }

    #[test]
    fn window_is_24_hours() {
        let h = 3_600_000;
        assert!(!is_open_at(None, 0));
        assert!(is_open_at(Some(0), 23 * h));
        assert!(!is_open_at(Some(0), 24 * h));
    }
}
