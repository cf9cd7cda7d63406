//! The claim-check's object store over an S3 bucket (`wabridge_core::claim_check`).
//!
//! Three object calls (PUT, GET, DELETE), signed with SigV4 and sent through this crate's HTTPS
//! client (`crate::signed`), rather than through aws-sdk-s3: linking that
//! client took ingest's package from 2.84 to 3.74 MB (x86_64, measured 2026-12-03), over its
//! 3 MB goal (docs/benchmarks.md), for calls that need none of its features. Keys are always
//! `events/<hex>` or `done/<hex>`, so no key needs escaping. The same signed calls, and a
//! presigned GET, serve the media bucket where the gateway only links to and erases files
//! (`crate::s3_media_links`).
//!
//! The bucket is the template's `ClaimCheckBucket`: KMS-encrypted by default (objects are
//! written without per-request encryption headers, so the bucket's key applies), public access
//! blocked, TLS only, and a lifecycle rule that ends every object after the dead-letter queue's
//! retention. Errors: a 5xx, a 429, a timeout or a connection failure is retried here (three
//! attempts), then `Unavailable`; so is a 403 or a missing bucket (`NoSuchBucket`), which an
//! operator fixes while the event waits within its retry horizon. Only a request S3 calls
//! malformed (another 4xx) is `Corrupt`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use http::Method;

use crate::sdk::SdkConfig;
use crate::signed::{pause_before, Failure, SignedClient};
use wabridge_core::claim_check::BlobStore;
use wabridge_core::error::StoreError;

