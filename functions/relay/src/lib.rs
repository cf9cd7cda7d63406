//! `relay` Lambda: the consumer of one destination's SQS queue on AWS (`docs/destinations.md`).
//! The events topic delivers the destination's events to its queue (raw message delivery, its
//! filter policy from the destination's `events` and `numbers`); this function POSTs each to the
//! destination's URL with the code `wabridge serve` uses ([`RelayHandler`] over
//! [`HttpRelay`]): Meta's envelope re-signed under the destination's secret, the same retries
//! (transient failures, 429 and 401/403 wait with backoff within the events' retry horizon),
//! other 4xx dead-lettered at once into the destination's DLQ with a reason naming it, and
//! partial batch failures. One function per destination, so a bot that is down holds back only
//! its own queue.
//!
//! With `DESTINATION_KIND=records` it posts each event's canonical records instead, with the
//! [`RecordsHandler`] `wabridge serve` uses: the webhook CRM at the destination's URL signed
//! with its secret, each number's mapping of the table's numbers registry, the table's
//! identities read only, and the table's effects ledger scoped to the destination.
//!
//! Each finished delivery is logged in the table (`WABRIDGE_TABLE`, [`wabridge_aws::dynamo::deliveries::DynamoDeliveries`], kept
//! the content retention) for `wabridge replay --table` (`docs/destinations.md#replay`).
//!
//! Settings come from the environment (`DESTINATION_*` of `wabridge_core::config`); the signing
//! secret is the key `DESTINATION_SECRET_KEY` names in the stack's one secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use wabridge_aws::engine::AwsEngine;
use wabridge_core::config::{self, ConfigError};
use wabridge_core::consumer::Handler;
use wabridge_core::mapping::Mapping;
use wabridge_core::numbers::destinations::{is_name, DestinationKind};
use wabridge_core::numbers::is_key_name;
use wabridge_core::numbers::records::{Mappings, RecordsHandler};
use wabridge_core::numbers::relay::{RelayHandler, RelayPost};
use wabridge_core::numbers::replay::Logged;
use wabridge_core::numbers::Numbers;
use wabridge_core::queue::Queue;
use wabridge_core::retry::RetryPolicy;
use wabridge_crm::relay::HttpRelay;
use wabridge_crm::webhook::WebhookCrm;

/// Deliveries of one batch at once (as `wabridge serve`'s destination worker).
pub const CONCURRENCY: usize = 4;
/// Longest one relay POST may take (as a CRM call's default).
const RELAY_TIMEOUT: Duration = Duration::from_millis(config::DEFAULT_CRM_TIMEOUT_MS);

/// One destination's settings, checked at cold start (each refusal names the variable).
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub name: String,
    pub kind: DestinationKind,
    pub url: String,
    /// The NAME of its signing secret in the stack's secret.
    pub secret_key: String,
    pub queue_url: String,
    pub dlq_url: String,
}

impl Destination {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Destination, ConfigError> {
        let s = config::Settings::new(get);
        let name = s.required(config::DESTINATION_NAME, "it names the dead letters")?;
        if !is_name(&name) {
            return Err(ConfigError::Invalid {
                name: config::DESTINATION_NAME,
                value: name,
                expected: "1-32 of a-z 0-9 - _",
            });
        }
        let kind = match s.optional(config::DESTINATION_KIND).as_deref() {
            None | Some("relay") => DestinationKind::Relay,
            Some("records") => DestinationKind::Records,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: config::DESTINATION_KIND,
                    value: other.to_string(),
                    expected: "relay or records",
                })
            }
        };
        let url = s.required(config::DESTINATION_URL, "deliveries are POSTed there")?;
        let ok = url::Url::parse(&url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            // The URL may carry a token: its scheme only.
            let scheme = url.split_once(':').map_or("none", |(s, _)| s);
            return Err(ConfigError::Invalid {
                name: config::DESTINATION_URL,
                value: format!("a URL of scheme {scheme}"),
                expected: "an http or https URL",
            });
        }
        let secret_key = s.required(
            config::DESTINATION_SECRET_KEY,
            "deliveries are signed with the secret it names",
        )?;
        if !is_key_name(&secret_key) {
            return Err(ConfigError::Invalid {
                name: config::DESTINATION_SECRET_KEY,
                value: "(hidden: not a key name, perhaps the secret itself)".into(),
                expected: "the NAME of a key of the stack's secret (A-Z, 0-9, _)",
            });
        }
        Ok(Destination {
            name,
            kind,
            url,
            secret_key,
            queue_url: s.required(config::DESTINATION_QUEUE_URL, "its events are there")?,
            dlq_url: s.required(config::DESTINATION_DLQ_URL, "its dead letters go there")?,
        })
    }
}

