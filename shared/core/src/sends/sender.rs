//! The sender: the sends queue's handler, which guards, rate-limits and posts each send to
//! Meta, records what Meta answered, and reports the sends that end without a status webhook.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::alerts::{AlertSink, LogAlerts};
use crate::breaker::{Admit, CircuitBreaker};
use crate::clock::now_ms;
use crate::consumer::{Handler, Outcome};
use crate::error::StoreError;
use crate::queue::Delivery;
use crate::retry::{backoff, describe, RetryPolicy};
use crate::sends::classify::SendFailure;
use crate::sends::graph::MessageApi;
use crate::sends::media::{MediaUploader, PrepareError, Prepared};
use crate::sends::ratelimit::RateLimiter;
use crate::sends::request::SendRequest;
use crate::sends::store::{SendError, SendRecord, SendState};

use super::service::{SendMessage, Sends};

/// How long a sender holds the right to call Meta for one send (longer than the Graph timeout).
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// How long a queue message may name a send that is not stored: `POST /sends` enqueues before
/// it stores, so the message can arrive first; after this the store write failed (the caller
/// got a 5xx) and the message is dropped.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(300);
/// The sender: the queue handler that guards, rate-limits and posts each send to Meta.
pub struct Sender {
    pub sends: Sends,
    pub graph: Arc<dyn MessageApi>,
    pub limiter: Arc<RateLimiter>,
    /// A send Meta's API could not take within `policy.horizon` of its creation ends `failed`.
    pub policy: RetryPolicy,
    /// The Graph API's circuit breaker.
    pub breaker: Arc<CircuitBreaker>,
    /// Uploads the files of media sends; none fails them (`media_unavailable`).
    pub media: Option<Arc<MediaUploader>>,
    /// Each registered number's Graph client (its path and token) and rate limiter, by
    /// phone_number_id: a send `from` one of them goes out through it ([`crate::numbers`]).
    pub lines: std::collections::HashMap<String, (Arc<dyn MessageApi>, Arc<RateLimiter>)>,
    /// Each registered number's uploader: a file goes to Meta from the number that sends it.
    pub line_media: std::collections::HashMap<String, Arc<MediaUploader>>,
    /// Where each send's outcome goes, for the failed-send rate ([`crate::alerts`]).
    pub alerts: Arc<dyn AlertSink>,
}

impl Sender {
    /// A sender with the default sends horizon ([`RetryPolicy::SENDS`]) and its own breaker.
    pub fn new(sends: Sends, graph: Arc<dyn MessageApi>, limiter: Arc<RateLimiter>) -> Self {
        Sender {
            sends,
            graph,
            limiter,
            policy: RetryPolicy::SENDS,
            breaker: Arc::new(CircuitBreaker::new("graph")),
            media: None,
            lines: Default::default(),
            line_media: Default::default(),
            alerts: Arc::new(LogAlerts),
        }
    }

    /// The files of sends `from` the number `phone_number_id` go to Meta through `media`.
    pub fn with_line_media(mut self, phone_number_id: &str, media: Arc<MediaUploader>) -> Self {
        self.line_media.insert(phone_number_id.to_string(), media);
        self
    }

    /// The uploader of the send's number (none: its media sends fail `media_unavailable`).
    fn uploader(&self, request: &SendRequest) -> Option<&Arc<MediaUploader>> {
        match &request.from {
            None => self.media.as_ref(),
            Some(id) => self.line_media.get(id),
        }
    }

    /// Sends `from` the number `phone_number_id` go out through `graph` at `limiter`'s pace.
    pub fn with_line(
        mut self,
        phone_number_id: &str,
        graph: Arc<dyn MessageApi>,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        self.lines
            .insert(phone_number_id.to_string(), (graph, limiter));
        self
    }

    /// The Graph client and limiter of the send's number; `None` for a number this sender
    /// does not have (removed from the registry after the send was accepted).
    fn line(&self, request: &SendRequest) -> Option<(&Arc<dyn MessageApi>, &Arc<RateLimiter>)> {
        match &request.from {
            None => Some((&self.graph, &self.limiter)),
            Some(id) => self.lines.get(id).map(|(g, l)| (g, l)),
        }
    }

