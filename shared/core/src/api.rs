//! Routing of the HTTP API shared by the Lambda and the local gateway.
//!
//! [`Api`] is built once (per cold start, per process) with the services this deployment serves,
//! then [`Api::handle`] turns every [`Request`] into a [`Response`]: never a panic, every error a
//! JSON body from [`ApiError`] (404 for an unknown path, 405 with `Allow` for a known path and a
//! wrong method).
//!
//! Adding a route (for example `/sends`, `/sends/{id}`, `/consents`, `/links`, `/conversions`):
//! add an optional service field, a `with_…` builder method, and a [`Route`] arm in
//! `Api::route`; an unmounted service's paths answer 404.

use std::sync::Arc;

use serde_json::json;

use crate::audit::Audit;
use crate::auth::{ApiKeys, Scope};
use crate::conversations::route::ConversationsRoute;
use crate::erasure::{ErasureError, ErasureService};
use crate::http::{ApiError, Method, Request, Response};
use crate::ingest::{IngestError, IngestService};
use crate::media::direct::UploadsRoute;
use crate::media::serve::{MediaAccess, MediaAnswer};
use crate::sends::error::{RequestError, SendsError};
use crate::sends::service::{send_json, Sends};
use crate::signature::SIGNATURE_HEADER;

/// `POST /links` and `POST /conversions`: the HTTP side of attribution (`wabridge-attribution`),
/// mounted by the functions that carry it. A port so the router needs neither QR codes nor an
/// HTTP client.
#[async_trait::async_trait]
pub trait AttributionRoutes: Send + Sync {
    /// `POST /links`.
    async fn create_link(&self, req: &Request) -> Result<Response, ApiError>;
    /// `POST /conversions`.
    async fn record_conversion(&self, req: &Request) -> Result<Response, ApiError>;
}