pub struct App {
    pub handler: Arc<dyn Handler>,
    pub queue: Arc<dyn Queue>,
    /// The events' retry horizon (`WABRIDGE_RETRY_HORIZON`), as the CRM's.
    pub policy: RetryPolicy,
}

/// The consumer of a relay `destination` over `engine`, signing with `secret` and posting with `post`
/// (the destination's URL, [`HttpRelay`], outside tests); finished deliveries are logged in
/// the engine's table. Claim-checked events are read from the bucket (the log sees the event,
/// not its pointer) and left there for the other queues' consumers.
pub fn build(
    engine: &AwsEngine,
    destination: &Destination,
    secret: &str,
    post: Arc<dyn RelayPost>,
    policy: RetryPolicy,
) -> Result<App, String> {
    let handler = RelayHandler::new(&destination.name, secret, post).ok_or_else(|| {
        format!(
            "destination {}: the secret's key {} is empty",
            destination.name, destination.secret_key
        )
    })?;
    Ok(finish(engine, destination, Arc::new(handler), policy))
}

/// What a records destination needs besides its settings.
pub struct Records {
    /// The table's numbers registry (`None`: no registry items, one CRM of `CRM_KIND`).
    pub numbers: Option<Arc<Numbers>>,
    pub mappings: Mappings,
    /// How long its effects ledger items live (`WABRIDGE_LEDGER_RETENTION_DAYS`).
    pub ledger_retention: Duration,
}

/// The consumer of a records `destination` over `engine`: its records posted to its URL as
/// the webhook CRM posts them, signed with `secret` ([`RecordsHandler::over`]); finished
/// deliveries logged and claim-checked events read as [`build`]'s.
pub fn build_records(
    engine: &AwsEngine,
    destination: &Destination,
    secret: &str,
    records: Records,
    policy: RetryPolicy,
) -> Result<App, String> {
    let crm = WebhookCrm::new(&destination.url, secret, RELAY_TIMEOUT).map_err(|e| {
        format!(
            "destination {}: the secret's key {}: {e}",
            destination.name, destination.secret_key
        )
    })?;
    let handler = RecordsHandler::over(
        &destination.name,
        records.numbers,
        Arc::new(engine.identities()),
        Arc::new(engine.ledger(records.ledger_retention)),
        Arc::new(crm),
        records.mappings,
    );
    Ok(finish(engine, destination, Arc::new(handler), policy))
}

/// A records destination's registry and mappings, read at cold start: the table's numbers
/// registry, as crm-sync reads it (once: a number added later gets the fallback's mapping until
/// the next cold start), each number's mapping; without a registry, crm-sync's mapping
/// (`WABRIDGE_MAPPING`, else the example of `CRM_KIND`). A mapping that cannot be had is an
/// error naming where it came from.
pub async fn records(
    engine: &AwsEngine,
    destination: &Destination,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Records, String> {
    let name = &destination.name;
    let registry =
        wabridge_aws::dynamo::numbers::DynamoNumbers::new(engine.dynamo.clone(), &engine.table);
    let numbers = registry
        .load()
        .await
        .map_err(|e| format!("destination {name}: the numbers registry: {e}"))?
        .map(Arc::new);
    let path = lookup(config::WABRIDGE_MAPPING);
    let kind = config::crm_kind(&lookup);
    let from = match (&numbers, &path) {
        (Some(_), _) => "the numbers registry's mappings".to_string(),
        (None, Some(_)) => config::WABRIDGE_MAPPING.to_string(),
        (None, None) => format!("the example mapping of {} {kind}", config::CRM_KIND),
    };
    let mappings = Mappings::of(numbers.as_deref(), || match &path {
        Some(path) => Mapping::load(path),
        None => Mapping::example(&kind),
    })
    .map_err(|e| format!("destination {name}: {from}: {e}"))?;
    let ledger_retention = config::ledger_retention().map_err(|e| e.to_string())?;
    Ok(Records {
        numbers,
        mappings,
        ledger_retention,
    })
}

fn finish(
    engine: &AwsEngine,
    destination: &Destination,
    handler: Arc<dyn Handler>,
    policy: RetryPolicy,
) -> App {
    let logged = Logged::new(&destination.name, handler, Arc::new(engine.deliveries()));
    App {
        handler: engine.claim_checked_shared(Arc::new(logged)),
        queue: Arc::new(engine.queue(&destination.queue_url, &destination.dlq_url)),
        policy,
    }
}

/// Cold start: settings, the destination's secret (one key of the stack's secret), clients.
pub async fn cold_start() -> Result<App, lambda_runtime::Error> {
    let sdk = wabridge_aws::sdk::lambda_config().await;
    let secrets = wabridge_aws::secrets::secrets().await?;
    let lookup = |name: &str| secrets.lookup(name).filter(|v| !v.trim().is_empty());
    let destination = Destination::from_lookup(lookup)?;
    let (policy, _) = config::retry_policies(lookup)?;
    let table = config::Settings::new(lookup).required(
        config::WABRIDGE_TABLE,
        "deliveries are logged there for wabridge replay",
    )?;
    let retention = wabridge_core::retention::content_retention(lookup)?;
    let secret = secrets
        .get(&destination.secret_key)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "destination {}: {} is not a key of the stack's secret (add it: infra/README.md)",
                destination.name, destination.secret_key
            )
        })?;
    // A relay uses the table only for the delivery log; records also read the registry and
    // identities and keep their ledger there.
    let engine = AwsEngine::new(sdk, table)
        .with_content_retention(retention)
        .with_claim_check(sdk, lookup(config::CLAIM_CHECK_BUCKET));
    let app = match destination.kind {
        DestinationKind::Relay => {
            let post = Arc::new(HttpRelay::new(&destination.url, RELAY_TIMEOUT)?);
            build(&engine, &destination, secret, post, policy)?
        }
        DestinationKind::Records => {
            let records = records(&engine, &destination, lookup).await?;
            build_records(&engine, &destination, secret, records, policy)?
        }
    };
    tracing::info!(destination = %destination.name, kind = destination.kind.as_str(), "relay ready");
    Ok(app)
}