    /// Sends files too (media templates' headers, media messages).
    pub fn with_media(mut self, media: Arc<MediaUploader>) -> Self {
        self.media = Some(media);
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long the send has been waiting.
    fn age(record: &SendRecord) -> Duration {
        Duration::from_millis((now_ms() - record.created_at).max(0) as u64)
    }

    /// Ends a send the sender stopped (refused, failed at Meta's API, gave up) and reports it.
    async fn finish(
        &self,
        id: &str,
        to: SendState,
        error: Option<SendError>,
        wamid: Option<&str>,
    ) -> Outcome {
        match self
            .sends
            .store
            .transition(id, to, error.as_ref(), wamid, now_ms())
            .await
        {
            Ok(Some((record, moved))) => {
                if moved {
                    self.count(to, error.as_ref()).await;
                }
                self.report(&record).await
            }
            Ok(None) => Outcome::Done,
            Err(e) => retry_store(&e),
        }
    }

    /// Tells [`SendEvents`] how a send the sender ended turned out: `finished`, and `opted_out`
    /// for 131050. A failed report retries the delivery, which lands here again (see the
    /// `handle` check of ended sends): nothing is lost, and the events' stable keys make the
    /// repeat harmless.
    async fn report(&self, record: &SendRecord) -> Outcome {
        if !ended_by_sender(record) {
            return Outcome::Done;
        }
        if record
            .error
            .as_ref()
            .is_some_and(|e| e.code == "meta_131050")
        {
            if let Err(e) = self.sends.events.opted_out(record).await {
                tracing::warn!(send_id = %record.id, error = %e, "opt-out report failed; retrying");
                return Outcome::retry(REPORT_RETRY, format!("opt-out report failed: {e}"));
            }
        }
        match self.sends.events.finished(record).await {
            Ok(()) => Outcome::Done,
            Err(e) => {
                tracing::warn!(send_id = %record.id, error = %e, "send report failed; retrying");
                Outcome::retry(REPORT_RETRY, format!("send report failed: {e}"))
            }
        }
    }
}

/// A send that ended without reaching Meta's delivery flow (no message id): refused by a guard,
/// or failed at the API. Those ended by status webhooks have a wamid.
fn ended_by_sender(record: &SendRecord) -> bool {
    matches!(record.state, SendState::Refused | SendState::Failed) && record.wamid.is_none()
}

/// A queue message naming a send that is not stored: wait for the API's store write (see
/// [`ORPHAN_GRACE`]), then drop it: the call that enqueued it was answered 5xx.
fn orphan(id: &str, delivery: &Delivery) -> Outcome {
    let age = delivery
        .enqueued_at
        .map(|at| Duration::from_millis((now_ms() - at).max(0) as u64));
    match age {
        Some(age) if age >= ORPHAN_GRACE => {
            tracing::warn!(send_id = %id, "queue message of a send never stored (its POST /sends failed); dropped");
            Outcome::Done
        }
        Some(_) => Outcome::retry(
            backoff(delivery.receive_count, None),
            format!("send {id} is not stored yet"),
        ),
        // A backend that does not say how old the message is: no grace to measure.
        None => Outcome::DeadLetter(format!("send {id} does not exist")),
    }
}

/// Wait after a failed store write or report.
const REPORT_RETRY: Duration = Duration::from_secs(5);

fn retry_store(e: &StoreError) -> Outcome {
    tracing::warn!(error = %e, "send store failed; retrying");
    Outcome::retry(REPORT_RETRY, format!("send store failed: {e}"))
}

impl Sender {
    /// The queued send and its request; an `Err` outcome ends the delivery there (a send
    /// already past `queued` is reported again, idempotently).
    async fn load(
        &self,
        id: &str,
        delivery: &Delivery,
    ) -> Result<(SendRecord, SendRequest), Outcome> {
        let record = match self.sends.store.get(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(orphan(id, delivery)),
            Err(e) => return Err(retry_store(&e)),
        };
        if record.state != SendState::Queued {
            // Sent (or ended) before: a duplicate queue message, or the retry of a report that
            // failed after the send ended (reported again; idempotent).
            return Err(self.report(&record).await);
        }
        match serde_json::from_value(record.request.clone()) {
            Ok(request) => Ok((record, request)),
            Err(e) => Err(Outcome::DeadLetter(format!(
                "send {id} has an unreadable request: {e}"
            ))),
        }
    }

    /// Everything before calling Meta: the guards again (consent or a template's status may
    /// have changed while it waited), this process's pace, the recipient's pair window across
    /// instances, then the claim. `Some` ends the delivery with that outcome.
    async fn clear(
        &self,
        record: &SendRecord,
        request: &SendRequest,
        limiter: &RateLimiter,
    ) -> Option<Outcome> {
        let id = record.id.as_str();
        match self.sends.policy.check(request, now_ms()).await {
            Ok(Some(refusal)) => {
                let error = SendError {
                    code: refusal.code().to_string(),
                    message: refusal.message(),
                };
                return Some(self.finish(id, SendState::Refused, Some(error), None).await);
            }
            Ok(None) => {}
            Err(e) => return Some(retry_store(&e)),
        }
        if let Err(wait) = limiter.wait(&record.contact).await {
            return Some(Outcome::retry(wait, "sender rate limit"));
        }
        let now = now_ms();
        let store = &self.sends.store;
        let pair = limiter.pair_interval();
        match store
            .reserve_pair(&record.contact, request.from.as_deref(), id, now, pair)
            .await
        {
            Ok(None) => {}
            Ok(Some(wait)) => return Some(Outcome::retry(wait, "pair rate limit")),
            Err(e) => return Some(retry_store(&e)),
        }
        let lease_end = now + CLAIM_LEASE.as_millis() as i64;
        match store.claim(id, now, lease_end).await {
            Ok(true) => None,
            // Another delivery is sending it.
            Ok(false) => Some(Outcome::retry(
                CLAIM_LEASE,
                "being sent by another delivery",
            )),
            Err(e) => Some(retry_store(&e)),
        }
    }

