//! The SDK's HTTP client: HTTP/1.1 on hyper-util's pooled client, TLS by rustls over ring with
//! the system's root certificates, plain HTTP for emulators (`AWS_ENDPOINT_URL=http://...`).
//!
//! Why not aws-smithy-http-client's client: it links HTTP/2 (h2) whatever it negotiates, about
//! 0.34 MB of code in each Lambda (docs/benchmarks.md). DynamoDB, SQS and Secrets Manager
//! answer HTTP/1.1, which is all this client offers (ALPN `http/1.1`).
//!
//! It honours the SDK's connect timeout (TCP and TLS handshake) and read timeout (until the
//! response head), and classifies failures as the SDK's own client does, so that the SDK's
//! retry policy sees the same timeouts, I/O errors and transient errors.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type BoxError = Box<dyn Error + Send + Sync>;

/// The HTTP client every SDK configuration of this crate uses.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(Https::default())
}

/// A connector of its own (and its own connection pool) with these timeouts, for the calls this
/// crate makes without an SDK client (S3, `crate::s3`).
pub(crate) fn connector(
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
) -> SharedHttpConnector {
    SharedHttpConnector::new(Connector::new(connect_timeout, read_timeout))
}

/// One connector (one connection pool) per distinct pair of timeouts the SDK asks for; in
/// practice one, as every client shares [`crate::sdk`]'s timeouts.
#[derive(Default)]
struct Https {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

/// Connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

impl fmt::Debug for Https {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Https(HTTP/1.1, rustls over ring)")
    }
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(key.0, key.1)))
            .clone()
    }
}

type Tls = hyper_rustls::HttpsConnector<TcpConnector>;

struct Connector {
    client: Client<ConnectTimeout<Tls>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let mut tcp = TcpConnector::new();
        // https:// URLs go through TLS below; the TCP connector must let them pass.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let mut builder = Client::builder(TokioExecutor::new());
        // Idle connections are closed by the pool's timer (90 s by default).
        builder.pool_timer(TokioTimer::new());
        let client = builder.build(ConnectTimeout {
            inner: tls,
            timeout: connect_timeout,
        });
        Connector {
            client,
            read_timeout,
        }
    }
}

/// rustls over ring, TLS 1.2 and 1.3, trusting the system's root certificates (read once per
/// process with rustls-native-certs).
fn tls_config() -> rustls::ClientConfig {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::warn!(errors = ?found.errors, "errors reading the system's root certificates");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (valid, _invalid) = roots.add_parsable_certificates(found.certs);
        if valid == 0 {
            tracing::warn!("no root certificate found: HTTPS requests will fail");
        }
        Arc::new(roots)
    });
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots.clone())
        .with_no_client_auth()
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let responding = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => responding.await.map_err(|e| classify(e.into()))?,
                Some(after) => match tokio::time::timeout(after, responding).await {
                    Ok(result) => result.map_err(|e| classify(e.into()))?,
                    Err(_) => {
                        return Err(ConnectorError::timeout(Box::new(TimedOut {
                            phase: "response",
                            after,
                        })))
                    }
                },
            };
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The connector with a deadline on connecting: TCP connect and TLS handshake together.
#[derive(Clone)]
struct ConnectTimeout<C> {
    inner: C,
    timeout: Option<Duration>,
}

impl<C> tower_service::Service<http::Uri> for ConnectTimeout<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            let Some(after) = timeout else {
                return connecting.await.map_err(Into::into);
            };
            match tokio::time::timeout(after, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(TimedOut {
                    phase: "connect",
                    after,
                }) as BoxError),
            }
        })
    }
}

#[derive(Debug)]
struct TimedOut {
    phase: &'static str,
    after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} timed out after {:?}", self.phase, self.after)
    }
}

impl Error for TimedOut {}

/// As aws-smithy-http-client classifies hyper's errors: timeouts, then I/O (connection refused,
/// reset, closed), user errors, and an incomplete response as a transient error; anything else
/// is left to the SDK's retry policy as an unknown error.
fn classify(err: BoxError) -> ConnectorError {
    if find::<TimedOut>(err.as_ref()).is_some() {
        return ConnectorError::timeout(err);
    }
    if let Some(e) = find::<hyper::Error>(err.as_ref()) {
        return if e.is_timeout() {
            ConnectorError::timeout(err)
        } else if e.is_user() {
            ConnectorError::user(err)
        } else if e.is_closed() || e.is_canceled() || find::<std::io::Error>(e).is_some() {
            ConnectorError::io(err)
        } else if e.is_incomplete_message() {
            ConnectorError::other(err, Some(ErrorKind::TransientError))
        } else {
            ConnectorError::other(err, None)
        };
    }
    if let Some(e) = find::<hyper_util::client::legacy::Error>(err.as_ref()) {
        if e.is_connect() || find::<std::io::Error>(e).is_some() {
            return ConnectorError::io(err);
        }
    }
    ConnectorError::other(err, None)
}

fn find<'a, E: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> HttpRequest {
        let request = http::Request::builder()
            .uri(url)
            .body(SdkBody::empty())
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    fn connector(connect: Option<Duration>, read: Option<Duration>) -> Connector {
        Connector::new(connect, read)
    }

    #[tokio::test]
    async fn answers_over_http_1_1_and_reuses_the_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // One connection serves both requests (keep-alive).
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut buf = [0u8; 1024];
                let n = socket.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            seen
        });
        let c = connector(Some(Duration::from_secs(2)), None);
        for _ in 0..2 {
            let response = c.call(request(&format!("http://{addr}/x"))).await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            // The body streams: read it to the end, as the SDK does.
            let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
                .collect()
                .await
                .unwrap();
            assert_eq!(body.into_bytes().as_ref(), b"ok");
        }
        let seen = server.await.unwrap();
        assert!(seen[0].starts_with("GET /x HTTP/1.1\r\n"), "{seen:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connector(Some(Duration::from_secs(2)), None)
            .call(request(&format!("http://{addr}/")))
            .await
            .unwrap_err();
        assert!(err.is_io(), "{err:?}");
    }

    #[tokio::test]
    async fn a_stalled_tls_handshake_is_a_connect_timeout() {
        // Accepts TCP but never answers the ClientHello.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let err = connector(Some(Duration::from_millis(200)), None)
            .call(request(&format!("https://localhost:{}/", addr.port())))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }

    #[tokio::test]
    async fn a_late_response_head_is_a_read_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let err = connector(None, Some(Duration::from_millis(200)))
            .call(request(&format!("http://{addr}/")))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }
}
