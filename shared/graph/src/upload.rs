//! `POST /{version}/{phone-number-id}/media`: the sender's upload of a stored file, as
//! `multipart/form-data` with `messaging_product=whatsapp`, `type` (the MIME type) and `file`
//! (with its content type), streamed from the store: the body is built part by part around
//! the file's bytes, never the whole file in memory. Implements
//! `wabridge_core::sends::media::MediaUploadApi`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};
use wabridge_core::sends::classify::SendFailure;
use wabridge_core::sends::graph::GraphConfig;
use wabridge_core::sends::media::{MediaUploadApi, OutgoingFile};
use wabridge_core::sends::template_sync::SyncError;

use crate::{http_client, json_call};

/// Largest answer read (`{"id": "..."}`).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// Bytes read from the store per chunk of the body.
const CHUNK: usize = 64 * 1024;
/// An upload's time: this much, plus a second per [`BYTES_PER_SECOND`] of file (a 100 MB
/// document gets about two minutes).
const BASE_TIMEOUT: Duration = Duration::from_secs(20);
const BYTES_PER_SECOND: u64 = 1024 * 1024;

/// The upload client. One per process, cheap to clone.
#[derive(Clone)]
pub struct GraphUploads {
    http: reqwest::Client,
    config: Arc<GraphConfig>,
}

impl std::fmt::Debug for GraphUploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("GraphUploads")
            .field("url", &self.url())
            .finish()
    }
}

impl GraphUploads {
    /// Uploads as the number and token of `config` (the sender's). The client has no overall
    /// timeout: each upload gets one by its size.
    pub fn new(config: GraphConfig) -> GraphUploads {
        GraphUploads {
            http: http_client(Duration::from_secs(24 * 3600)),
            config: Arc::new(config),
        }
    }

    /// `{base}/{version}/{phone-number-id}/media`.
    pub fn url(&self) -> String {
        format!(
            "{}/{}/{}/media",
            self.config.base_url.trim_end_matches('/'),
            self.config.version.trim_matches('/'),
            self.config.phone_number_id
        )
    }
}

#[async_trait]
impl MediaUploadApi for GraphUploads {
    fn phone_number_id(&self) -> &str {
        &self.config.phone_number_id
    }

    async fn upload(&self, file: OutgoingFile) -> Result<String, SendFailure> {
        let size = file.size;
        let boundary = format!("wabridge-{}", uuid::Uuid::new_v4().simple());
        let body = MultipartBody::new(&boundary, file);
        let timeout = BASE_TIMEOUT + Duration::from_secs(size / BYTES_PER_SECOND);
        let request = self
            .http
            .post(self.url())
            .timeout(timeout)
            .bearer_auth(&self.config.access_token)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(reqwest::Body::wrap(body));
        let answer = json_call(request, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                SyncError::Graph(f) => f,
                other => SendFailure::Retry {
                    code: None,
                    reason: format!("the media endpoint's answer: {other}"),
                    retry_after: None,
                },
            })?;
        match answer.get("id").and_then(Value::as_str) {
            Some(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
            _ => Err(SendFailure::Retry {
                code: None,
                reason: "the media endpoint answered without an id".into(),
                retry_after: None,
            }),
        }
    }
}

/// A file part's name in `Content-Disposition`: printable ASCII without quotes or backslashes
/// (the name the recipient sees goes in the message, not here).
fn part_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The multipart body: the form fields and the file part's head, the file streamed from the
/// store, the closing boundary. Its length is exact, so it goes with a `Content-Length`.
struct MultipartBody {
    head: Option<Bytes>,
    /// Behind a mutex only to be `Sync` (reqwest's bodies must be); never contended.
    file: Mutex<Pin<Box<dyn AsyncRead + Send>>>,
    /// File bytes still to read.
    remaining: u64,
    tail: Option<Bytes>,
}

impl MultipartBody {
    fn new(boundary: &str, file: OutgoingFile) -> MultipartBody {
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{mime}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: {mime}\r\n\r\n",
            mime = file.mime_type,
            name = part_name(&file.filename),
        );
        MultipartBody {
            head: Some(Bytes::from(head)),
            file: Mutex::new(file.body),
            remaining: file.size,
            tail: Some(Bytes::from(format!("\r\n--{boundary}--\r\n"))),
        }
    }

    fn len(&self) -> u64 {
        let part = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        part(&self.head) + self.remaining + part(&self.tail)
    }
}

impl http_body::Body for MultipartBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if this.remaining > 0 {
            let file = this.file.get_mut().unwrap_or_else(|p| p.into_inner());
            let mut buf = vec![0u8; CHUNK.min(this.remaining as usize)];
            let mut read = ReadBuf::new(&mut buf);
            return match file.as_mut().poll_read(cx, &mut read) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        // The stored file is shorter than it said: never send a short part.
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the stored file ended before its size",
                        ))));
                    }
                    this.remaining -= n as u64;
                    buf.truncate(n);
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
                }
            };
        }
        Poll::Ready(this.tail.take().map(|tail| Ok(Frame::data(tail))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.remaining == 0 && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a body to its end: its bytes, or the first error.
    async fn collect(mut body: MultipartBody) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        std::future::poll_fn(|cx| loop {
            match http_body::Body::poll_frame(Pin::new(&mut body), cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    out.extend_from_slice(frame.data_ref().expect("data frames"))
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await?;
        Ok(out)
    }

    fn file(bytes: &'static [u8], name: &str) -> OutgoingFile {
        OutgoingFile {
            mime_type: "application/pdf".into(),
            filename: name.into(),
            size: bytes.len() as u64,
            body: Box::pin(bytes),
        }
    }

    #[tokio::test]
    async fn the_body_is_metas_form_with_the_file_byte_for_byte() {
        let pdf: &'static [u8] = b"%PDF-1.4\r\n--not-a-boundary\r\n%%EOF";
        let body = MultipartBody::new("b0undary", file(pdf, "fac\"tura\n1042.pdf"));
        let len = body.len();
        let out = collect(body).await.unwrap();
        assert_eq!(out.len() as u64, len, "the declared length is the real one");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(
            "--b0undary\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
        ));
        assert!(text
            .contains("Content-Disposition: form-data; name=\"type\"\r\n\r\napplication/pdf\r\n"));
        assert!(text.contains(
            "name=\"file\"; filename=\"fac_tura_1042.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        ));
        let start = out.windows(4).position(|w| w == b"%PDF").unwrap();
        assert_eq!(&out[start..start + pdf.len()], pdf);
        assert!(text.ends_with("\r\n--b0undary--\r\n"));
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_size_fails_the_body() {
        let mut f = file(b"short", "a.pdf");
        f.size = 10;
        let e = collect(MultipartBody::new("b", f)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
