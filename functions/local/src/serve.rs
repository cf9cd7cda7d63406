//! `wabridge serve`: the ingest API (axum carrying the core's `Api`), the events consumer and the
//! dedupe purger, in one process over one SQLite file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wabridge_core::media::direct::UploadsRoute;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use wabridge_core::api::Api;
use wabridge_core::audit::{self, Audit};
use wabridge_core::consumer::{run_worker, Pressure, Settle, WorkerOptions};
use wabridge_core::http::{ApiError, Method, Request, Response};
use wabridge_sqlite::{SqliteInbox, SqliteQueue, EVENTS_QUEUE, MEDIA_QUEUE, SENDS_QUEUE};

use crate::error::CliError;
use crate::secrets;

pub struct ServeArgs {
    pub addr: SocketAddr,
    pub data: PathBuf,
}

struct AppState {
    api: Api,
    max_body: usize,
    /// Requests in flight, which the events consumer yields to during a burst.
    pressure: Pressure,
}

/// Requests in flight from which the consumer counts as competing with a burst of webhooks, and
/// how many deliveries it keeps running meanwhile (see [`Pressure`]).
const BURST_IN_FLIGHT: usize = 8;
const BURST_CONSUMER_CONCURRENCY: usize = 1;

pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let db = crate::data::open_or_create(&args.data)?;
    // Bound first: upload URLs name the address when no public URL is set.
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| CliError::Listen {
        addr: args.addr,
        source,
    })?;
    let secrets = secrets::load_or_generate(&args.data)?;
    let numbers = crate::numbers::load(&secrets)?;
    let destinations = crate::destinations::load(&secrets, numbers.as_ref())?;
    let mut inbox = SqliteInbox::open(db.clone())
        .await
        .map_err(CliError::store("cannot open the inbox"))?;
    if let Some(d) = &destinations {
        inbox = inbox.with_fanout(crate::destinations::fanout(d, numbers.as_ref()));
    }
    let (api, max_body) = crate::wiring::build_api(Arc::new(inbox.clone()), &secrets)?;
    let keys = Arc::new(secrets.keys()?);
    tracing::info!(keys = ?keys.ids(), "API keys");
    let audit_retention = audit::retention(|n| std::env::var(n).ok())?;
    let content_retention = wabridge_core::retention::content_retention(|n| std::env::var(n).ok())?;
    let audit_log = wabridge_sqlite::SqliteEngine::new(db.clone()).audit(audit_retention);
    let audit = Audit::new(Arc::new(audit_log));
    let api = api.with_attribution(
        crate::attribution::service(&db, keys.clone(), audit.clone(), numbers.clone()).await?,
    );
    let media = crate::media::LocalMedia::open(&args.data, &secrets, content_retention)?;
    let erasure = crate::erase::service(&db, &args.data).await?;
    let api = api.with_erasure(Arc::new(erasure), keys.clone());
    // Files the business uploads to send live in the same store as those customers sent.
    let library = crate::media_upload::library(&db, media.store.clone());
    let sends = crate::sends::service(
        &db,
        keys.clone(),
        audit.clone(),
        library.clone(),
        numbers.clone(),
    )?;
    let api = api
        .with_sends(sends.clone())
        .with_conversations(crate::conversations::route(&db, keys.clone())?);
    let api = match media.access() {
        Some(access) => api.with_media(access),
        None => api,
    };
    // Uploads by URL need the link key to sign their URLs (generated locally, so always here
    // unless the environment sets another).
    let uploads = media.settings.signer.clone().map(|signer| {
        let base = match &media.settings.links {
            Some(links) => links.public_url.clone(),
            None => format!("http://{local}"),
        };
        Arc::new(crate::media_direct::LocalUploads::new(
            media.store.clone(),
            signer,
            base,
        ))
    });
    let api = match &uploads {
        Some(direct) => api.with_uploads(
            UploadsRoute::new(library.clone(), direct.clone(), keys.clone())
                .with_audit(audit.clone()),
        ),
        None => api,
    };
    let pressure = Pressure::new(BURST_IN_FLIGHT);
    db.defer_checkpoints_during(pressure.clone());
    let state = Arc::new(AppState {
        api,
        max_body,
        pressure: pressure.clone(),
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let queue = Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE));
    // What a killed process held comes back now, not after its visibility timeout.
    for q in [
        queue.as_ref(),
        &SqliteQueue::new(db.clone(), SENDS_QUEUE),
        &SqliteQueue::new(db.clone(), MEDIA_QUEUE),
    ] {
        let n = q.release_held().await.map_err(CliError::store(
            "cannot release the previous process's deliveries",
        ))?;
        if n > 0 {
            println!(
                "released {n} deliveries of the {} queue held before the restart",
                q.name()
            );
        }
    }
    let claims = wabridge_sqlite::ledger::SqliteLedger::new(db.clone())
        .release_held()
        .await
        .map_err(CliError::store(
            "cannot release the previous process's effect claims",
        ))?;
    if claims > 0 {
        println!("released {claims} CRM effect claims held before the restart (kept in doubt)");
    }
    let (events_policy, sends_policy) =
        wabridge_core::config::retry_policies(|name| std::env::var(name).ok())?;
    let files = media.settings.enabled.then(|| media.store.clone() as _);
    let (handler, breaker) =
        crate::crm_sync::consumer(&db, sends.clone(), files, numbers.clone(), &secrets).await?;
    let worker = tokio::spawn(run_worker(
        queue,
        handler,
        WorkerOptions {
            batch: 100,
            concurrency: wabridge_core::config::sync_concurrency()?,
            pressure: Some(pressure.clone()),
            busy_concurrency: BURST_CONSUMER_CONCURRENCY,
            settle: Settle::new(events_policy, true),
            breaker,
            ..WorkerOptions::default()
        },
        stop_rx.clone(),
    ));
    let relays = crate::destinations::spawn(
        &db,
        destinations.as_deref(),
        numbers.as_ref(),
        &secrets,
        events_policy,
        Some(pressure.clone()),
        stop_rx.clone(),
    )
    .await?;
    let merger = inbox.spawn_merger(Some(pressure.clone()), stop_rx.clone());
    let lines = numbers.as_deref().map(|n| (n, &secrets));
    let sender = crate::sends::spawn_sender(&db, &sends, sends_policy, lines, stop_rx.clone())?;
    let media_consumer = media.spawn_consumer(&db, events_policy, lines, stop_rx.clone())?;
    let _template_sync =
        crate::templates::spawn_periodic(&db, numbers.as_deref(), &secrets, stop_rx.clone())?; // ends on stop
    let _sweeper = crate::conversations::spawn_sweeper(&db, numbers.as_deref(), stop_rx.clone())?; // ends on stop
    let retentions = wabridge_sqlite::engine::Retentions {
        ledger: wabridge_core::config::ledger_retention()?,
        audit: audit_retention,
        content: content_retention,
    };
    let purger = wabridge_sqlite::SqliteEngine::new(db.clone())
        .purger(Default::default(), retentions)
        .with_media_purge(media.store.as_ref().clone(), content_retention)
        .spawn_purger(Duration::from_secs(3600), stop_rx);

    // `POST /media` and `PUT /media/uploads/{sha256}` stream their bodies into the media store:
    // routed before `handle`, which reads whole bodies within the webhook limit.
    let mut app = crate::media_upload::router(library, keys, audit);
    if let Some(uploads) = uploads {
        app = app.merge(crate::media_direct::router(uploads));
    }
    let app = app.merge(axum::Router::new().fallback(handle).with_state(state));
    println!("listening on http://{local}");
    println!("data in {}", args.data.display());
    use std::io::Write;
    let _ = std::io::stdout().flush();

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(CliError::Server)?;

    tracing::info!("shutting down: stopping consumers");
    let _ = stop_tx.send(true);
    let _ = worker.await;
    for consumer in [sender, media_consumer].into_iter().flatten().chain(relays) {
        let _ = consumer.await;
    }
    let _ = purger.await;
    let _ = merger.await;
    // Dropping the last Db handle lets the writer finish and answer every queued write.
    drop(inbox);
    drop(db);
    println!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Past the limit, the rest of an oversize body is read and discarded up to this many bytes