    /// The send's file, before the breaker is asked: a recent upload's id, or the file opened
    /// for upload. `Err` ends the delivery (a file gone from the store fails the send).
    async fn prepare_media(
        &self,
        record: &SendRecord,
        request: &SendRequest,
    ) -> Result<Option<Prepared>, Outcome> {
        let Some(attachment) = request.attachment() else {
            return Ok(None);
        };
        let id = record.id.as_str();
        let Some(media) = self.uploader(request) else {
            let error = SendError {
                code: "media_unavailable".into(),
                message: "this sender has no media store to upload the file from".into(),
            };
            return Err(self.finish(id, SendState::Failed, Some(error), None).await);
        };
        match media.prepare(attachment, now_ms()).await {
            Ok(prepared) => Ok(Some(prepared)),
            Err(PrepareError::Store(e)) => {
                let _ = self.sends.store.release(id).await;
                Err(retry_store(&e))
            }
            Err(e) => {
                let code = match e {
                    PrepareError::Missing(_) => "media_object_not_found",
                    PrepareError::Refused(ref r) => r.code(),
                    _ => "media_unusable",
                };
                let error = SendError {
                    code: code.into(),
                    message: e.to_string(),
                };
                Err(self.finish(id, SendState::Failed, Some(error), None).await)
            }
        }
    }

    /// Meta took it: record `sent`. A lost write here must not resend: retry the write.
    async fn record_sent(&self, id: &str, wamid: Option<&str>) -> Outcome {
        let mut tries = 0;
        loop {
            let store = &self.sends.store;
            match store
                .transition(id, SendState::Sent, None, wamid, now_ms())
                .await
            {
                Ok(moved) => {
                    if moved.is_some_and(|(_, moved)| moved) {
                        self.count(SendState::Sent, None).await;
                    }
                    return Outcome::Done;
                }
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(send_id = %id, error = %e, "recording sent failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => {
                    // The lease keeps other deliveries off for CLAIM_LEASE; after that a
                    // redelivery may send again (the one at-least-once window).
                    tracing::error!(send_id = %id, error = %e, "could not record sent");
                    return Outcome::retry(CLAIM_LEASE, format!("could not record sent: {e}"));
                }
            }
        }
    }

    /// Meta refused or did not answer: retry within the horizon, record the opt-out of a
    /// 131050, or end the send `failed`.
    async fn failed(
        &self,
        record: &SendRecord,
        request: &SendRequest,
        failure: SendFailure,
        receive_count: u32,
    ) -> Outcome {
        let id = record.id.as_str();
        let attempt = receive_count.max(1);
        let code = failure
            .code()
            .map_or_else(|| "send_failed".to_string(), |c| format!("meta_{c}"));
        let mut error = SendError {
            code,
            message: failure.reason().to_string(),
        };
        let retry = failure
            .delay(attempt)
            .and_then(|delay| self.policy.next(Self::age(record), delay));
        match (&failure, retry) {
            (SendFailure::Retry { .. } | SendFailure::PairRate { .. }, Some(after)) => {
                let _ = self.sends.store.release(id).await;
                tracing::info!(send_id = %id, attempt, reason = failure.reason(), "send retried");
                Outcome::retry(after, failure.reason())
            }
            (SendFailure::OptedOut { .. }, _) => {
                let contact = request.contact_ref();
                let consent = &self.sends.policy.consent;
                if let Err(e) = consent
                    .record_meta_opt_out(&contact, request.from.as_deref(), id, now_ms())
                    .await
                {
                    let _ = self.sends.store.release(id).await;
                    return retry_store(&e);
                }
                // `finish` reports both the failure and the opt-out.
                self.finish(id, SendState::Failed, Some(error), None).await
            }
            _ => {
                if failure.is_retryable() {
                    error.message = format!(
                        "gave up after {attempt} attempts in the {} retry horizon: {}",
                        describe(self.policy.horizon),
                        error.message
                    );
                }
                self.finish(id, SendState::Failed, Some(error), None).await
            }
        }
    }

