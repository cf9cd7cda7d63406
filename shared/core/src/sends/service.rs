//! The sends service: what `POST /sends`, `GET /sends/{id}`, `POST /consents` and
//! `GET /consents?to=` do (transport-free, called by [`crate::api`]), the sender's queue
//! handler, and [`Sends::apply_status`] for the sync handler (delivery tracking).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::now_ms;
use crate::consent::{ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ContactRef};
use crate::consumer::{Handler, Outcome};
use crate::error::StoreError;
use crate::http::{ApiError, Request};
use crate::queue::{Delivery, OutgoingMessage, Queue};
use crate::sends::classify::SendFailure;
use crate::sends::graph::MessageApi;
use crate::sends::policy::Policy;
use crate::sends::ratelimit::RateLimiter;
use crate::sends::request::SendRequest;
use crate::sends::store::{Created, SendError, SendRecord, SendState, SendStore};

/// How long a sender holds the right to call Meta for one send (longer than the Graph timeout).
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// Attempts before a retryable failure becomes a `failed` send.
pub const MAX_ATTEMPTS: u32 = 8;
/// Largest `POST /consents` body.
const MAX_CONSENT_BYTES: usize = 16 * 1024;

/// Told when a send ends without a status webhook (refused by a guard in the sender, failed at
/// Meta's API, gave up): the CRM's outbound activity for it; and when Meta reports a marketing
/// opt-out (131050). Sends Meta accepted end through status webhooks, whose activities are the
/// CRM's record (they carry the send id), so `finished` is not called for them.
///
/// Implementations must be idempotent (the same send may be reported again after a failed
/// call); an error makes the caller retry. [`crate::sends::events::QueueEvents`] puts them on
/// the events queue; the default does nothing.
#[async_trait]
pub trait SendEvents: Send + Sync {
    async fn finished(&self, _record: &SendRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn opted_out(&self, _contact: &ContactRef, _send_id: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// No-op [`SendEvents`].
pub struct NoEvents;
impl SendEvents for NoEvents {}

#[derive(Clone)]
pub struct Sends {
    pub store: Arc<dyn SendStore>,
    pub queue: Arc<dyn Queue>,
    pub policy: Policy,
    pub events: Arc<dyn SendEvents>,
    /// `WABRIDGE_API_KEY`; `None` refuses every call (fail closed).
    api_key: Option<Arc<str>>,
}

/// The queue body of a send: its id (the sender reads the rest from the store).
pub fn queue_body(id: &str) -> String {
    json!({"v": 1, "send_id": id}).to_string()
}

impl Sends {
    pub fn new(
        store: Arc<dyn SendStore>,
        queue: Arc<dyn Queue>,
        policy: Policy,
        events: Arc<dyn SendEvents>,
        api_key: Option<String>,
    ) -> Sends {
        let api_key = api_key.filter(|k| !k.trim().is_empty()).map(Arc::from);
        Sends {
            store,
            queue,
            policy,
            events,
            api_key,
        }
    }

    /// `Authorization: Bearer <WABRIDGE_API_KEY>` (see [`Request::authorize_bearer`]): no key
    /// configured refuses every call.
    pub fn authorize(&self, request: &Request) -> Result<(), ApiError> {
        request.authorize_bearer(self.api_key.as_deref())
    }

    /// `POST /sends`: validate, check the guards, store (idempotently), enqueue. Returns the
    /// record (new or the one the Idempotency-Key names).
    pub async fn submit(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<SendRecord, ApiError> {
        let key = match idempotency_key.map(str::trim) {
            Some(k) if k.is_empty() || k.len() > 255 => {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 characters",
                ))
            }
            other => other.map(str::to_string),
        };
        let request = SendRequest::parse(body)?;
        let hash = request.hash();
        if let Some(refusal) = self.policy.check(&request, now_ms()).await? {
            return Err(refusal.into_api_error());
        }
        let now = now_ms();
        let record = SendRecord {
            id: format!("snd_{}", uuid::Uuid::now_v7().simple()),
            idempotency_key: key,
            request_hash: hash.clone(),
            request: serde_json::to_value(&request)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            contact: request.contact.clone(),
            state: SendState::Queued,
            error: None,
            wamid: None,
            created_at: now,
            updated_at: now,
        };
        let record = match self.store.create(&record).await? {
            Created::New(r) => r,
            Created::Existing(existing) => {
                if existing.request_hash != hash {
                    return Err(ApiError::Conflict(
                        "this Idempotency-Key was used for a different request; use a new key for a new send".into(),
                    ));
                }
                if existing.state != SendState::Queued {
                    return Ok(existing);
                }
                // Enqueue again: the first call may have died between storing and enqueuing. The
                // sender's claim makes the extra queue message harmless.
                existing
            }
        };
        self.queue
            .send_batch(&[OutgoingMessage {
                id: record.id.clone(),
                body: queue_body(&record.id),
                delay: None,
            }])
            .await?;
        Ok(record)
    }

    /// `GET /sends/{id}`.
    pub async fn get(&self, id: &str) -> Result<SendRecord, ApiError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("send {id}")))
    }

    /// `POST /consents`: `{"to" | "recipient", "action": "opt_in"|"opt_out" (or "opt_in": bool),
    /// "category": "marketing"|"utility", "source": "web_form"|"checkout"|"store"|"agent",
    /// "evidence": "text or URL", "at": "RFC 3339" (default now)}`.
    pub async fn record_consent(&self, body: &[u8]) -> Result<ConsentEntry, ApiError> {
        if body.len() > MAX_CONSENT_BYTES {
            return Err(ApiError::PayloadTooLarge {
                size: body.len(),
                limit: MAX_CONSENT_BYTES,
            });
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ConsentBody {
            to: Option<String>,
            recipient: Option<String>,
            action: Option<String>,
            category: Option<String>,
            source: Option<String>,
            evidence: Option<String>,
            at: Option<String>,
        }
        let b: ConsentBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("body is not a valid consent: {e}"))
        })?;
        let contact = contact_from(b.to.as_deref(), b.recipient.as_deref())?;
        let action = b
            .action
            .as_deref()
            .and_then(ConsentAction::parse)
            .ok_or_else(|| {
                ApiError::bad_request("invalid_action", "`action` must be opt_in or opt_out")
            })?;
        let category = match b.category.as_deref() {
            None => ConsentCategory::Marketing,
            Some(c) => ConsentCategory::parse(c).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_category",
                    "`category` must be marketing or utility",
                )
            })?,
        };
        let source = b
            .source
            .as_deref()
            .and_then(ConsentSource::parse_api)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_source",
                    "`source` must be web_form, checkout, store or agent",
                )
            })?;
        let evidence = b
            .evidence
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        if evidence.as_ref().is_some_and(|e| e.chars().count() > 2048) {
            return Err(ApiError::bad_request(
                "invalid_evidence",
                "`evidence` is longer than 2048 characters",
            ));
        }
        let now = now_ms();
        let at = match b.at.as_deref() {
            None => now,
            Some(t) => {
                let parsed =
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            ApiError::bad_request(
                                "invalid_at",
                                "`at` must be an RFC 3339 timestamp (2026-05-01T12:00:00Z)",
                            )
                        })?;
                let ms = (parsed.unix_timestamp_nanos() / 1_000_000) as i64;
                if ms > now + 5 * 60_000 {
                    return Err(ApiError::bad_request("invalid_at", "`at` is in the future"));
                }
                ms
            }
        };
        let entry = ConsentEntry {
            id: format!("con_{}", uuid::Uuid::now_v7().simple()),
            contact: contact.key.clone(),
            to: contact.display.clone(),
            category,
            action,
            source,
            evidence,
            at,
            recorded_at: now,
        };
        self.policy.consent.record(&entry).await?;
        Ok(entry)
    }

    /// `GET /consents?to=` (or `?recipient=`): the history, oldest first, and the current state
    /// per category.
    pub async fn consents(
        &self,
        to: Option<&str>,
        recipient: Option<&str>,
    ) -> Result<Value, ApiError> {
        let contact = contact_from(to, recipient)?;
        let history = self.policy.consent.history(&contact).await?;
        let state = |c| match crate::consent::state_of(&history, c) {
            crate::consent::ConsentState::OptedIn => "opted_in",
            crate::consent::ConsentState::OptedOut => "opted_out",
            crate::consent::ConsentState::Unknown => "unknown",
        };
        Ok(json!({
            "to": contact.display,
            "marketing": state(ConsentCategory::Marketing),
            "utility": state(ConsentCategory::Utility),
            "history": history.iter().map(|e| json!({
                "id": e.id, "category": e.category, "action": e.action, "source": e.source,
                "evidence": e.evidence, "at": rfc3339(e.at), "recorded_at": rfc3339(e.recorded_at),
            })).collect::<Vec<_>>(),
        }))
    }

    /// Applies a status webhook item (`statuses[]`: `id`, `status`, `timestamp`,
    /// `biz_opaque_callback_data`, `errors[]`) to its send, forward only. Returns the send id and
    /// whether its state moved; `Ok(None)` when the status is not about one of our sends.
    /// Idempotent: a redelivered or late status changes nothing.
    pub async fn apply_status(&self, status: &Value) -> Result<Option<(String, bool)>, StoreError> {
        let str_of = |k: &str| {
            status
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let to = match str_of("status") {
            Some("sent") => SendState::Sent,
            Some("delivered") => SendState::Delivered,
            Some("read") | Some("played") => SendState::Read,
            Some("failed") => SendState::Failed,
            _ => return Ok(None),
        };
        let by_callback = str_of("biz_opaque_callback_data").filter(|d| d.starts_with("snd_"));
        let id = match by_callback {
            Some(id) => id.to_string(),
            None => match str_of("id") {
                Some(wamid) => match self.store.find_by_wamid(wamid).await? {
                    Some(id) => id,
                    None => return Ok(None),
                },
                None => return Ok(None),
            },
        };
        let error = (to == SendState::Failed).then(|| {
            let e = status.pointer("/errors/0");
            // A number, or a numeric string (the hooks and crm-sync's plan read it the same way).
            let code = e
                .and_then(|e| e.get("code"))
                .and_then(|c| c.as_i64().or_else(|| c.as_str()?.trim().parse().ok()));
            let title = e
                .and_then(|e| e.get("title").or(e.get("message")))
                .and_then(Value::as_str)
                .unwrap_or("failed");
            let details = e
                .and_then(|e| e.pointer("/error_data/details"))
                .and_then(Value::as_str);
            SendError {
                code: code.map_or_else(|| "meta_failed".to_string(), |c| format!("meta_{c}")),
                message: details.map_or_else(|| title.to_string(), |d| format!("{title}: {d}")),
            }
        });
        let at = str_of("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .map_or_else(now_ms, |s| s * 1000);
        let Some((record, moved)) = self
            .store
            .transition(&id, to, error.as_ref(), str_of("id"), at)
            .await?
        else {
            return Ok(None);
        };
        // The status webhook itself is the CRM's activity for this send (no `finished`). A
        // 131050 failure is a marketing opt-out: recorded and reported whether or not this
        // delivery moved the send, so a redelivery after a failed report completes it (both are
        // idempotent: the entry id and the event key derive from the send id). Reported only when
        // the callback data names the send: otherwise crm-sync's plan for the status carries the
        // consent record itself (it cannot tell our sends by wamid), and the CRM gets one.
        if to == SendState::Failed
            && record.state == SendState::Failed
            && record
                .error
                .as_ref()
                .is_some_and(|e| e.code == "meta_131050")
        {
            let contact = contact_of_record(&record);
            self.policy
                .consent
                .record_meta_opt_out(&contact, &record.id, at)
                .await?;
            if by_callback.is_some() {
                self.events.opted_out(&contact, &record.id).await?;
            }
        }
        Ok(Some((id, moved)))
    }
}

/// The contact a send was addressed to (its stored key; `to` or `recipient` for display).
pub fn contact_of_record(record: &SendRecord) -> ContactRef {
    let display = ["to", "recipient"]
        .iter()
        .find_map(|k| record.request.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    ContactRef {
        key: record.contact.clone(),
        display,
    }
}

fn contact_from(to: Option<&str>, recipient: Option<&str>) -> Result<ContactRef, ApiError> {
    let to = to.map(str::trim).filter(|s| !s.is_empty());
    let recipient = recipient.map(str::trim).filter(|s| !s.is_empty());
    match (to, recipient) {
        (Some(to), _) => ContactRef::parse(to)
            .filter(|c| c.key.starts_with("phone:"))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_recipient",
                    "`to` is not a valid phone number (use the international format)",
                )
            }),
        (None, Some(r)) => crate::identity::Bsuid::parse(r)
            .map(|b| ContactRef::bsuid(&b))
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_recipient",
                    "`recipient` is not a BSUID (CC.<alphanumerics>)",
                )
            }),
        (None, None) => Err(ApiError::bad_request(
            "missing_recipient",
            "give `to` (a phone number) or `recipient` (a BSUID)",
        )),
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The JSON answer of `POST /sends` and `GET /sends/{id}`.
pub fn send_json(record: &SendRecord) -> Value {
    let mut v = json!({"id": record.id, "state": record.state.as_str()});
    if let Some(e) = &record.error {
        v["error"] = json!({"code": e.code, "message": e.message});
    }
    v
}

