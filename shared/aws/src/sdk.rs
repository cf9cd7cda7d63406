//! AWS SDK configuration shared by the DynamoDB, SQS and Secrets Manager adapters, and the one
//! mapping of SDK errors to [`StoreError`].
//!
//! The configuration is loaded once per process (a Lambda cold start) from the standard AWS
//! environment: region, credentials from the execution role, and `AWS_ENDPOINT_URL`, which the
//! tests point at moto's server.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use wabridge_core::error::StoreError;

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

/// The SDK's loader with its HTTPS client: rustls over ring (the SDK's default, aws-lc-rs, is larger for the
/// same TLS), with the system's root certificates.
fn defaults() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// Loads a configuration from the environment (honours `AWS_ENDPOINT_URL`, `AWS_REGION`, the
/// Lambda execution role's credentials). Prefer [`sdk_config`], which loads it once.
pub async fn load_sdk_config() -> SdkConfig {
    defaults()
        .timeout_config(timeouts())
        .retry_config(retries())
        .load()
        .await
}

static SDK_CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// The process-wide configuration, loaded on first use.
pub async fn sdk_config() -> &'static SdkConfig {
    SDK_CONFIG.get_or_init(load_sdk_config).await
}

/// A configuration for an explicit endpoint with static dummy credentials: tests and local
/// tooling against moto's server, whatever the ambient AWS environment says.
pub async fn sdk_config_for_endpoint(endpoint_url: &str, region: &str) -> SdkConfig {
    defaults()
        .endpoint_url(endpoint_url)
        .region(Region::new(region.to_string()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "wabridge-static",
        ))
        .timeout_config(timeouts())
        .retry_config(retries())
        .load()
        .await
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

    #[test]
    fn timers_round_up_and_cap() {
        assert_eq!(whole_seconds(Duration::from_millis(1), 900), 1);
        assert_eq!(whole_seconds(Duration::ZERO, 900), 0);
        assert_eq!(whole_seconds(Duration::from_secs(5000), 900), 900);
    }
}
