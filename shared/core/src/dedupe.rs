//! Dedupe port: remembers which event keys were accepted, for at least as long as Meta retries
//! (7 days), so a redelivered webhook is acknowledged without enqueuing its events again.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;

/// How long accepted keys are remembered by default: Meta retries for up to 7 days; a day more
/// covers clock skew and slow retries.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(8 * 24 * 3600);

#[async_trait]
pub trait Dedupe: Send + Sync {
    /// For each key, whether it was accepted before (`true` = seen). Same order as `keys`.
    async fn seen(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError>;
    /// Records the keys as accepted, each kept at least `ttl`. Idempotent.
    async fn mark(&self, keys: &[&str], ttl: Duration) -> Result<(), StoreError>;
}