/// The sender: the queue handler that guards, rate-limits and posts each send to Meta.
pub struct Sender {
    pub sends: Sends,
    pub graph: Arc<dyn MessageApi>,
    pub limiter: Arc<RateLimiter>,
}

impl Sender {
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
            Ok(Some((record, _))) => self.report(&record).await,
            Ok(None) => Outcome::Done,
            Err(e) => Outcome::RetryAfter(retry_store(&e)),
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
            if let Err(e) = self
                .sends
                .events
                .opted_out(&contact_of_record(record), &record.id)
                .await
            {
                tracing::warn!(send_id = %record.id, error = %e, "opt-out report failed; retrying");
                return Outcome::RetryAfter(Duration::from_secs(5));
            }
        }
        match self.sends.events.finished(record).await {
            Ok(()) => Outcome::Done,
            Err(e) => {
                tracing::warn!(send_id = %record.id, error = %e, "send report failed; retrying");
                Outcome::RetryAfter(Duration::from_secs(5))
            }
        }
    }
}

/// A send that ended without reaching Meta's delivery flow (no message id): refused by a guard,
/// or failed at the API. Those ended by status webhooks have a wamid.
fn ended_by_sender(record: &SendRecord) -> bool {
    matches!(record.state, SendState::Refused | SendState::Failed) && record.wamid.is_none()
}