/// Handles a batch; returns the messages that must stay on the queue.
pub async fn handle(app: &App, event: SqsEvent, deadline: Option<Instant>) -> SqsBatchResponse {
    let (queue, handler) = (app.queue.as_ref(), app.handler.as_ref());
    wabridge_aws::lambda::sqs_batch(queue, handler, event, CONCURRENCY, app.policy, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(
        pairs: &'a [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const OK: &[(&str, &str)] = &[
        ("DESTINATION_NAME", "bot-mx"),
        (
            "DESTINATION_URL",
            "https://bot.example.mx/webhook?token=abc",
        ),
        ("DESTINATION_SECRET_KEY", "BOT_MX_SECRET"),
        ("DESTINATION_QUEUE_URL", "http://q/bot"),
        ("DESTINATION_DLQ_URL", "http://q/bot-dlq"),
    ];

    fn with(change: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<_> = OK.iter().copied().filter(|(k, _)| *k != change.0).collect();
        pairs.push(change);
        pairs
    }

    #[test]
    fn settings_are_read_and_each_refusal_names_its_variable() {
        let d = Destination::from_lookup(lookup(OK)).unwrap();
        assert_eq!(d.name, "bot-mx");
        assert_eq!(d.kind, DestinationKind::Relay);
        assert_eq!(d.secret_key, "BOT_MX_SECRET");
        let refused = |pairs: Vec<(&'static str, &'static str)>| {
            Destination::from_lookup(lookup(&pairs))
                .unwrap_err()
                .to_string()
        };
        let e = refused(with(("DESTINATION_NAME", "Bot MX")));
        assert!(e.contains("DESTINATION_NAME"), "{e}");
        let d = Destination::from_lookup(lookup(&with(("DESTINATION_KIND", "records")))).unwrap();
        assert_eq!(d.kind, DestinationKind::Records);
        let e = refused(with(("DESTINATION_KIND", "record")));
        assert!(
            e.contains("DESTINATION_KIND") && e.contains("relay or records"),
            "{e}"
        );
        // Only the scheme of a bad URL is echoed: a URL may carry a token.
        let e = refused(with(("DESTINATION_URL", "ftp://u:pw@bot/x")));
        assert!(
            e.contains("DESTINATION_URL") && e.contains("ftp") && !e.contains("pw"),
            "{e}"
        );
        // A pasted-in secret is refused without echoing it.
        let e = refused(with(("DESTINATION_SECRET_KEY", "s3cr3t-value")));
        assert!(
            e.contains("DESTINATION_SECRET_KEY") && !e.contains("s3cr3t"),
            "{e}"
        );
        let missing: Vec<_> = OK
            .iter()
            .copied()
            .filter(|(k, _)| *k != "DESTINATION_DLQ_URL")
            .collect();
        assert!(refused(missing).contains("DESTINATION_DLQ_URL"));
    }
}