/// Attempts per call (a transient failure waits [`pause_before`] the next).
const ATTEMPTS: u32 = 3;
/// As the SDK clients' timeouts (`crate::sdk`): connect, response head, and the whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(4);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct S3Blobs {
    /// The bucket's URL without a trailing slash: path style under an endpoint URL (an emulator
    /// on 127.0.0.1 has no per-bucket host names), AWS's virtual host otherwise.
    base: String,
    bucket: String,
    client: SignedClient,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl S3Blobs {
    /// A client for `bucket` with the configuration's region, credentials and endpoint
    /// (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`).
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> S3Blobs {
        let bucket = bucket.into();
        let client = SignedClient::new(sdk, "s3", CONNECT_TIMEOUT, READ_TIMEOUT);
        let region = client.region().map(str::to_string);
        let endpoint = SignedClient::endpoint(sdk, "S3");
        let base = match endpoint {
            Some(url) => format!("{}/{bucket}", url.trim_end_matches('/')),
            // Names with dots do not match S3's wildcard certificate as a host: path style.
            None if bucket.contains('.') => format!(
                "https://s3.{}.amazonaws.com/{bucket}",
                region.as_deref().unwrap_or("us-east-1")
            ),
            None => format!(
                "https://{bucket}.s3.{}.amazonaws.com",
                region.as_deref().unwrap_or("us-east-1")
            ),
        };
        S3Blobs {
            base,
            bucket,
            client,
        }
    }

    /// A presigned GET of `key` that lives `ttl`, with `query` (S3's `response-*` overrides)
    /// signed into it. Signing is local: S3 answers the URL's GET itself (404 for a key that is
    /// not there, 403 once it expired or the signing credentials did).
    pub(crate) async fn presign_get(
        &self,
        key: &str,
        query: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<String, StoreError> {
        self.presign_at(Method::GET, key, query, &[], ttl, SystemTime::now())
            .await
    }

    /// A presigned PUT of `key` that lives `ttl`, with `headers` signed into it: the uploader
    /// must send exactly these (S3 refuses the PUT otherwise), so a signed `content-length`
    /// and `x-amz-checksum-sha256` bind the URL to one file.
    pub(crate) async fn presign_put(
        &self,
        key: &str,
        headers: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<String, StoreError> {
        self.presign_at(Method::PUT, key, &[], headers, ttl, SystemTime::now())
            .await
    }

    /// A presigned `method` on `key`, signed as of `time`.
    async fn presign_at(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        ttl: Duration,
        time: SystemTime,
    ) -> Result<String, StoreError> {
        let (region, identity) = self.client.identity().await.map_err(Failure::into_store)?;
        let mut url = format!("{}/{key}", self.base);
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&query_escape(name));
            url.push('=');
            url.push_str(&query_escape(value));
        }
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(ttl);
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("signing parameters: {e}")))?
            .into();
        // A presigned URL carries no body: S3 checks none (`UNSIGNED-PAYLOAD`).
        let signable = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| StoreError::Invalid(format!("presigning {key}: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| StoreError::Invalid(format!("presigning {key}: {e}")))?
            .into_parts();
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(())
            .map_err(|e| StoreError::Invalid(format!("presigning {key}: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.uri().to_string())
    }

    /// S3's signing: the payload's SHA-256 (S3 checks the body against it), the path as is.
    fn settings() -> SigningSettings {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings
    }

    /// The headers of a request with `extra` ones: its length, and a JSON type for a PUT of
    /// the claim-check's own objects.
    fn headers<'a>(
        method: &Method,
        length: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut headers = vec![("content-length", length)];
        if method == Method::PUT && extra.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        headers.extend_from_slice(extra);
        headers
    }

    /// One signed request with `extra` headers; S3's status, headers and body (unread).
    async fn send(
        &self,
        method: &Method,
        key: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Headers, SdkBody), Failure> {
        let url = format!("{}/{key}", self.base);
        let length = body.len().to_string();
        let headers = S3Blobs::headers(method, &length, extra);
        self.client
            .send(method, &url, &headers, body, S3Blobs::settings())
            .await
    }

    /// [`Self::send`] with the answer's body read whole.
    async fn once(
        &self,
        method: &Method,
        key: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), Failure> {
        let url = format!("{}/{key}", self.base);
        let length = body.len().to_string();
        let headers = S3Blobs::headers(method, &length, extra);
        self.client
            .send_read(method, &url, &headers, body, S3Blobs::settings())
            .await
    }

    /// CopyObject of `from` (in this bucket) to `to`; `replace_metadata` allows a copy onto
    /// itself (which rewrites the object: its lifecycle days count from now).
    pub(crate) async fn copy(
        &self,
        from: &str,
        to: &str,
        replace_metadata: bool,
    ) -> Result<(), StoreError> {
        let source = format!("{}/{from}", self.bucket);
        let mut headers = vec![("x-amz-copy-source", source.as_str())];
        if replace_metadata {
            headers.push(("x-amz-metadata-directive", "REPLACE"));
        }
        match self
            .call_with("CopyObject", Method::PUT, to, &headers, &[])
            .await?
        {
            (200, body) if !String::from_utf8_lossy(&body).contains("<Error>") => Ok(()),
            // A copy can fail after S3 sent its 200 (the error is then in the body): S3's own
            // trouble, worth another attempt.
            (200, body) => Err(StoreError::Unavailable(format!(
                "CopyObject {from} to {to}: {}",
                error_code(&body)
            ))),
            (status, body) => Err(refused("CopyObject", to, status, &body)),
        }
    }

    /// HeadObject: S3's status and, on 200, the object's `Content-Length`. Retried as
    /// [`Self::call`] is.
    pub(crate) async fn head(&self, key: &str) -> Result<(u16, Option<u64>), StoreError> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                pause_before(attempt).await;
            }
            let sent = tokio::time::timeout(CALL_TIMEOUT, self.send(&Method::HEAD, key, &[], &[]));
            match sent.await {
                Ok(Ok((status, _, _))) if status == 429 || status >= 500 => {
                    last = format!("HTTP {status}");
                }
                Ok(Ok((status, headers, _))) => {
                    let size = headers.get("content-length").and_then(|v| v.parse().ok());
                    return Ok((status, size));
                }
                Ok(Err(Failure::Transient(e))) => last = e,
                Ok(Err(Failure::Config(e))) => return Err(StoreError::Unavailable(e)),
                Err(_) => last = format!("no answer within {CALL_TIMEOUT:?}"),
            }
        }
        Err(StoreError::Unavailable(format!(
            "HeadObject {key}: {last} (after {ATTEMPTS} attempts)"
        )))
    }

    /// A GetObject whose body is streamed: `None` for a key S3 does not hold, else its
    /// `Content-Length` and body. One attempt (the reader cannot be replayed); a failure is
    /// `Unavailable`, for the caller's retry.
    pub(crate) async fn open(&self, key: &str) -> Result<Option<(u64, ByteStream)>, StoreError> {
        let sent = tokio::time::timeout(CALL_TIMEOUT, self.send(&Method::GET, key, &[], &[]))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "GetObject {key}: no answer within {CALL_TIMEOUT:?}"
                ))
            })?;
        let (status, headers, body) = sent.map_err(Failure::into_store)?;
        let read = |body| async {
            ByteStream::new(body)
                .collect()
                .await
                .map(|b| b.into_bytes())
        };
        match status {
            200 => {
                let size = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("GetObject {key}: no Content-Length"))
                    })?;
                Ok(Some((size, ByteStream::new(body))))
            }
            _ => {
                let answer = read(body).await.map(|b| b.to_vec()).unwrap_or_default();
                if status == 404 && error_code(&answer) == "NoSuchKey" {
                    Ok(None)
                } else {
                    Err(refused("GetObject", key, status, &answer))
                }
            }
        }
    }

    /// A call with its retries: S3's status and body, or the store error it came to.
    pub(crate) async fn call(
        &self,
        operation: &str,
        method: Method,
        key: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), StoreError> {
        self.call_with(operation, method, key, &[], body).await
    }

    /// [`Self::call`] with `extra` headers signed and sent (a copy's source, a checksum).
    pub(crate) async fn call_with(
        &self,
        operation: &str,
        method: Method,
        key: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), StoreError> {
        let attempts = async {
            let mut last = String::new();
            for attempt in 1..=ATTEMPTS {
                if attempt > 1 {
                    pause_before(attempt).await;
                }
                match self.once(&method, key, extra, body).await {
                    Ok((status, body)) if status == 429 || status >= 500 => {
                        last = format!("HTTP {status}: {}", error_code(&body));
                    }
                    Ok(answer) => return Ok(answer),
                    Err(Failure::Transient(e)) => last = e,
                    Err(Failure::Config(e)) => return Err(StoreError::Unavailable(e)),
                }
            }
            Err(StoreError::Unavailable(format!(
                "{operation} {key}: {last} (after {ATTEMPTS} attempts)"
            )))
        };
        tokio::time::timeout(CALL_TIMEOUT, attempts)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{operation} {key}: no answer within {CALL_TIMEOUT:?}"
                )))
            })
    }
}