/// (within [`DRAIN_TIME`]) before the 413 goes out: closing a connection with unread data makes
/// the kernel send a reset, and the client would see "connection reset" instead of our answer.
const DRAIN_MAX: usize = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The body up to `limit` bytes; `Err(size seen)` when it is larger (the rest drained, bounded).
async fn read_body(body: Body, limit: usize, declared: Option<usize>) -> Result<Vec<u8>, usize> {
    use futures::StreamExt;
    if declared.is_some_and(|d| d > DRAIN_MAX) {
        return Err(declared.unwrap_or(DRAIN_MAX));
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        if buf.len() + chunk.len() <= limit {
            buf.extend_from_slice(&chunk);
            continue;
        }
        // Over the limit: drain what follows, bounded in bytes and time.
        let mut seen = buf.len() + chunk.len();
        let drain = async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen > DRAIN_MAX {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        return Err(seen);
    }
    Ok(buf)
}

/// The one axum handler: converts to the core's request type, lets the core answer, converts
/// back. An oversize body is refused here with the core's JSON 413 (after draining it, bounded).
async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let _in_flight = state.pressure.enter();
    let (parts, body) = req.into_parts();
    if parts.method == axum::http::Method::GET && parts.uri.path().starts_with("/media/") {
        // Files stream from the store; everything else buffers its (bounded) body below.
        let request = Request {
            method: Method::Get,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: Vec::new(),
            body: Vec::new(),
        };
        if let Some(answer) = state.api.media(&request).await {
            return match answer {
                Ok(answer) => crate::media::response(answer),
                Err(response) => into_axum(response),
            };
        }
    }
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = match read_body(body, state.max_body, declared).await {
        Ok(b) => b,
        Err(size) => {
            let mut response = into_axum(
                ApiError::PayloadTooLarge {
                    size: declared.unwrap_or(size),
                    limit: state.max_body,
                }
                .into_response(),
            );
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let request = Request {
        method: Method::parse(parts.method.as_str()),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers,
        body,
    };
    into_axum(state.api.handle(request).await)
}

pub(crate) fn into_axum(r: Response) -> axum::response::Response {
    let mut out = axum::response::Response::new(Body::from(r.body));
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(r.content_type),
    );
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                headers.append(n, v);
            }
        }
    }
    out
}