    /// A send still queued past its horizon (the API was down, or the sender stopped, for that
    /// long) ends `failed` instead of going out late.
    async fn expired(&self, record: &SendRecord) -> Option<Outcome> {
        let age = Self::age(record);
        if age < self.policy.horizon {
            return None;
        }
        let error = SendError {
            code: "retry_horizon".into(),
            message: format!(
                "not sent within the {} retry horizon (queued {} ago)",
                describe(self.policy.horizon),
                describe(Duration::from_secs(age.as_secs()))
            ),
        };
        Some(
            self.finish(&record.id, SendState::Failed, Some(error), None)
                .await,
        )
    }
}

/// A queued send `from` a number this sender has no line for: nothing was done with it yet, so
/// a sender built from a re-read registry may still send it ([`Sender::attempt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLine {
    pub send_id: String,
}

impl Sender {
    /// Ends a send whose `from` number this sender lacks, even after a re-read of the registry
    /// (removed after the send was accepted): `failed`, `unknown_number`, reported.
    pub async fn fail_unknown_line(&self, line: &UnknownLine) -> Outcome {
        let error = SendError {
            code: crate::numbers::UNKNOWN_NUMBER.to_string(),
            message: "the send's `from` number is no longer registered".into(),
        };
        self.finish(&line.send_id, SendState::Failed, Some(error), None)
            .await
    }

    /// Handles a delivery as [`Handler::handle`] does, except a send `from` a number without
    /// a line, which is left untouched and returned (`Err`) before any guard or write.
    pub async fn attempt(&self, delivery: &Delivery) -> Result<Outcome, UnknownLine> {
        let id = match serde_json::from_str::<SendMessage>(&delivery.body) {
            Ok(m) => m.send_id,
            Err(e) => {
                return Ok(Outcome::DeadLetter(format!(
                    "queue message is not a send: {e}"
                )))
            }
        };
        let (record, request) = match self.load(&id, delivery).await {
            Ok(loaded) => loaded,
            Err(outcome) => return Ok(outcome),
        };
        if let Some(outcome) = self.expired(&record).await {
            return Ok(outcome);
        }
        let Some((graph, limiter)) = self.line(&request) else {
            return Err(UnknownLine { send_id: id });
        };
        Ok(self.send(delivery, &record, &request, graph, limiter).await)
    }

    /// From the guards to Meta's answer, through the send's line.
    async fn send(
        &self,
        delivery: &Delivery,
        record: &SendRecord,
        request: &SendRequest,
        graph: &Arc<dyn MessageApi>,
        limiter: &RateLimiter,
    ) -> Outcome {
        let id = record.id.as_str();
        if let Some(outcome) = self.clear(record, request, limiter).await {
            return outcome;
        }
        let prepared = match self.prepare_media(record, request).await {
            Ok(prepared) => prepared,
            Err(outcome) => return outcome,
        };
        if !crate::consumer::fits(graph.call_budget()) {
            // The invocation ends before Meta could answer: the next delivery sends it.
            let _ = self.sends.store.release(id).await;
            return Outcome::retry(
                backoff(delivery.receive_count, None),
                "no time left in this invocation for the Graph API call",
            );
        }
        // After the guards and the claim, so that a probe is never left unreported.
        let admit = self.breaker.admit();
        if let Admit::Wait(wait) = admit {
            let _ = self.sends.store.release(id).await;
            let after = wait.max(backoff(delivery.receive_count, None));
            return Outcome::retry(after, "Graph API unavailable (circuit open)");
        }
        let probe = admit == Admit::Probe;
        // The upload (when the file needs one) and the message count as one call to Meta.
        let media_id = match (prepared, self.uploader(request)) {
            (Some(Prepared::Upload(pending)), Some(media)) => {
                media.upload(pending, now_ms()).await.map(Some)
            }
            (Some(Prepared::Cached(media_id)), _) => Ok(Some(media_id)),
            _ => Ok(None),
        };
        let result = match media_id {
            Ok(media_id) => {
                let message = request.to_outbound_with(id, media_id.as_deref());
                graph.send(&message).await
            }
            Err(failure) => Err(failure),
        };
        match &result {
            // Meta's API is down or refusing our token; other failures are answers.
            Err(SendFailure::Retry { .. }) => self.breaker.failure(probe),
            _ => self.breaker.success(probe),
        }
        match result {
            Ok(accepted) => self.record_sent(id, accepted.message_id.as_deref()).await,
            Err(failure) => {
                self.failed(record, request, failure, delivery.receive_count)
                    .await
            }
        }
    }
}

#[async_trait]
impl Handler for Sender {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        match self.attempt(delivery).await {
            Ok(outcome) => outcome,
            Err(line) => self.fail_unknown_line(&line).await,
        }
    }
}
