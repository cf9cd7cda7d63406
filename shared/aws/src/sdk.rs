//! AWS SDK configuration shared by the DynamoDB, SQS and Secrets Manager adapters, and the one
//! mapping of SDK errors to [`StoreError`].
//!
//! Two loaders, one per use:
//!
//! - [`lambda_config`], for the Lambdas: credentials and region from the variables Lambda sets
//!   for the execution role (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_REGION`), and the endpoint from `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`),
//!   which the tests and `sam local` point at an emulator. It reads no file and calls no
//!   credential service, so the packages do not link aws-config's default chain (STS, SSO,
//!   IMDS, profile files, web identity: about 0.24 MB of ingest's zip, docs/benchmarks.md).
//! - `chain_config` (feature `credential-chain`), for the `wabridge` CLI on an operator's
//!   machine: aws-config's standard chain, profiles and SSO included.
//!
//! Both are loaded once per process and use the same HTTPS client, timeouts and retries.

use std::time::Duration;

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, IdentityCache, Region, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_types::origin::Origin;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use tokio::sync::OnceCell;

use wabridge_core::error::StoreError;

/// The SDK's shared configuration (what the service clients are built from).
pub use aws_types::SdkConfig;

/// Per-attempt and whole-operation limits: ingest must answer Meta well within its webhook
/// timeout, and a hung connection must become a retryable error rather than a stuck request.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

fn retries() -> RetryConfig {
    // Standard mode: exponential backoff with jitter on throttling and transient errors.
    RetryConfig::standard().with_max_attempts(3)
}

/// What every configuration has, whatever the loader: the client, timeouts, retries (marked as
/// set in code, as aws-config does, so that no service replaces them with its own defaults), a
/// lazy identity cache and Tokio's sleep.
fn base(region: Option<Region>) -> aws_types::sdk_config::Builder {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(crate::https::https_client())
        .timeout_config(timeouts())
        .identity_cache(IdentityCache::lazy().build())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .region(region);
    builder.insert_origin("retry_config", Origin::shared_config());
    builder.retry_config(retries())
}

/// Credentials from Lambda's environment, read on each call as aws-config's environment
/// provider does: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (or `SECRET_ACCESS_KEY`),
/// `AWS_SESSION_TOKEN` and `AWS_ACCOUNT_ID` when set. Blank counts as unset.
#[derive(Debug, Default)]
struct EnvCredentials;

impl EnvCredentials {
    fn load(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, CredentialsError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let missing = |name: &str| {
            CredentialsError::not_loaded(format!(
                "{name} is not set (credentials come from Lambda's environment)"
            ))
        };
        let access_key = var("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?;
        let secret_key = var("AWS_SECRET_ACCESS_KEY")
            .or_else(|| var("SECRET_ACCESS_KEY"))
            .ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?;
        let mut builder = Credentials::builder()
            .access_key_id(access_key)
            .secret_access_key(secret_key)
            .provider_name("EnvironmentVariable");
        builder.set_session_token(var("AWS_SESSION_TOKEN").map(|t| t.trim().to_string()));
        builder.set_account_id(var("AWS_ACCOUNT_ID").map(|a| a.trim().into()));
        Ok(builder.build())
    }
}

impl ProvideCredentials for EnvCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(EnvCredentials::load(|n| std::env::var(n).ok()))
    }
}

/// Service-specific endpoints from the environment (`AWS_ENDPOINT_URL_DYNAMODB`, ...), which
/// take precedence over `AWS_ENDPOINT_URL`, as with aws-config (without its profile files).
#[derive(Debug)]
struct EnvServiceConfig {
    ignore_endpoint_urls: bool,
}

impl LoadServiceConfig for EnvServiceConfig {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if self.ignore_endpoint_urls && key.env() == ENDPOINT_URL {
            return None;
        }
        let name = service_variable(key.env(), key.service_id());
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// `AWS_ENDPOINT_URL` and `Secrets Manager` -> `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
fn service_variable(variable: &str, service_id: &str) -> String {
    let service = service_id.to_ascii_uppercase().replace(' ', "_");
    format!("{variable}_{service}")
}

/// The configuration of a Lambda, from the variables Lambda sets: region from `AWS_REGION`
/// (else `AWS_DEFAULT_REGION`), credentials from the environment (`AWS_ACCESS_KEY_ID`, ...), the
/// endpoint from `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_<SERVICE>` unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`. Prefer [`lambda_config`], which loads it
/// once.
pub fn load_lambda_config() -> SdkConfig {
    load_lambda_config_from(|n| std::env::var(n).ok())
}

fn load_lambda_config_from(var: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .map(Region::new);
    let ignore_endpoint_urls = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let mut builder = base(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvCredentials))
        .service_config(EnvServiceConfig {
            ignore_endpoint_urls,
        });
    if !ignore_endpoint_urls {
        if let Some(url) = var(ENDPOINT_URL) {
            builder.insert_origin("endpoint_url", Origin::shared_environment_variable());
            builder.set_endpoint_url(Some(url));
        }
    }
    builder.build()
}

static LAMBDA_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The Lambda's process-wide configuration ([`load_lambda_config`]), loaded on first use.
pub async fn lambda_config() -> &'static SdkConfig {
    LAMBDA_CONFIG
        .get_or_init(|| async { load_lambda_config() })
        .await
}

