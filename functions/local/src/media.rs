//! Inbound media in the local gateway: the settings (`WABRIDGE_MEDIA`, `WABRIDGE_PUBLIC_URL`,
//! the link key from the dev secrets or `WABRIDGE_MEDIA_LINK_KEY`), the files under
//! `DATA/media/`, the consumer of the `media` queue, and `GET /media/{id}` streamed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use wabridge_core::config;
use wabridge_core::consumer::{run_worker, Settle, WorkerOptions};
use wabridge_core::media::fetch::MediaFetcher;
use wabridge_core::media::pipeline::MediaSync;
use wabridge_core::media::serve::{MediaAccess, MediaAnswer};
use wabridge_core::media::settings::{MediaSettings, WABRIDGE_MEDIA_LINK_KEY};
use wabridge_core::numbers::Numbers;
use wabridge_core::retry::RetryPolicy;
use wabridge_graph::media::{GraphMedia, MediaConfig};
use wabridge_sqlite::identity::SqliteIdentityStore;
use wabridge_sqlite::{
    Db, LocalMediaStore, SqliteMediaIndex, SqliteQueue, EVENTS_QUEUE, MEDIA_QUEUE,
};

use crate::error::CliError;
use crate::secrets::Secrets;

/// One download's whole time (a 100 MB document on a slow link).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub struct LocalMedia {
    pub settings: MediaSettings,
    pub store: Arc<LocalMediaStore>,
}

impl LocalMedia {
    /// Reads the settings (the link key from the secrets unless the environment sets it) and
    /// opens the store under `data` (clearing what an interrupted download left).
    pub fn open(
        data: &Path,
        secrets: &Secrets,
        content_retention: Duration,
    ) -> Result<LocalMedia, CliError> {
        let settings = MediaSettings::from_lookup(
            |name| match name {
                WABRIDGE_MEDIA_LINK_KEY => Some(secrets.media_link_key.clone()),
                other => std::env::var(other).ok(),
            },
            content_retention,
        )?;
        let store =
            LocalMediaStore::open(data).map_err(CliError::store("cannot open the media folder"))?;
        Ok(LocalMedia {
            settings,
            store: Arc::new(store),
        })
    }

    /// `GET /media/{id}`'s link check and store (the local gateway always has a key: its
    /// secrets generate one).
    pub fn access(&self) -> Option<MediaAccess> {
        let signer = self.settings.signer.clone()?;
        Some(MediaAccess::new(signer, self.store.clone()))
    }

    /// Starts the media consumer when the Graph API token is set; otherwise the jobs wait on
    /// the queue (a warning says why), as sends do.
    pub fn spawn_consumer(
        &self,
        db: &Db,
        policy: RetryPolicy,
        lines: Option<(&Numbers, &Secrets)>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, CliError> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let settings = config::Settings::env();
        let (base_url, version) = settings.graph_api()?;
        let source = |access_token: String, phone_number_id: Option<String>| {
            Arc::new(GraphMedia::new(MediaConfig {
                base_url: base_url.clone(),
                version: version.clone(),
                access_token,
                phone_number_id,
                timeout: DOWNLOAD_TIMEOUT,
            }))
        };
        // A registry's numbers each fetch with their own token; the first is the default
        // when WHATSAPP_ACCESS_TOKEN is unset.
        let lines: Vec<_> = lines
            .iter()
            .flat_map(|(numbers, secrets)| numbers.all().iter().map(move |n| (n, secrets)))
            .filter_map(|(n, secrets)| {
                let token = secrets.named(&n.token_key)?;
                Some((n.phone_number_id.clone(), token))
            })
            .collect();
        let default = settings
            .optional(config::WHATSAPP_ACCESS_TOKEN)
            .or_else(|| lines.first().map(|(_, token)| token.clone()));
        let Some(access_token) = default else {
            eprintln!(
                "warning: {} is not set: inbound media waits on the queue until it is",
                config::WHATSAPP_ACCESS_TOKEN
            );
            return Ok(None);
        };
        let mut fetcher = MediaFetcher::new(source(access_token, None), self.store.clone());
        for (id, token) in lines {
            fetcher = fetcher.with_number(&id, source(token, Some(id.clone())));
        }
        let sync = MediaSync::new(
            fetcher,
            Arc::new(SqliteQueue::new(db.clone(), EVENTS_QUEUE)),
            self.settings.links.clone(),
        )
        .with_index(Arc::new(SqliteMediaIndex::new(db.clone())))
        .with_identities(Arc::new(SqliteIdentityStore::new(db.clone())));
        Ok(Some(tokio::spawn(run_worker(
            Arc::new(SqliteQueue::new(db.clone(), MEDIA_QUEUE)),
            Arc::new(sync),
            WorkerOptions {
                batch: 20,
                concurrency: 16,
                visibility: DOWNLOAD_TIMEOUT + Duration::from_secs(60),
                settle: Settle::new(policy, true),
                ..WorkerOptions::default()
            },
            stop,
        ))))
    }
}

/// The axum response of `GET /media/{id}`: the file streamed in chunks (a 100 MB document never
/// sits in memory), or a redirect.
pub fn response(answer: MediaAnswer) -> axum::response::Response {
    match answer {
        MediaAnswer::Redirect(url) => {
            let mut out = axum::response::Response::new(Body::empty());
            *out.status_mut() = StatusCode::FOUND;
            if let Ok(v) = HeaderValue::from_str(&url) {
                out.headers_mut().insert(axum::http::header::LOCATION, v);
            }
            out
        }
        MediaAnswer::File {
            object,
            content_type,
        } => {
            let size = object.size;
            let chunks = tokio_util::io::ReaderStream::new(object.body);
            let mut out = axum::response::Response::new(Body::from_stream(chunks));
            let headers = out.headers_mut();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            headers.insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from(size));
            headers.insert(
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            out
        }
    }
}
