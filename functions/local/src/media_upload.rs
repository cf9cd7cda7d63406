//! `POST /media` in `wabridge serve`: a business uploads a file it will send (an invoice, a
//! ticket, an image). The raw body is the file, `Content-Type` its MIME type, `?filename=` its
//! name (optional); a bearer API key with the `sends` scope, as for `POST /sends`.
//!
//! The body is streamed into the media store while it is hashed (never the whole file in
//! memory: a document may be 100 MB, far over the JSON routes' body limit), which is why this
//! route is served here and not by the core's `Api`, whose requests carry their body whole.
//! Answers `201 {"object", "sha256", "size", "mime_type", "kind", "filename"?}`; a file over
//! its kind's limit `413 media_too_large`, a type outside Meta's list `422
//! media_type_not_allowed`, each a JSON body naming the problem. What was written of a refused
//! or broken-off upload is removed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use axum::http::HeaderValue;
use futures::StreamExt;
use wabridge_core::audit::{action, Audit};
use wabridge_core::auth::{ApiKeys, Scope};
use wabridge_core::http::{ApiError, Method, Request, Response};
use wabridge_core::media::upload::{MediaLibrary, UploadError, Uploaded};
use wabridge_sqlite::{Db, LocalMediaStore, SqliteMediaIndex, SqliteMediaUploads};

use crate::serve::into_axum;

/// After a refusal, the rest of the body is read and dropped up to this much (within
/// [`DRAIN_TIME`]) before the answer, so the client sees the answer rather than a reset.
const DRAIN_MAX: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The media store (`DATA/media/<sha256>`, shared with inbound media) with what uploads said
/// of each file (the database), and the media index that keeps an uploaded file through the
/// content retention after its last upload or send.
pub fn library(db: &Db, store: Arc<LocalMediaStore>) -> MediaLibrary {
    MediaLibrary::new(store, Arc::new(SqliteMediaUploads::new(db.clone())))
        .with_index(Arc::new(SqliteMediaIndex::new(db.clone())))
}

struct Route {
    library: MediaLibrary,
    keys: Arc<ApiKeys>,
    audit: Audit,
}

/// The `/media` route, to merge before the catch-all handler.
pub fn router(library: MediaLibrary, keys: Arc<ApiKeys>, audit: Audit) -> axum::Router {
    axum::Router::new()
        .route("/media", axum::routing::any(handle))
        .with_state(Arc::new(Route {
            library,
            keys,
            audit,
        }))
}

async fn handle(
    State(route): State<Arc<Route>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // The core's request without its body: for the key check and the query.
    let head = Request {
        method: Method::parse(parts.method.as_str()),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: Vec::new(),
    };
    if head.method != Method::Post {
        let answer = ApiError::MethodNotAllowed(head.path.clone())
            .into_response()
            .with_header("allow", "POST");
        return refuse(body, declared, answer).await;
    }
    let caller = match route.keys.authorize(&head, Scope::Sends, "POST /media") {
        Ok(caller) => caller,
        Err(e) => return refuse(body, declared, e.into_response()).await,
    };
    let filename = head.query_param("filename");
    let upload = route
        .library
        .begin(head.header("content-type"), filename.as_deref(), declared)
        .await;
    let mut upload = match upload {
        Ok(u) => u,
        Err(e) => return refuse(body, declared, answer(&e)).await,
    };
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let received = upload.received();
                upload.abort().await;
                let e = UploadError::Interrupted {
                    received,
                    reason: e.to_string(),
                };
                tracing::info!(received, "media upload broke off; nothing stored");
                return into_axum(answer(&e));
            }
        };
        if let Err(e) = upload.write(&chunk).await {
            // `write` removed what was written.
            tracing::info!(code = e.code(), "media upload refused; nothing stored");
            return drained(stream, answer(&e)).await;
        }
    }
    match upload.finish().await {
        Ok(info) => {
            tracing::info!(size = info.size, mime_type = %info.mime_type, "media uploaded");
            let subject = info.sha256.hex();
            route
                .audit
                .note(
                    &Audit::key_actor(&caller.key_id),
                    action::MEDIA_UPLOAD,
                    Some(&subject),
                )
                .await;
            into_axum(Response::json(201, &Uploaded::from(&info)))
        }
        Err(e) => into_axum(answer(&e)),
    }
}

/// The HTTP answer of a refused upload (see [`UploadError::into_response`]).
fn answer(e: &UploadError) -> Response {
    e.into_response()
}

/// Answers before the body was read: drains it first (bounded) unless it is declared too large
/// to, and closes the connection either way.
async fn refuse(body: Body, declared: Option<u64>, answer: Response) -> axum::response::Response {
    if declared.is_some_and(|d| d > DRAIN_MAX) {
        return closing(into_axum(answer));
    }
    drained(body.into_data_stream(), answer).await
}

/// Reads and drops what is left of `body` (at most [`DRAIN_MAX`] bytes, within
/// [`DRAIN_TIME`]), then answers and closes the connection.
async fn drained(mut stream: BodyDataStream, answer: Response) -> axum::response::Response {
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    closing(into_axum(answer))
}

fn closing(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    response
}
