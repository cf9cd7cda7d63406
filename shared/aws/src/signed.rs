//! One SigV4-signed AWS call over this crate's HTTPS client ([`crate::https`]), for the calls
//! made without an SDK client: S3's object calls ([`crate::s3`]) and SNS's PublishBatch
//! ([`crate::sns`]), which keep ingest's package small. aws-sigv4 (the SDK's own signer) signs
//! with the region and credentials of the SDK configuration; the caller chooses the signing
//! settings (S3 signs its payload's SHA-256 and its path as is) and handles the answer.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_types::service_config::ServiceConfigKey;
use http::Method;

use crate::sdk::SdkConfig;
use wabridge_core::error::StoreError;

/// Why a signed call got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt (connection, timeout, reading the answer).
    Transient(String),
    /// Configuration (region, credentials, a request that cannot be signed): no attempt can
    /// succeed until it is fixed.
    Config(String),
}

impl Failure {
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Failure::Transient(e) | Failure::Config(e) => StoreError::Unavailable(e),
        }
    }
}

/// The wait before attempt `attempt` (from 2) of a call that failed transiently: the queue
/// consumers' schedule ([`wabridge_core::retry::backoff`], jittered so that callers that failed
/// together do not retry together).
pub(crate) async fn pause_before(attempt: u32) {
    let wait = wabridge_core::retry::backoff(attempt.saturating_sub(1), None);
    tokio::time::sleep(wait).await;
}

/// A service's signer and sender.
#[derive(Clone)]
pub(crate) struct SignedClient {
    /// The signing name (`s3`, `sns`).
    service: &'static str,
    region: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
    connector: SharedHttpConnector,
}

impl SignedClient {
    /// Signs as `service` with the configuration's region and credentials; a connector of its
    /// own with these timeouts.
    pub(crate) fn new(
        sdk: &SdkConfig,
        service: &'static str,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> SignedClient {
        SignedClient {
            service,
            region: sdk.region().map(|r| r.to_string()),
            credentials: sdk.credentials_provider(),
            connector: crate::https::connector(Some(connect_timeout), Some(read_timeout)),
        }
    }

    /// The endpoint URL the configuration gives the service `service_id` (`AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL_SNS`, else `AWS_ENDPOINT_URL`), if any.
    pub(crate) fn endpoint(sdk: &SdkConfig, service_id: &str) -> Option<String> {
        sdk.service_config()
            .and_then(|c| {
                let key = ServiceConfigKey::builder()
                    .service_id(service_id)
                    .env("AWS_ENDPOINT_URL")
                    .profile("endpoint_url")
                    .build()
                    .ok()?;
                c.load_config(key)
            })
            .or_else(|| sdk.endpoint_url().map(str::to_string))
    }

    pub(crate) fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The region and the credentials requests are signed with.
    pub(crate) async fn identity(&self) -> Result<(&str, Identity), Failure> {
        let region = self
            .region
            .as_deref()
            .ok_or_else(|| Failure::Config("no AWS region configured (AWS_REGION)".into()))?;
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| Failure::Config("no AWS credentials configured".into()))?;
        let identity: Identity = provider
            .provide_credentials()
            .await
            .map_err(|e| Failure::Config(format!("AWS credentials: {e}")))?
            .into();
        Ok((region, identity))
    }

    /// Signs (with `settings`, as of now) and sends one request with `headers`; the status,
    /// headers and body (unread) of the answer.
    pub(crate) async fn send(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        settings: SigningSettings,
    ) -> Result<(u16, Headers, SdkBody), Failure> {
        let (region, identity) = self.identity().await?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Failure::Config(format!("signing parameters: {e}")))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Failure::Config(format!("signing {url}: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Failure::Config(format!("signing {url}: {e}")))?
            .into_parts();
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder
            .body(SdkBody::from(body.to_vec()))
            .map_err(|e| Failure::Config(format!("request {url}: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        let request = HttpRequest::try_from(request)
            .map_err(|e| Failure::Config(format!("request {url}: {e}")))?;
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|e| Failure::Transient(format!("{e}")))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        Ok((status, headers, response.into_body()))
    }

    /// [`Self::send`] with the answer's body read whole.
    pub(crate) async fn send_read(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        settings: SigningSettings,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let (status, _, body) = self.send(method, url, headers, body, settings).await?;
        let bytes = ByteStream::new(body)
            .collect()
            .await
            .map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?
            .into_bytes()
            .to_vec();
        Ok((status, bytes))
    }
}