fn retry_store(e: &StoreError) -> Duration {
    tracing::warn!(error = %e, "send store failed; retrying");
    Duration::from_secs(5)
}

#[async_trait]
impl Handler for Sender {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let id = match serde_json::from_str::<Value>(&delivery.body)
            .ok()
            .and_then(|v| v.get("send_id").and_then(Value::as_str).map(str::to_string))
        {
            Some(id) => id,
            None => return Outcome::DeadLetter("queue message is not a send (no send_id)".into()),
        };
        let record = match self.sends.store.get(&id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::DeadLetter(format!("send {id} does not exist")),
            Err(e) => return Outcome::RetryAfter(retry_store(&e)),
        };
        if record.state != SendState::Queued {
            // Sent (or ended) before: a duplicate queue message, or the retry of a report that
            // failed after the send ended (reported again; idempotent).
            return self.report(&record).await;
        }
        let request: SendRequest = match serde_json::from_value(record.request.clone()) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::DeadLetter(format!("send {id} has an unreadable request: {e}"))
            }
        };
        // The guards again: consent or a template's status may have changed while it waited.
        match self.sends.policy.check(&request, now_ms()).await {
            Ok(Some(refusal)) => {
                let error = SendError {
                    code: refusal.code().to_string(),
                    message: refusal.message(),
                };
                return self
                    .finish(&id, SendState::Refused, Some(error), None)
                    .await;
            }
            Ok(None) => {}
            Err(e) => return Outcome::RetryAfter(retry_store(&e)),
        }
        if let Err(wait) = self.limiter.wait(&record.contact).await {
            return Outcome::RetryAfter(wait);
        }
        // The limiter paces this process; the store's window holds across sender instances.
        let now = now_ms();
        let pair = self.limiter.pair_interval();
        match self
            .sends
            .store
            .reserve_pair(&record.contact, &id, now, pair)
            .await
        {
            Ok(None) => {}
            Ok(Some(wait)) => return Outcome::RetryAfter(wait),
            Err(e) => return Outcome::RetryAfter(retry_store(&e)),
        }
        match self
            .sends
            .store
            .claim(&id, now, now + CLAIM_LEASE.as_millis() as i64)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Outcome::RetryAfter(CLAIM_LEASE), // Another delivery is sending it.
            Err(e) => return Outcome::RetryAfter(retry_store(&e)),
        }
        let message = request.to_outbound(&id);
        match self.graph.send(&message).await {
            Ok(accepted) => {
                // Meta took it: record `sent`. A lost write here must not resend: retry the write.
                let mut tries = 0;
                loop {
                    match self
                        .sends
                        .store
                        .transition(
                            &id,
                            SendState::Sent,
                            None,
                            accepted.message_id.as_deref(),
                            now_ms(),
                        )
                        .await
                    {
                        Ok(_) => return Outcome::Done,
                        Err(e) if tries < 5 => {
                            tries += 1;
                            tracing::warn!(send_id = %id, error = %e, "recording sent failed; retrying");
                            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                        }
                        Err(e) => {
                            // The lease keeps other deliveries off for CLAIM_LEASE; after that a
                            // redelivery may send again (the one at-least-once window).
                            tracing::error!(send_id = %id, error = %e, "could not record sent");
                            return Outcome::RetryAfter(CLAIM_LEASE);
                        }
                    }
                }
            }
            Err(failure) => {
                let attempt = delivery.receive_count.max(1);
                let code = failure
                    .code()
                    .map_or_else(|| "send_failed".to_string(), |c| format!("meta_{c}"));
                let error = SendError {
                    code,
                    message: failure.reason().to_string(),
                };
                match &failure {
                    SendFailure::Retry { .. } | SendFailure::PairRate { .. }
                        if attempt < MAX_ATTEMPTS =>
                    {
                        let _ = self.sends.store.release(&id).await;
                        tracing::info!(send_id = %id, attempt, reason = failure.reason(), "send retried");
                        Outcome::RetryAfter(
                            failure.delay(attempt).unwrap_or(Duration::from_secs(1)),
                        )
                    }
                    SendFailure::OptedOut { .. } => {
                        let contact = request.contact_ref();
                        if let Err(e) = self
                            .sends
                            .policy
                            .consent
                            .record_meta_opt_out(&contact, &id, now_ms())
                            .await
                        {
                            let _ = self.sends.store.release(&id).await;
                            return Outcome::RetryAfter(retry_store(&e));
                        }
                        // `finish` reports both the failure and the opt-out.
                        self.finish(&id, SendState::Failed, Some(error), None).await
                    }
                    _ => {
                        let error = if failure.is_retryable() {
                            SendError {
                                code: error.code,
                                message: format!(
                                    "gave up after {attempt} attempts: {}",
                                    error.message
                                ),
                            }
                        } else {
                            error
                        };
                        self.finish(&id, SendState::Failed, Some(error), None).await
                    }
                }
            }
        }
    }
}

/// Reads the window/consent services' contact from a webhook `wa_id` (for the sync handler).
pub fn contact_of_wa_id(wa_id: &str) -> Option<ContactRef> {
    ContactRef::from_wa_id(wa_id)
}
