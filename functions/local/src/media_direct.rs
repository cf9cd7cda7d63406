//! Uploads by URL in `wabridge serve` (`POST /media/uploads`, `wabridge_core::media::direct`),
//! so that a client written for the AWS stack (where large files cannot pass through a
//! Function URL) works here unchanged. The URL is the gateway's own
//! `PUT /media/uploads/{sha256}?t=`, its token an HMAC under the media link key over the
//! declared file, size and type. The PUT streams into the media store while it hashes, and
//! commits under the content address only when the bytes are the declared ones; settling then
//! finds them there.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use wabridge_core::clock::now_ms;
use wabridge_core::error::StoreError;
use wabridge_core::http::{ApiError, Response};
use wabridge_core::media::direct::{Declared, DirectUploads, PresignedPut, Settled};
use wabridge_core::media::links::LinkSigner;
use wabridge_core::media::store::MediaStore;
use wabridge_core::media::upload::{essence, UploadError};
use wabridge_core::media::Sha256Digest;
use wabridge_sqlite::LocalMediaStore;

use crate::serve::into_axum;

/// The local engine's side: signs upload URLs to this gateway and finds what arrived.
pub struct LocalUploads {
    store: Arc<LocalMediaStore>,
    signer: LinkSigner,
    /// Where clients reach this gateway (`WABRIDGE_PUBLIC_URL`, else the listening address).
    base: String,
}

impl LocalUploads {
    pub fn new(store: Arc<LocalMediaStore>, signer: LinkSigner, base: String) -> LocalUploads {
        LocalUploads {
            store,
            signer,
            base: base.trim_end_matches('/').to_string(),
        }
    }
}

#[async_trait]
impl DirectUploads for LocalUploads {
    async fn presign_put(
        &self,
        upload: &Declared,
        ttl: Duration,
    ) -> Result<PresignedPut, StoreError> {
        let expires_at = now_ms() / 1000 + ttl.as_secs() as i64;
        let token = self.signer.token(&upload.token_id(), expires_at);
        Ok(PresignedPut {
            url: format!(
                "{}/media/uploads/{}?t={token}",
                self.base,
                upload.sha256.hex()
            ),
            headers: vec![
                ("content-type".into(), upload.mime_type.clone()),
                ("content-length".into(), upload.size.to_string()),
            ],
            expires_at,
        })
    }

    async fn settle(&self, upload: &Declared) -> Result<Settled, StoreError> {
        // The PUT committed only checked bytes: the content address holds the file or nothing.
        Ok(match self.store.open(&upload.sha256.object_key()).await? {
            None => Settled::Missing,
            Some(o) if o.size == upload.size => Settled::Stored,
            Some(o) => Settled::Mismatch {
                size: o.size,
                sha256: None,
            },
        })
    }
}

/// `PUT /media/uploads/{sha256}?t=`, to merge before the catch-all handler.
pub fn router(uploads: Arc<LocalUploads>) -> axum::Router {
    axum::Router::new()
        .route("/media/uploads/{sha256}", axum::routing::put(put))
        .with_state(uploads)
}

#[derive(serde::Deserialize)]
struct Token {
    t: Option<String>,
}

async fn put(
    State(uploads): State<Arc<LocalUploads>>,
    Path(sha256): Path<String>,
    Query(token): Query<Token>,
    req: axum::extract::Request,
) -> axum::response::Response {
    match receive(&uploads, &sha256, token.t.as_deref(), req).await {
        Ok(size) => into_axum(Response::json(
            200,
            &serde_json::json!({"object": sha256, "size": size}),
        )),
        Err(answer) => into_axum(answer),
    }
}

/// Checks the token against the request's file, type and length, then streams the body into
/// the store; the bytes are committed under the content address only when they are the
/// declared file.
async fn receive(
    uploads: &LocalUploads,
    sha256: &str,
    token: Option<&str>,
    req: axum::extract::Request,
) -> Result<u64, Response> {
    let refuse = |e: ApiError| e.into_response();
    let digest = Sha256Digest::parse(sha256)
        .filter(|d| d.hex() == sha256)
        .ok_or_else(|| refuse(ApiError::NotFound(format!("/media/uploads/{sha256}"))))?;
    // Read before any await: a borrowed request would make the future not `Send`.
    let (size, mime) = {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (
            header(axum::http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok()),
            essence(&header(axum::http::header::CONTENT_TYPE).unwrap_or_default()),
        )
    };
    let size = size.ok_or_else(|| {
        refuse(ApiError::bad_request(
            "missing_content_length",
            "send the file with the Content-Length the upload was given",
        ))
    })?;
    let declared = Declared {
        sha256: digest,
        size,
        mime_type: mime,
        filename: None,
    };
    let now = now_ms() / 1000;
    uploads
        .signer
        .verify(&declared.token_id(), token.unwrap_or(""), now)
        .map_err(|e| {
            refuse(ApiError::Forbidden(format!(
                "{e}: PUT the file with the URL and headers POST /media/uploads gave"
            )))
        })?;
    let mut object = uploads.store.begin().await.map_err(store_failed)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                object.abort().await;
                return Err(UploadError::Interrupted {
                    received,
                    reason: e.to_string(),
                }
                .into_response());
            }
        };
        received += chunk.len() as u64;
        hasher.update(&chunk);
        if let Err(e) = object.write(&chunk).await {
            object.abort().await;
            return Err(store_failed(e));
        }
    }
    let got = Sha256Digest::from_bytes(hasher.finalize().into());
    if received != size || got != digest {
        object.abort().await;
        return Err(UploadError::Mismatch {
            declared: size,
            size: received,
            sha256: Some(got.hex()),
        }
        .into_response());
    }
    object
        .commit(&digest.object_key())
        .await
        .map_err(store_failed)?;
    tracing::info!(size, "media received by URL");
    Ok(size)
}

fn store_failed(e: StoreError) -> Response {
    ApiError::from(e).into_response()
}
