//! The sender over the table's numbers registry, re-read when a queued send is `from` a number
//! this instance has no line for (added with `wabridge numbers add --table T` after its cold
//! start), so the send goes out without a recycle (docs/numbers.md, "On AWS").
//!
//! The re-read is [`wabridge_core::numbers::reload`]'s, as ingest's and crm-sync's: at most
//! once per interval per instance, only on a miss. It reads the registry and the stack's secret
//! again (the new number's token key is added to the secret before the number), and builds
//! every line again: the limiter of a number this instance already had is kept, so its pace
//! carries on; the pair windows are the table's, shared by every instance. A send that misses
//! before the next read is allowed waits on the queue for it, never fails; one still unknown
//! after a read (its number removed since it was accepted) fails `unknown_number`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::secrets::ReadSecret;
use wabridge_core::consumer::{Handler, Outcome};
use wabridge_core::numbers::{reload, Numbers};
use wabridge_core::queue::Delivery;
use wabridge_core::retry::backoff;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::media::MediaUploader;
use wabridge_core::sends::sender::Sender;
use wabridge_graph::GraphClient;

use crate::lines::{self, Line};

/// A setting by name.
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
/// A number's uploader from its Graph settings.
pub type Uploader = Arc<dyn Fn(GraphConfig) -> Option<Arc<MediaUploader>> + Send + Sync>;

/// What a re-read needs besides the registry's items.
#[derive(Clone)]
pub struct Registry {
    pub table: DynamoNumbers,
    pub read_secret: ReadSecret,
    /// Plain settings (`WHATSAPP_API_URL`, `WHATSAPP_API_VERSION`).
    pub settings: Lookup,
    /// `WABRIDGE_SENDER_INSTANCES`: the instances that share each number's rate.
    pub instances: u32,
    /// A number's uploader from its Graph settings (none without `MEDIA_BUCKET`).
    pub uploader: Uploader,
}

/// The sender of the current registry, built again on a send from a number it lacks.
pub struct ReloadingSender {
    registry: Registry,
    current: reload::Reloading<Sender>,
}

impl ReloadingSender {
    /// `first`, built from the registry just read; re-read at most once per `every`.
    pub fn new(first: Sender, registry: Registry, every: Duration) -> ReloadingSender {
        ReloadingSender {
            registry,
            current: reload::Reloading::new(first, every),
        }
    }

    /// The sender that serves now.
    pub fn current(&self) -> Arc<Sender> {
        self.current.current()
    }

    async fn rebuild(&self, seen: &Sender) -> Result<Sender, String> {
        let numbers = self
            .registry
            .table
            .load()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the table holds no number any more")?;
        let secret = (self.registry.read_secret)().await?;
        let settings = self.registry.settings.as_ref();
        let lines = lines::lines(&numbers, self.registry.instances, settings, |key| {
            secret.get(key).map(str::to_string)
        })?;
        Ok(rebuilt(
            seen,
            Arc::new(numbers),
            lines,
            &*self.registry.uploader,
        ))
    }
}

/// A sender like `seen` (its breaker, default line, alerts, retry policy) over `numbers`: a
/// number `seen` had keeps its limiter when its rate is unchanged; every line gets the token
/// just read (a rotated token is picked up too).
fn rebuilt(
    seen: &Sender,
    numbers: Arc<Numbers>,
    lines: Vec<Line>,
    uploader: &(dyn Fn(GraphConfig) -> Option<Arc<MediaUploader>> + Send + Sync),
) -> Sender {
    let sends = seen.sends.clone().with_numbers(numbers);
    let mut sender = Sender::new(sends, seen.graph.clone(), seen.limiter.clone());
    sender.policy = seen.policy;
    sender.breaker = seen.breaker.clone();
    sender.media = seen.media.clone();
    sender.alerts = seen.alerts.clone();
    for line in lines {
        let id = line.phone_number_id;
        let limiter = match seen.lines.get(&id) {
            Some((_, kept)) if (kept.per_second() - line.limiter.per_second()).abs() < 1e-9 => {
                kept.clone()
            }
            _ => Arc::new(line.limiter),
        };
        let media = uploader(line.graph.clone());
        sender = sender.with_line(&id, Arc::new(GraphClient::new(line.graph)), limiter);
        if let Some(media) = media {
            sender = sender.with_line_media(&id, media);
        }
    }
    sender
}

#[async_trait]
impl Handler for ReloadingSender {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let seen = self.current.current();
        let unknown = match seen.attempt(delivery).await {
            Ok(outcome) => return outcome,
            Err(unknown) => unknown,
        };
        match self
            .current
            .newer_or_wait(&seen, || self.rebuild(&seen))
            .await
        {
            Ok(next) => next.handle(delivery).await,
            // The send was accepted from a registered number: this instance reads the
            // registry again before it says the number is gone.
            Err(Some(wait)) => Outcome::retry(
                wait,
                format!(
                    "send {} is from a number this instance does not know yet; the registry is re-read then",
                    unknown.send_id
                ),
            ),
            Err(None) => Outcome::retry(
                backoff(delivery.receive_count, None),
                "the numbers registry could not be re-read",
            ),
        }
    }
}
