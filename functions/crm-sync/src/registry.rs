//! The registry's crm-sync on Lambda: built from the table's registry items at cold start,
//! and built again when an event names a number it does not know, so a number added with
//! `wabridge numbers add --table T` is picked up without a redeploy (docs/numbers.md).
//!
//! The re-read is [`wabridge_core::numbers::reload`]'s: at most once a minute per instance,
//! only on an unknown number. An event still unknown after the re-read is dead-lettered
//! `unknown_number`, for redrive once the number is added.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::engine::AwsEngine;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::numbers::dispatch::{NumberDispatch, UNKNOWN_NUMBER};
use wabridge_core::numbers::reload;
use wabridge_core::numbers::Numbers;
use wabridge_core::queue::Delivery;

use crate::numbers::{dispatch, Shared};

/// How often an instance may re-read the registry on an unknown number.
pub const RELOAD_EVERY: Duration = reload::RELOAD_EVERY;

/// The current registry's dispatch, rebuilt from the table on an unknown number.
pub struct Reloading {
    registry: DynamoNumbers,
    engine: AwsEngine,
    shared: Shared,
    current: reload::Reloading<NumberDispatch>,
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
            current: reload::Reloading::new(first, every),
        })
    }

    async fn newer(&self, seen: &Arc<NumberDispatch>) -> Option<Arc<NumberDispatch>> {
        self.current
            .newer(seen, || async {
                match self.registry.load().await {
                    Ok(Some(numbers)) => dispatch(&self.engine, Arc::new(numbers), &self.shared),
                    Ok(None) => Err("the table holds no number any more".into()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await
    }
}

#[async_trait]
impl Handler for Reloading {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let seen = self.current.current();
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
