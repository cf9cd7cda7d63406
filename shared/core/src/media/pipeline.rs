//! The media consumer: one [`MediaJob`] at a time from the media queue, fetched
//! ([`MediaFetcher`]), and its result reported on the events queue as a `media_result` event
//! (crm-sync turns it into the CRM's `media` record through the effects ledger). It runs apart
//! from crm-sync, so a slow or failing download never holds up a message's activity.
//!
//! Outcomes per job:
//! - stored: result `stored` with the file's size, SHA-256, type, name and gateway link;
//! - Meta 429/5xx, download timeouts, an expired URL twice, a store outage: retried with
//!   backoff within the media queue's retry horizon (it dead-letters with the reason after);
//! - gone at Meta (no such id, or older than Meta's 7 days): result `failed` (`media_gone`);
//! - a type or size outside WhatsApp's limits: result `refused`, never stored;
//! - a size or SHA-256 mismatch: retried, and after [`QUARANTINE_AFTER`] receives quarantined:
//!   result `failed` (`media_quarantined`) and the job dead-lettered with the reason, where an
//!   operator can look at it and redrive it.
//!
//! The result is on the events queue before the job is acknowledged; result keys carry the
//! state, so a redelivered job reports the same event again (landing once), and a quarantined
//! file redriven to success reports `stored` as a new record version.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::fetch::{FetchError, MediaFetcher, StoredFile, Wanted};
use super::job::MediaJob;
use super::links::LinkSigner;
use super::record::{MediaFailure, MediaState, StoredMedia};
use super::store::MediaIndex;
use super::Sha256Digest;
use crate::clock::Clock;
use crate::consumer::{Handler, Outcome};
use crate::event::Event;
use crate::queue::{Delivery, Queue};
use crate::redact;
use crate::retry::backoff;

/// Receives of one job whose downloads did not match Meta's description before it is
/// quarantined: a CDN hiccup passes in one or two, a file that is wrong at Meta never does.
pub const QUARANTINE_AFTER: u32 = 3;

/// How long Meta keeps a media id after the webhook.
pub const META_MEDIA_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// How the gateway's links are made: its public URL, the signing key and how long a link opens
/// its file (the content retention: the file is gone after).
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub public_url: String,
    pub signer: LinkSigner,
    pub ttl: Duration,
}

impl LinkSettings {
    /// The link of a stored file (`/media/<hex>.<ext>`) and when it expires (Unix ms).
    pub fn link(&self, sha256: &Sha256Digest, mime: &str, now_ms: i64) -> (String, i64) {
        let expires_s = now_ms / 1000 + self.ttl.as_secs() as i64;
        let id = format!("{}.{}", sha256.hex(), super::extension(mime));
        (
            self.signer.url(&self.public_url, &id, expires_s),
            expires_s * 1000,
        )
    }
}

pub struct MediaSync {
    fetcher: MediaFetcher,
    events: Arc<dyn Queue>,
    links: Option<LinkSettings>,
    index: Option<Arc<dyn MediaIndex>>,
    clock: Clock,
}

impl MediaSync {
    /// `events`: the queue crm-sync consumes. Without `links`, stored files carry no link.
    pub fn new(
        fetcher: MediaFetcher,
        events: Arc<dyn Queue>,
        links: Option<LinkSettings>,
    ) -> MediaSync {
        MediaSync {
            fetcher,
            events,
            links,
            index: None,
            clock: Clock::System,
        }
    }

    /// Records who each stored file belongs to (erasure and retention read it).
    pub fn with_index(mut self, index: Arc<dyn MediaIndex>) -> Self {
        self.index = Some(index);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    async fn report(&self, event: Event) -> Result<(), Outcome> {
        self.events
            .send_batch(&[event.to_message()])
            .await
            .map_err(|e| {
                Outcome::retry(
                    backoff(1, None),
                    format!("cannot report the media result: {e}"),
                )
            })
    }

    fn stored(&self, job: &MediaJob, file: &StoredFile, now: i64) -> StoredMedia {
        let (link, link_expires_at) = match &self.links {
            Some(l) => {
                let (link, expires) = l.link(&file.sha256, &file.mime_type, now);
                (Some(link), Some(expires))
            }
            None => (None, None),
        };
        StoredMedia {
            size: file.size,
            sha256: file.sha256.hex(),
            mime_type: file.mime_type.clone(),
            filename: job.filename.clone(),
            link,
            link_expires_at,
        }
    }

    async fn process(&self, job: &MediaJob, receive_count: u32) -> Outcome {
        let now = self.clock.now_ms();
        let failed = |state, code: &str, message: String| {
            job.result(
                state,
                None,
                Some(MediaFailure {
                    code: code.into(),
                    message,
                }),
                now,
            )
        };
        let age = Duration::from_millis((now - job.received_at).max(0) as u64);
        let result = if age > META_MEDIA_LIFETIME {
            Err(FetchError::Gone {
                reason: "Meta keeps media 7 days after the message; this one is older".into(),
            })
        } else {
            let declared = job.sha256.as_deref().and_then(Sha256Digest::parse);
            self.fetcher
                .fetch(&Wanted {
                    media_id: &job.media_id,
                    phone_number_id: job.phone_number_id.as_deref(),
                    kind: job.kind,
                    animated: job.animated,
                    declared,
                })
                .await
        };
        let (event, then) = match result {
            Ok(file) => {
                if let Some(index) = &self.index {
                    if let Err(e) = index.record(&file.key, &job.contact, now).await {
                        return Outcome::retry(backoff(receive_count, None), e.to_string());
                    }
                }
                if file.downloaded {
                    tracing::info!(metric = "media_stored", kind = %job.kind, size = file.size, "media stored");
                }
                let stored = self.stored(job, &file, now);
                (
                    job.result(MediaState::Stored, Some(stored), None, now),
                    Outcome::Done,
                )
            }
            Err(FetchError::Refused(r)) => (
                failed(MediaState::Refused, r.code(), r.to_string()),
                Outcome::Done,
            ),
            Err(e @ FetchError::Gone { .. }) => (
                failed(MediaState::Failed, "media_gone", e.to_string()),
                Outcome::Done,
            ),
            Err(FetchError::Corrupt(why)) if receive_count >= QUARANTINE_AFTER => {
                let reason = format!(
                    "quarantined after {receive_count} downloads that did not match: {why}"
                );
                (
                    failed(MediaState::Failed, "media_quarantined", reason.clone()),
                    Outcome::DeadLetter(reason),
                )
            }
            Err(e) if e.is_retryable() => {
                let hint = match &e {
                    FetchError::Retry { retry_after, .. } => *retry_after,
                    _ => None,
                };
                return Outcome::retry(backoff(receive_count, hint), e.to_string());
            }
            Err(e) => return Outcome::DeadLetter(format!("media store: {e}")),
        };
        match self.report(event).await {
            Ok(()) => then,
            Err(retry) => retry,
        }
    }
}

#[async_trait]
impl Handler for MediaSync {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let job = match MediaJob::from_json(&delivery.body) {
            Ok(j) => j,
            Err(e) => return Outcome::DeadLetter(format!("not a media job: {e}")),
        };
        let outcome = self.process(&job, delivery.receive_count).await;
        if let Outcome::Retry { reason, .. } = &outcome {
            tracing::warn!(job = %redact::key(&job.job_key()), %reason, "media fetch will be retried");
        }
        outcome
    }
}
