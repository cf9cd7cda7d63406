//! The registry's crm-sync on Lambda: built from the table's registry items at cold start,
//! and built again when an event names a number it does not know, so a number added with
//! `wabridge numbers add --table T` is picked up without a redeploy (docs/numbers.md).
//!
//! The re-read is bounded: at most once per [`RELOAD_EVERY`] per instance, whatever the rate of
//! unknown numbers, so a misconfigured number costs one Query a minute, not one per event. An
//! event still unknown after the re-read is dead-lettered `unknown_number`, for redrive once
//! the number is added.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::engine::AwsEngine;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::numbers::dispatch::{NumberDispatch, UNKNOWN_NUMBER};
use wabridge_core::numbers::Numbers;
use wabridge_core::queue::Delivery;

use crate::numbers::{dispatch, Shared};

/// How often an instance may re-read the registry on an unknown number.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// The current registry's dispatch, rebuilt from the table on an unknown number.
pub struct Reloading {
    registry: DynamoNumbers,
    engine: AwsEngine,
    shared: Shared,
    current: RwLock<Arc<NumberDispatch>>,
    /// When the registry was last read; held while re-reading, so one task reads at a time.
    read_at: tokio::sync::Mutex<Instant>,
    every: Duration,
}

impl Reloading {
    /// The dispatch of `numbers` (just read from `registry`), re-read at most once per `every`.
    pub fn new(
        registry: DynamoNumbers,
        engine: AwsEngine,
        shared: Shared,
        numbers: Numbers,
        every: Duration,
    ) -> Result<Reloading, String> {
        let first = dispatch(&engine, Arc::new(numbers), &shared)?;
        Ok(Reloading {
            registry,
            engine,
            shared,
            current: RwLock::new(Arc::new(first)),
            read_at: tokio::sync::Mutex::new(Instant::now()),
            every,
        })
    }

    fn current(&self) -> Arc<NumberDispatch> {
        self.current.read().expect("never poisoned").clone()
    }

    /// A newer dispatch than `seen`: another task's, or one built from the table now if the
    /// last read is old enough. `None`: none (too soon, or the table's registry is unusable:
    /// the previous one stays, and the reason is logged).
    async fn newer(&self, seen: &Arc<NumberDispatch>) -> Option<Arc<NumberDispatch>> {
        let mut read_at = self.read_at.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if read_at.elapsed() < self.every {
            return None;
        }
        *read_at = Instant::now();
        let built = match self.registry.load().await {
            Ok(Some(numbers)) => dispatch(&self.engine, Arc::new(numbers), &self.shared),
            Ok(None) => Err("the table holds no number any more".into()),
            Err(e) => Err(e.to_string()),
        };
        match built {
            Ok(next) => {
                let next = Arc::new(next);
                *self.current.write().expect("never poisoned") = next.clone();
                tracing::info!("numbers registry re-read on an unknown number");
                Some(next)
            }
            Err(why) => {
                tracing::error!(%why, "numbers registry not re-read: keeping the previous one");
                None
            }
        }
    }
}

#[async_trait]
impl Handler for Reloading {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let seen = self.current();
        let outcome = seen.handle(delivery).await;
        // An unknown number's dead letter had no effect: the event may be handled again.
        match &outcome {
            Outcome::DeadLetter(reason) if reason.starts_with(UNKNOWN_NUMBER) => {
                match self.newer(&seen).await {
                    Some(next) => next.handle(delivery).await,
                    None => outcome,
                }
            }
            _ => outcome,
        }
    }
}
