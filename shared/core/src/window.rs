//! The 24-hour customer service window: free-form (non-template) messages may be sent to a
//! contact only within 24 h of the contact's last inbound message; outside it only approved
//! templates (Meta refuses with 131047 otherwise).
//!
//! Entry point for the sync handler: [`WindowService::record_inbound`] with the contact and the
//! message's `timestamp` (seconds × 1000), for every inbound message. Out-of-order and
//! redelivered messages are harmless: the store keeps the latest time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::consent::ContactRef;
use crate::error::StoreError;

/// Meta's customer service window.
pub const WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

#[async_trait]
pub trait WindowStore: Send + Sync {
    /// Records an inbound message at `at_ms` (keeps the latest of what is stored and `at_ms`).
    async fn record_inbound(&self, contact: &str, at_ms: i64) -> Result<(), StoreError>;
    /// The latest inbound message time, Unix ms.
    async fn last_inbound(&self, contact: &str) -> Result<Option<i64>, StoreError>;
}

#[derive(Clone)]
pub struct WindowService {
    store: Arc<dyn WindowStore>,
}

impl WindowService {
    pub fn new(store: Arc<dyn WindowStore>) -> WindowService {
        WindowService { store }
    }

    pub async fn record_inbound(&self, contact: &ContactRef, at_ms: i64) -> Result<(), StoreError> {
        self.store.record_inbound(&contact.key, at_ms).await
    }

    pub async fn last_inbound(&self, contact: &ContactRef) -> Result<Option<i64>, StoreError> {
        self.store.last_inbound(&contact.key).await
    }

    /// Whether the window is open at `now_ms`.
    pub async fn is_open(&self, contact: &ContactRef, now_ms: i64) -> Result<bool, StoreError> {
        Ok(is_open_at(self.last_inbound(contact).await?, now_ms))
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
    fn window_is_24_hours() {
        let h = 3_600_000;
        assert!(!is_open_at(None, 0));
        assert!(is_open_at(Some(0), 23 * h));
        assert!(!is_open_at(Some(0), 24 * h));
    }
}