/// aws-config's standard chain (environment, profile files, SSO, web identity, ECS, IMDS) with
/// this module's client, timeouts and retries: the CLI's configuration.
#[cfg(feature = "credential-chain")]
pub async fn load_chain_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::https::https_client())
        .timeout_config(timeouts())
        .retry_config(retries())
        .load()
        .await
}

#[cfg(feature = "credential-chain")]
static CHAIN_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The CLI's process-wide configuration ([`load_chain_config`]), loaded on first use.
#[cfg(feature = "credential-chain")]
pub async fn chain_config() -> &'static SdkConfig {
    CHAIN_CONFIG.get_or_init(load_chain_config).await
}

/// A configuration for an explicit endpoint with static dummy credentials: tests and local
/// tooling against moto's server, whatever the ambient AWS environment says.
pub fn sdk_config_for_endpoint(endpoint_url: &str, region: &str) -> SdkConfig {
    let mut builder = base(Some(Region::new(region.to_string()))).credentials_provider(
        SharedCredentialsProvider::new(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "wabridge-static",
        )),
    );
    builder.insert_origin("endpoint_url", Origin::shared_config());
    builder.endpoint_url(endpoint_url).build()
}

/// Error codes that mean the request itself is wrong (a bug, or an item over a size limit):
/// retrying the same call cannot help.
const INVALID_REQUEST_CODES: &[&str] = &[
    "ValidationException",
    "SerializationException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MissingParameter",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "InvalidMessageContents",
    "BatchRequestTooLong",
    "BatchEntryIdsNotDistinct",
    "InvalidBatchEntryId",
    "EmptyBatchRequest",
    "TooManyEntriesInBatchRequest",
    "ItemCollectionSizeLimitExceededException",
    "AWS.SimpleQueueService.BatchRequestTooLong",
    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "AWS.SimpleQueueService.InvalidBatchEntryId",
    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
];

const NOT_FOUND_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "ReceiptHandleIsInvalid",
    "InvalidReceiptHandle",
];

/// Maps an SDK error to the port error.
///
/// Throttling, 5xx, timeouts, connection failures, and also unknown and authorisation errors
/// become `Unavailable`: the caller answers 503 or retries later, so nothing is acknowledged and
/// nothing lost while an operator fixes a role or a quota. A lost conditional write is a
/// `Conflict`; a missing table/queue/receipt is `NotFound`; a request the service calls invalid
/// is `Corrupt` (a bug: retrying the same call cannot succeed).
pub fn store_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = format!("{operation}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            if code == "ConditionalCheckFailedException" {
                StoreError::Conflict(detail)
            } else if NOT_FOUND_CODES.contains(&code) {
                StoreError::NotFound(detail)
            } else if status < 500 && INVALID_REQUEST_CODES.contains(&code) {
                StoreError::Corrupt(detail)
            } else {
                StoreError::Unavailable(detail)
            }
        }
        // Timeouts, dispatch (connection) failures, unparseable responses: transient.
        _ => StoreError::Unavailable(detail),
    }
}

/// Seconds for SQS timers (visibility, delay), rounded up and capped at `max`.
pub(crate) fn whole_seconds(d: Duration, max: u64) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(max) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn lambda_config_reads_region_and_endpoint_from_the_environment() {
        let c = load_lambda_config_from(vars(&[
            ("AWS_REGION", "sa-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]));
        assert_eq!(c.region().map(|r| r.as_ref()), Some("sa-east-1"));
        assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(c.credentials_provider().is_some());
        assert!(c.http_client().is_some());
        assert_eq!(c.retry_config().map(|r| r.max_attempts()), Some(3));
        assert!(!c.get_origin("endpoint_url").is_client_config());

        let c = load_lambda_config_from(vars(&[("AWS_DEFAULT_REGION", "us-east-2")]));
        assert_eq!(c.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(c.endpoint_url(), None);

        let c = load_lambda_config_from(vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]));
        assert_eq!(c.region(), None);
        assert_eq!(c.endpoint_url(), None);
    }

    #[test]
    fn service_endpoints_come_from_their_own_variables() {
        assert_eq!(
            service_variable("AWS_ENDPOINT_URL", "DynamoDB"),
            "AWS_ENDPOINT_URL_DYNAMODB"
        );
        assert_eq!(
            service_variable("AWS_ENDPOINT_URL", "Secrets Manager"),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        );
    }

    #[test]
    fn credentials_come_from_lambdas_variables() {
        let creds = EnvCredentials::load(vars(&[
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]))
        .unwrap();
        assert_eq!(creds.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(creds.secret_access_key(), "secret");
        assert_eq!(creds.session_token(), Some("token"));

        let creds = EnvCredentials::load(vars(&[
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", " "),
        ]))
        .unwrap();
        assert_eq!(creds.session_token(), None, "blank is unset");

        let err = EnvCredentials::load(vars(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")])).unwrap_err();
        assert!(
            matches!(err, CredentialsError::CredentialsNotLoaded(_)),
            "{err:?}"
        );
        assert!(
            format!("{err:?}").contains("AWS_SECRET_ACCESS_KEY"),
            "{err:?}"
        );
    }

    #[test]
    fn timers_round_up_and_cap() {
        assert_eq!(whole_seconds(Duration::from_millis(1), 900), 1);
        assert_eq!(whole_seconds(Duration::ZERO, 900), 0);
        assert_eq!(whole_seconds(Duration::from_secs(5000), 900), 900);
    }
}