/// The routes this crate knows, matched on the path only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Webhook,
    /// `POST /links`: tracked click-to-chat links (attribution).
    Links,
    /// `POST /conversions`: conversions back to Meta (attribution).
    Conversions,
    /// `POST /sends`: an outgoing template (or free-form) message.
    Sends,
    /// `GET /sends/{id}`: a send's state and error.
    Send(&'a str),
    /// `POST /consents`, `GET /consents?to=`.
    Consents,
    /// `DELETE /contacts/{id}`: erase a person (a phone, BSUID or contact id, percent-encoded).
    Contact(&'a str),
    /// `GET /media/{sha256}.{ext}?t=`: a stored media file, by its signed link.
    Media(&'a str),
    /// `POST /media/uploads`: a file uploaded by URL ([`crate::media::direct`]).
    MediaUploads,
    /// `PATCH /conversations/{id}`: a conversation's outcome, agent, tags
    /// ([`crate::conversations::route`]).
    Conversation(&'a str),
    /// `POST /conversations/{id}/tags`: adds tags.
    ConversationTags(&'a str),
    /// `DELETE /conversations/{id}/tags/{tag}`: removes one tag.
    ConversationTag(&'a str, &'a str),
    /// No route with this path. Carries the path for the error.
    NotFound(&'a str),
}

impl<'a> Route<'a> {
    /// Matches a path; one trailing slash is tolerated (`/webhook/`).
    pub fn match_path(path: &'a str) -> Route<'a> {
        let trimmed = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        match trimmed {
            "/healthz" => Route::Health,
            "/webhook" => Route::Webhook,
            "/links" => Route::Links,
            "/conversions" => Route::Conversions,
            "/sends" => Route::Sends,
            "/consents" => Route::Consents,
            "/media/uploads" => Route::MediaUploads,
            other => {
                let id = |prefix: &str| {
                    other
                        .strip_prefix(prefix)
                        .filter(|id| !id.is_empty() && !id.contains('/'))
                };
                if let Some(id) = id("/sends/") {
                    Route::Send(id)
                } else if let Some(id) = id("/contacts/") {
                    Route::Contact(id)
                } else if let Some(id) = id("/media/") {
                    Route::Media(id)
                } else if let Some(id) = id("/conversations/") {
                    Route::Conversation(id)
                } else if let Some(id) = other
                    .strip_prefix("/conversations/")
                    .and_then(|rest| rest.strip_suffix("/tags"))
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                {
                    Route::ConversationTags(id)
                } else if let Some((id, tag)) = other
                    .strip_prefix("/conversations/")
                    .and_then(|rest| rest.split_once("/tags/"))
                    .filter(|(id, tag)| {
                        !id.is_empty() && !id.contains('/') && !tag.is_empty() && !tag.contains('/')
                    })
                {
                    Route::ConversationTag(id, tag)
                } else {
                    Route::NotFound(path)
                }
            }
        }
    }
}

/// The HTTP API. Cheap to share (`Arc` it); every service is optional so each function mounts
/// only what it serves.
#[derive(Default, Clone)]
pub struct Api {
    ingest: Option<Arc<IngestService>>,
    attribution: Option<Arc<dyn AttributionRoutes>>,
    sends: Option<Arc<Sends>>,
    erasure: Option<(Arc<ErasureService>, Arc<ApiKeys>)>,
    media: Option<MediaAccess>,
    uploads: Option<UploadsRoute>,
    conversations: Option<Arc<ConversationsRoute>>,
}

impl Api {
    /// An API serving only `/healthz`; mount services with the `with_…` methods.
    pub fn new() -> Api {
        Api::default()
    }

    /// Mounts `GET /webhook` (handshake) and `POST /webhook` (ingest).
    pub fn with_ingest(mut self, ingest: Arc<IngestService>) -> Api {
        self.ingest = Some(ingest);
        self
    }

    /// Mounts `POST /links` and `POST /conversions`.
    pub fn with_attribution(mut self, attribution: Arc<dyn AttributionRoutes>) -> Api {
        self.attribution = Some(attribution);
        self
    }

    /// Mounts `PATCH /conversations/{id}` and `POST /conversations/{id}/tags`.
    pub fn with_conversations(mut self, route: Arc<ConversationsRoute>) -> Api {
        self.conversations = Some(route);
        self
    }

    /// Mounts `POST /sends`, `GET /sends/{id}`, `POST /consents` and `GET /consents?to=`
    /// (bearer API keys with scopes, [`crate::auth`]).
    pub fn with_sends(mut self, sends: Arc<Sends>) -> Api {
        self.sends = Some(sends);
        self
    }

    /// Mounts `DELETE /contacts/{id}` (a key with the `admin` scope from `keys`).
    pub fn with_erasure(mut self, erasure: Arc<ErasureService>, keys: Arc<ApiKeys>) -> Api {
        self.erasure = Some((erasure, keys));
        self
    }

    /// Mounts `GET /media/{id}` (signed links; no API key: the token is the authorisation).
    pub fn with_media(mut self, media: MediaAccess) -> Api {
        self.media = Some(media);
        self
    }

    /// Mounts `POST /media/uploads` (uploads by URL; a key with the `sends` scope).
    pub fn with_uploads(mut self, uploads: UploadsRoute) -> Api {
        self.uploads = Some(uploads);
        self
    }

    /// `GET /media/{id}` for an edge that streams files itself (`wabridge serve`): `None` when
    /// `req` is not that route, else the answer or the error response.
    pub async fn media(&self, req: &Request) -> Option<Result<MediaAnswer, Response>> {
        let (Route::Media(id), Method::Get, Some(media)) =
            (Route::match_path(&req.path), req.method, &self.media)
        else {
            return None;
        };
        Some(media.answer(id, req).await.map_err(ApiError::into_response))
    }

    /// Answers one request. Never panics; errors are JSON (see [`ApiError`]).
    pub async fn handle(&self, req: Request) -> Response {
        match self.route(&req).await {
            Ok(response) => response,
            Err(e) => {
                let allow = match &e {
                    ApiError::MethodNotAllowed(_) => allowed_methods(&req.path),
                    _ => None,
                };
                let response = e.into_response();
                match allow {
                    Some(allow) => response.with_header("allow", allow),
                    None => response,
                }
            }
        }
    }

    async fn route(&self, req: &Request) -> Result<Response, ApiError> {
        match Route::match_path(&req.path) {
            Route::Health => match req.method {
                Method::Get => Ok(Response::json(200, &json!({"status": "ok"}))),
                _ => Err(ApiError::MethodNotAllowed(req.path.clone())),
            },
            Route::Webhook => {
                let Some(ingest) = &self.ingest else {
                    return Err(ApiError::NotFound(req.path.clone()));
                };
                match req.method {
                    Method::Get => {
                        let challenge = ingest.handshake(
                            req.query_param("hub.mode").as_deref(),
                            req.query_param("hub.verify_token").as_deref(),
                            req.query_param("hub.challenge"),
                        )?;
                        Ok(Response::text(200, challenge))
                    }
                    Method::Post => {
                        let accepted = ingest
                            .receive(&req.body, req.header(SIGNATURE_HEADER))
                            .await?;
                        Ok(Response::json(200, &accepted))
                    }
                    _ => Err(ApiError::MethodNotAllowed(req.path.clone())),
                }
            }
            Route::Links | Route::Conversions => {
                let Some(attribution) = &self.attribution else {
                    return Err(ApiError::NotFound(req.path.clone()));
                };
                match (req.method, Route::match_path(&req.path)) {
                    (Method::Post, Route::Links) => attribution.create_link(req).await,
                    (Method::Post, _) => attribution.record_conversion(req).await,
                    _ => Err(ApiError::MethodNotAllowed(req.path.clone())),
                }
            }
            Route::Sends | Route::Send(_) | Route::Consents => {
                let Some(sends) = &self.sends else {
                    return Err(ApiError::NotFound(req.path.clone()));
                };
                sends_route(sends, req).await
            }
            Route::Contact(id) => {
                let Some((erasure, keys)) = &self.erasure else {
                    return Err(ApiError::NotFound(req.path.clone()));
                };
                if req.method != Method::Delete {
                    return Err(ApiError::MethodNotAllowed(req.path.clone()));
                }
                let caller = keys.authorize(req, Scope::Admin, "DELETE /contacts/{id}")?;
                let id = percent_encoding::percent_decode_str(id)
                    .decode_utf8()
                    .map_err(|_| {
                        ApiError::bad_request("invalid_contact", "the contact id is not UTF-8")
                    })?;
                let erased = erasure
                    .erase(&id, &Audit::key_actor(&caller.key_id))
                    .await?;
                Ok(Response::json(200, &erased))
            }
            Route::Media(id) => {
                let Some(media) = &self.media else {
                    return Err(ApiError::NotFound(req.path.clone()));
                };
                if req.method != Method::Get {
                    return Err(ApiError::MethodNotAllowed(req.path.clone()));
                }
                match media.answer(id, req).await? {
                    MediaAnswer::Redirect(url) => Ok(Response {
                        status: 302,
                        content_type: "text/plain; charset=utf-8",
                        headers: vec![("location", url), ("cache-control", "no-store".into())],
                        body: Vec::new(),
                    }),
                    // Edges that stream call `Api::media`; this one buffers (bounded by the
                    // largest kind) for edges that cannot.
                    MediaAnswer::File {
                        mut object,
                        content_type,
                    } => {
                        use tokio::io::AsyncReadExt;
                        let mut body = Vec::with_capacity(object.size as usize);
                        object
                            .body
                            .read_to_end(&mut body)
                            .await
                            .map_err(|e| ApiError::Unavailable(format!("media read: {e}")))?;
                        Ok(Response {
                            status: 200,
                            content_type,
                            headers: vec![("cache-control", "private, no-store".into())],
                            body,
                        })
                    }
                }
            }
            Route::MediaUploads => match &self.uploads {
                Some(uploads) => uploads.handle(req).await,
                None => Err(ApiError::NotFound(req.path.clone())),
            },
            Route::Conversation(id) => match &self.conversations {
                Some(route) => route.patch(req, id).await,
                None => Err(ApiError::NotFound(req.path.clone())),
            },
            Route::ConversationTags(id) => match &self.conversations {
                Some(route) => route.add_tags(req, id).await,
                None => Err(ApiError::NotFound(req.path.clone())),
            },
            Route::ConversationTag(id, tag) => match &self.conversations {
                Some(route) => route.remove_tag(req, id, tag).await,
                None => Err(ApiError::NotFound(req.path.clone())),
            },
            Route::NotFound(path) => Err(ApiError::NotFound(path.to_string())),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        match e {
            IngestError::TooLarge { size, limit } => ApiError::PayloadTooLarge { size, limit },
            e @ (IngestError::NoSecret | IngestError::Unavailable) => {
                ApiError::Unavailable(e.to_string())
            }
            IngestError::Signature(message) => ApiError::Unauthorized(message),
            IngestError::NotAnEnvelope(e) => ApiError::bad_request(e.code(), e.to_string()),
            IngestError::Handshake(message) => ApiError::Forbidden(message.into()),
            IngestError::Challenge { code, message } => ApiError::BadRequest { code, message },
        }
    }
}

impl From<ErasureError> for ApiError {
    fn from(e: ErasureError) -> ApiError {
        match e {
            ErasureError::BadTarget(message) => ApiError::BadRequest {
                code: "invalid_contact",
                message,
            },
            e @ ErasureError::NotFound => ApiError::NoSuch(e.to_string()),
            ErasureError::Store(e) => e.into(),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        match e {
            RequestError::TooLarge { size, limit } => ApiError::PayloadTooLarge { size, limit },
            RequestError::Invalid { code, message } => ApiError::BadRequest { code, message },
        }
    }
}

impl From<SendsError> for ApiError {
    fn from(e: SendsError) -> ApiError {
        match e {
            SendsError::Request(e) => e.into(),
            SendsError::Refused(refusal) => ApiError::Unprocessable {
                code: refusal.code(),
                message: refusal.message(),
            },
            SendsError::Number { code, message } => ApiError::Unprocessable { code, message },
            e @ SendsError::KeyReused => ApiError::Conflict(e.to_string()),
            SendsError::NotFound(id) => ApiError::NotFound(format!("send {id}")),
            SendsError::Agent(e) => ApiError::Unprocessable {
                code: e.code,
                message: e.message,
            },
            SendsError::Store(e) => e.into(),
        }
    }
}

/// `/sends`, `/sends/{id}` and `/consents`: a bearer key with the route's scope (`sends`,
/// `read`, `consents`: see [`crate::auth`]), JSON bodies, then the sends service.
async fn sends_route(sends: &Sends, req: &Request) -> Result<Response, ApiError> {
    let route = Route::match_path(&req.path);
    match (&route, req.method) {
        (Route::Sends, Method::Post)
        | (Route::Send(_), Method::Get)
        | (Route::Consents, Method::Post | Method::Get) => {}
        _ => return Err(ApiError::MethodNotAllowed(req.path.clone())),
    }
    let (scope, name) = match (&route, req.method) {
        (Route::Sends, _) => (Scope::Sends, "POST /sends"),
        (Route::Send(_), _) => (Scope::Read, "GET /sends/{id}"),
        (_, Method::Post) => (Scope::Consents, "POST /consents"),
        _ => (Scope::Read, "GET /consents"),
    };
    let caller = sends.keys().authorize(req, scope, name)?;
    let actor = Audit::key_actor(&caller.key_id);
    if req.method == Method::Post {
        let json = req.header("content-type").is_some_and(|c| {
            c.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
    }
    match route {
        Route::Sends => {
            let record = sends
                .submit_by(&req.body, req.header("idempotency-key"), Some(&actor))
                .await?;
            Ok(Response::json(202, &send_json(&record))
                .with_header("location", format!("/sends/{}", record.id)))
        }
        Route::Send(id) => Ok(Response::json(200, &send_json(&sends.get(id).await?))),
        _ if req.method == Method::Post => {
            let entry = sends
                .record_consent_by(&req.body, req.header("idempotency-key"), Some(&actor))
                .await?;
            Ok(Response::json(
                201,
                &json!({"id": entry.id, "to": entry.to, "category": entry.category,
                "action": entry.action, "source": entry.source}),
            ))
        }
        _ => {
            let to = req.query_param("to");
            let recipient = req.query_param("recipient");
            Ok(Response::json(
                200,
                &sends.consents(to.as_deref(), recipient.as_deref()).await?,
            ))
        }
    }
}

fn allowed_methods(path: &str) -> Option<&'static str> {
    match Route::match_path(path) {
        Route::Health => Some("GET"),
        Route::Webhook => Some("GET, POST"),
        Route::Links | Route::Conversions | Route::Sends | Route::MediaUploads => Some("POST"),
        Route::Send(_) => Some("GET"),
        Route::Consents => Some("GET, POST"),
        Route::Contact(_) => Some("DELETE"),
        Route::Media(_) => Some("GET"),
        Route::Conversation(_) => Some("PATCH"),
        Route::ConversationTags(_) => Some("POST"),
        Route::ConversationTag(..) => Some("DELETE"),
        Route::NotFound(_) => None,
    }
}