/// A query string's name or value as S3 reads it: unreserved characters as they are, every
/// other byte `%XX` (a MIME type's `/` and `+` included).
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `<Code>` of S3's XML error body, or its start when there is none.
pub(crate) fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text
        .split_once("<Code>")
        .and_then(|(_, r)| r.split_once("</Code>"))
    {
        Some((code, _)) => code.to_string(),
        None => text.chars().take(120).collect(),
    }
}

/// The store error of an answer that is not a success.
pub(crate) fn refused(operation: &str, key: &str, status: u16, body: &[u8]) -> StoreError {
    let code = error_code(body);
    let detail = format!("{operation} {key}: HTTP {status} {code}");
    // Denied, a missing bucket, an expired token: fixed by an operator, so the event waits.
    if matches!(status, 401 | 403 | 404) || code == "NoSuchBucket" {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Corrupt(detail)
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        match self.call("PutObject", Method::PUT, key, &body).await? {
            (200, _) => Ok(()),
            (status, body) => Err(refused("PutObject", key, status, &body)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.call("GetObject", Method::GET, key, &[]).await? {
            (200, body) => Ok(Some(body)),
            (404, body) if error_code(&body) == "NoSuchKey" => Ok(None),
            (status, body) => Err(refused("GetObject", key, status, &body)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        // S3 answers 204 whether or not the key existed.
        match self.call("DeleteObject", Method::DELETE, key, &[]).await? {
            (200 | 204, _) => Ok(()),
            (status, body) => Err(refused("DeleteObject", key, status, &body)),
        }
    }
}

#[cfg(test)]
mod tests;
