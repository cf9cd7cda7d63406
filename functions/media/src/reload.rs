//! The media function over the table's numbers registry, re-read when a job names a number it
//! has no token for (added with `wabridge numbers add --table T` after its cold start), so the
//! number's files are fetched with its own token without a recycle (docs/numbers.md, "On AWS").
//!
//! The re-read is [`wabridge_core::numbers::reload`]'s, as the other functions': at most once
//! per interval per instance, only on a miss; it reads the registry and the stack's secret
//! again. Before the instance may read again, the job is fetched as before the re-read existed
//! (with the default token), and retried as any failed fetch when Meta refuses it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::sdk::SdkConfig;
use wabridge_aws::secrets::{ReadSecret, Secrets};
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::media::job::MediaJob;
use wabridge_core::numbers::{reload, Numbers};
use wabridge_core::queue::Delivery;

use crate::Settings;

/// Each number's (phone_number_id, token), the token read from `secret` by its key; a key the
/// secret lacks is an error naming the number and the key, never a value.
pub fn tokens(
    numbers: Option<&Numbers>,
    secret: &Secrets,
) -> Result<Vec<(String, String)>, String> {
    numbers
        .iter()
        .flat_map(|n| n.all())
        .map(|n| {
            let token = secret.get(&n.token_key).ok_or_else(|| {
                format!(
                    "number `{}`: its token_key {} is not in the stack's secret",
                    n.label, n.token_key
                )
            })?;
            Ok((n.phone_number_id.clone(), token.to_string()))
        })
        .collect()
}

/// What a re-read needs.
#[derive(Clone)]
pub struct Registry {
    pub table: DynamoNumbers,
    pub read_secret: ReadSecret,
    pub sdk: SdkConfig,
    /// The cold start's settings (the default token among them).
    pub settings: Settings,
}

/// The handler of one registry and the numbers it has a token for.
pub struct Built {
    handler: Arc<dyn Handler>,
    known: HashSet<String>,
}

impl Built {
    pub fn new(handler: Arc<dyn Handler>, tokens: &[(String, String)]) -> Built {
        let known = tokens.iter().map(|(id, _)| id.clone()).collect();
        Built { handler, known }
    }
}

/// The media consumer of the current registry, built again on a job of a number it lacks.
pub struct ReloadingMedia {
    registry: Registry,
    current: reload::Reloading<Built>,
}

impl ReloadingMedia {
    /// `first`, built from the registry just read; re-read at most once per `every`.
    pub fn new(first: Built, registry: Registry, every: Duration) -> ReloadingMedia {
        ReloadingMedia {
            registry,
            current: reload::Reloading::new(first, every),
        }
    }

    async fn rebuild(&self) -> Result<Built, String> {
        let numbers = self
            .registry
            .table
            .load()
            .await
            .map_err(|e| e.to_string())?;
        let secret = (self.registry.read_secret)().await?;
        let tokens = tokens(numbers.as_ref(), &secret)?;
        let settings = self.registry.settings.clone();
        let app = crate::build_with_numbers(&self.registry.sdk, settings, tokens.clone());
        Ok(Built::new(app.handler, &tokens))
    }
}

#[async_trait]
impl Handler for ReloadingMedia {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let seen = self.current.current();
        // An unreadable job is the inner handler's to refuse.
        let number = serde_json::from_str::<MediaJob>(&delivery.body)
            .ok()
            .and_then(|job| job.phone_number_id);
        if number.is_some_and(|id| !seen.known.contains(&id)) {
            if let Ok(next) = self.current.newer_or_wait(&seen, || self.rebuild()).await {
                return next.handler.handle(delivery).await;
            }
        }
        seen.handler.handle(delivery).await
    }
}
