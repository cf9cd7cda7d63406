//! The sends service: what `POST /sends`, `GET /sends/{id}`, `POST /consents` and
//! `GET /consents?to=` do (transport-free, called by [`crate::api`]). The sender's queue
//! handler is in [`super::sender`], status application in [`super::status`].

use std::sync::Arc;

use crate::audit::{action, Audit};
use crate::auth::ApiKeys;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agents::AgentCatalogue;
use crate::clock::{now_ms, rfc3339};
use crate::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ContactRef, Keyed,
};
use crate::error::StoreError;
use crate::identity::E164;
use crate::media::upload::MediaLibrary;
use crate::queue::{OutgoingMessage, Queue};
use crate::sends::error::{RequestError, SendsError};
use crate::sends::language::{choose, LanguageMap};
use crate::sends::policy::{Policy, Refusal};
use crate::sends::request::{SendKind, SendRequest};
use crate::sends::store::{Created, SendRecord, SendState, SendStore};

/// Largest `POST /consents` body.
pub const MAX_CONSENT_BYTES: usize = 16 * 1024;

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
    /// The send `record` was refused with 131050 (the person stopped marketing messages).
    async fn opted_out(&self, _record: &SendRecord) -> Result<(), StoreError> {
        Ok(())
    }
    /// A consent recorded through `POST /consents`, for the CRM.
    async fn consent_recorded(&self, _entry: &ConsentEntry) -> Result<(), StoreError> {
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
    /// The API keys the HTTP edge checks each call against; none refuses every call (fail
    /// closed).
    keys: Arc<ApiKeys>,
    /// Where the API's writes are recorded (none: not recorded).
    audit: Audit,
    /// The language of a template send without one, by the recipient's country.
    languages: Arc<LanguageMap>,
    /// The stored files sends may carry; none refuses sends with a file (`media_unavailable`).
    media: Option<MediaLibrary>,
    /// The agents a send may name.
    agents: Arc<AgentCatalogue>,
    /// The numbers registry `from` is resolved in; none: the one number, and `from` is refused.
    numbers: Option<Arc<crate::numbers::Numbers>>,
}

/// The sends queue's message: the send's id (the sender reads the rest from the store).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendMessage {
    pub v: u8,
    pub send_id: String,
}

/// The queue body of a send.
pub fn queue_body(id: &str) -> String {
    let message = SendMessage {
        v: 1,
        send_id: id.to_string(),
    };
    // A struct of a number and a string always serialises.
    serde_json::to_string(&message).expect("send messages serialise")
}

impl Sends {
    pub fn new(
        store: Arc<dyn SendStore>,
        queue: Arc<dyn Queue>,
        policy: Policy,
        events: Arc<dyn SendEvents>,
        keys: Arc<ApiKeys>,
    ) -> Sends {
        Sends {
            store,
            queue,
            policy,
            events,
            keys,
            audit: Audit::none(),
            languages: Arc::new(LanguageMap::default()),
            media: None,
            agents: Arc::new(AgentCatalogue::default()),
            numbers: None,
        }
    }

    /// The agents a send may name (the mapping's `[agents]`; any well-formed id without one).
    pub fn with_agents(mut self, agents: AgentCatalogue) -> Sends {
        self.agents = Arc::new(agents);
        self
    }

    /// Sends name their number (`from`) in this registry.
    pub fn with_numbers(mut self, numbers: Arc<crate::numbers::Numbers>) -> Sends {
        self.policy = self.policy.with_numbers(numbers.clone());
        self.numbers = Some(numbers);
        self
    }

    /// The stored files sends may carry (`header`, `media`), checked at `POST /sends`.
    pub fn with_media(mut self, media: MediaLibrary) -> Sends {
        self.media = Some(media);
        self
    }

    /// The stored files, when this gateway keeps them.
    pub fn media(&self) -> Option<&MediaLibrary> {
        self.media.as_ref()
    }

    /// The country → language map for template sends without `language`
    /// (`WABRIDGE_TEMPLATE_LANGUAGES`; the built-in map otherwise).
    pub fn with_languages(mut self, languages: LanguageMap) -> Sends {
        self.languages = Arc::new(languages);
        self
    }

    /// Gives a template send without `language` the first of its recipient's languages that
    /// the registry knows as APPROVED; refuses it when there is none.
    async fn choose_language(&self, request: &mut SendRequest) -> Result<(), SendsError> {
        let country = request.to.as_ref().and_then(E164::region);
        let SendKind::Template { name, language, .. } = &mut request.kind else {
            return Ok(());
        };
        if !language.is_empty() {
            return Ok(());
        }
        let tried = self.languages.candidates(country.as_deref());
        let approved = self
            .policy
            .templates_for(request.from.as_deref())
            .approved_languages(name)
            .await?;
        match choose(&tried, &approved) {
            Ok(chosen) => {
                *language = chosen;
                Ok(())
            }
            Err(approved) => Err(SendsError::Refused(Refusal::TemplateLanguageUnavailable {
                tried,
                approved,
            })),
        }
    }

    /// Records the API's writes (sends, consents) in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Sends {
        self.audit = audit;
        self
    }

    /// The API keys the HTTP edge checks every call against (none refuses every call).
    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    /// `POST /sends`: validate, check the guards, store (idempotently), enqueue. Returns the
    /// record (new or the one the Idempotency-Key names).
    pub async fn submit(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<SendRecord, SendsError> {
        self.submit_by(body, idempotency_key, None).await
    }

    /// [`Sends::submit`] for `actor` (an API key: `key:<id>`): a new send leaves an audit
    /// line; a replay of its Idempotency-Key does not, as it writes nothing.
    pub async fn submit_by(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
        actor: Option<&str>,
    ) -> Result<SendRecord, SendsError> {
        let key = idempotency_key_of(idempotency_key)?;
        let mut request = SendRequest::parse(body)?;
        if let Some(agent) = &request.agent {
            self.agents.check(agent)?;
        }
        // The caller's request, before wabridge fills anything in: a replay matches it.
        let hash = request.hash();
        request.from =
            crate::numbers::resolve_from(self.numbers.as_deref(), request.from.as_deref())
                .map_err(|(code, message)| SendsError::Number { code, message })?;
        self.choose_language(&mut request).await?;
        if let Some(refusal) = self.policy.check(&request, now_ms()).await? {
            return Err(SendsError::Refused(refusal));
        }
        // After the guards: a send they refuse is refused the same with or without a file.
        let header = matches!(request.kind, SendKind::Template { .. });
        let contact = request.contact.clone();
        if let Some(attachment) = request.attachment_mut() {
            let media = self.media.as_ref();
            let resolved = super::media::resolve(media, attachment, header, &contact).await?;
            if let Some(refusal) = resolved {
                return Err(SendsError::Refused(refusal));
            }
        }
        let now = now_ms();
        let record = SendRecord {
            id: format!("snd_{}", uuid::Uuid::now_v7().simple()),
            idempotency_key: key,
            request_hash: hash.clone(),
            // A struct of strings and JSON values always serialises.
            request: serde_json::to_value(&request).expect("send requests serialise"),
            contact: request.contact.clone(),
            state: SendState::Queued,
            error: None,
            wamid: None,
            created_at: now,
            updated_at: now,
        };
        // The queue message first: if it cannot be written, nothing is stored and the caller
        // gets a 5xx, so no send waits `queued` for a message that never comes. A message whose
        // record is then not stored (the store failed, or the key named an earlier send) is
        // dropped by the sender once it is older than `sender::ORPHAN_GRACE`.
        self.enqueue(&record.id).await?;
        match self.store.create(&record).await? {
            Created::New(r) => {
                if let Some(actor) = actor {
                    self.audit.note(actor, action::SEND, Some(&r.id)).await;
                }
                Ok(r)
            }
            Created::Existing(existing) => {
                if existing.request_hash != hash {
                    return Err(SendsError::KeyReused);
                }
                if existing.state == SendState::Queued {
                    // The first call may have died before its message was taken: the sender's
                    // claim makes an extra queue message harmless.
                    self.enqueue(&existing.id).await?;
                }
                Ok(existing)
            }
        }
    }

    async fn enqueue(&self, id: &str) -> Result<(), StoreError> {
        self.queue
            .send_batch(&[OutgoingMessage {
                id: id.to_string(),
                body: queue_body(id),
                delay: None,
            }])
            .await
    }

    /// `GET /sends/{id}`.
    pub async fn get(&self, id: &str) -> Result<SendRecord, SendsError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| SendsError::NotFound(id.to_string()))
    }

    /// `POST /consents`: `{"to" | "recipient", "action": "opt_in"|"opt_out" (or "opt_in": bool),
    /// "category": "marketing"|"utility", "source": "web_form"|"checkout"|"store"|"agent",
    /// "evidence", "at"}`. With an `Idempotency-Key`, a retried call records one consent and
    /// answers with it; the key with another body is [`SendsError::KeyReused`]. Every recorded
    /// consent goes to the CRM as a `consent` event (key `consent:{id}`: once, however often it
    /// is emitted). Without a key each call is a new entry.
    pub async fn record_consent(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<ConsentEntry, SendsError> {
        self.record_consent_by(body, idempotency_key, None).await
    }

    /// [`Sends::record_consent`] for `actor`: a new entry leaves an audit line, a replay of its
    /// Idempotency-Key does not.
    pub async fn record_consent_by(
        &self,
        body: &[u8],
        idempotency_key: Option<&str>,
        actor: Option<&str>,
    ) -> Result<ConsentEntry, SendsError> {
        let key = idempotency_key_of(idempotency_key)?;
        let mut entry = consent_request(body, now_ms())?;
        if let Some(given) = entry.number.take() {
            let number = crate::numbers::resolve_from(self.numbers.as_deref(), Some(&given))
                .map_err(|(code, message)| SendsError::Number {
                    code,
                    message: message.replace("`from`", "`number`"),
                })?;
            entry.number = number;
        }
        let mut new = true;
        let entry = match key {
            None => {
                self.policy.consent.record(&entry).await?;
                entry
            }
            Some(key) => {
                use sha2::Digest;
                entry.id = format!(
                    "api_{}",
                    &hex::encode(sha2::Sha256::digest(key.as_bytes()))[..32]
                );
                let hash = hex::encode(sha2::Sha256::digest(body_canonical(body)));
                match self.policy.consent.record_keyed(&entry, &hash).await? {
                    Keyed::New(e) => e,
                    Keyed::Existing(e) => {
                        new = false;
                        e
                    }
                    Keyed::Conflict => return Err(SendsError::KeyReused),
                }
            }
        };
        if let (true, Some(actor)) = (new, actor) {
            self.audit
                .note(actor, action::CONSENT, Some(&entry.id))
                .await;
        }
        // After the history: a failure here answers 5xx, and the caller's retry (with its key)
        // emits again; the event's stable key lands it in the CRM once.
        self.events.consent_recorded(&entry).await?;
        Ok(entry)
    }

    /// `GET /consents?to=` (or `?recipient=`): the history, oldest first, and the current state
    /// per category.
    pub async fn consents(
        &self,
        to: Option<&str>,
        recipient: Option<&str>,
    ) -> Result<Value, SendsError> {
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
                "number": e.number,
            })).collect::<Vec<_>>(),
        }))
    }
}

/// The `Idempotency-Key` header, trimmed: 1 to 255 characters.
fn idempotency_key_of(header: Option<&str>) -> Result<Option<String>, RequestError> {
    match header.map(str::trim) {
        Some(k) if k.is_empty() || k.len() > 255 => Err(RequestError::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 characters",
        )),
        other => Ok(other.map(str::to_string)),
    }
}

/// A JSON body in one canonical form (members sorted, no spaces), so that a retry that
/// re-serialises the same request hashes the same; bytes that are not JSON hash as they are
/// (the parser refused them before this is called).
fn body_canonical(body: &[u8]) -> Vec<u8> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec())
}

/// A `POST /consents` body as the consent entry it records (validated; `now` is the default
/// `at` and the time it is recorded). Public for the fuzz target (`fuzz/`), which must reach the
/// parser without a store.
pub fn consent_request(body: &[u8], now: i64) -> Result<ConsentEntry, RequestError> {
    RequestError::check_size(body, MAX_CONSENT_BYTES)?;
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
        /// The business number it was given on (a label or a `phone_number_id` of the
        /// registry); resolved by [`Sends::record_consent_by`].
        number: Option<String>,
    }
    let b: ConsentBody = serde_json::from_slice(body).map_err(|e| {
        RequestError::invalid("invalid_json", format!("body is not a valid consent: {e}"))
    })?;
    let contact = contact_from(b.to.as_deref(), b.recipient.as_deref())?;
    let action = b
        .action
        .as_deref()
        .and_then(ConsentAction::parse)
        .ok_or_else(|| {
            RequestError::invalid("invalid_action", "`action` must be opt_in or opt_out")
        })?;
    let category = match b.category.as_deref() {
        None => ConsentCategory::Marketing,
        Some(c) => ConsentCategory::parse(c).ok_or_else(|| {
            RequestError::invalid(
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
            RequestError::invalid(
                "invalid_source",
                "`source` must be web_form, checkout, store or agent",
            )
        })?;
    let evidence = b
        .evidence
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if evidence.as_ref().is_some_and(|e| e.chars().count() > 2048) {
        return Err(RequestError::invalid(
            "invalid_evidence",
            "`evidence` is longer than 2048 characters",
        ));
    }
    let at = match b.at.as_deref() {
        None => now,
        Some(t) => {
            let parsed =
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        RequestError::invalid(
                            "invalid_at",
                            "`at` must be an RFC 3339 timestamp (2026-05-01T12:00:00Z)",
                        )
                    })?;
            let ms = (parsed.unix_timestamp_nanos() / 1_000_000) as i64;
            if ms > now + 5 * 60_000 {
                return Err(RequestError::invalid("invalid_at", "`at` is in the future"));
            }
            ms
        }
    };
    Ok(ConsentEntry {
        id: format!("con_{}", uuid::Uuid::now_v7().simple()),
        contact: contact.key.clone(),
        to: contact.display.clone(),
        category,
        action,
        source,
        evidence,
        at,
        recorded_at: now,
        number: match b.number.as_deref().map(str::trim) {
            None => None,
            Some(n) if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) => {
                return Err(RequestError::invalid(
                    "invalid_number",
                    "`number` must be a registered number's label or phone_number_id (1 to 64 characters)",
                ))
            }
            Some(n) => Some(n.to_string()),
        },
    })
}

fn contact_from(to: Option<&str>, recipient: Option<&str>) -> Result<ContactRef, RequestError> {
    let to = to.map(str::trim).filter(|s| !s.is_empty());
    let recipient = recipient.map(str::trim).filter(|s| !s.is_empty());
    match (to, recipient) {
        (Some(to), _) => ContactRef::parse(to)
            .filter(|c| c.key.starts_with("phone:"))
            .ok_or_else(|| {
                RequestError::invalid(
                    "invalid_recipient",
                    "`to` is not a valid phone number (use the international format)",
                )
            }),
        (None, Some(r)) => crate::identity::Bsuid::parse(r)
            .map(|b| ContactRef::bsuid(&b))
            .map_err(|_| {
                RequestError::invalid(
                    "invalid_recipient",
                    "`recipient` is not a BSUID (CC.<alphanumerics>)",
                )
            }),
        (None, None) => Err(RequestError::invalid(
            "missing_recipient",
            "give `to` (a phone number) or `recipient` (a BSUID)",
        )),
    }
}

/// The JSON answer of `POST /sends` and `GET /sends/{id}`.
pub fn send_json(record: &SendRecord) -> Value {
    let mut v = json!({"id": record.id, "state": record.state.as_str()});
    if record.request.get("type").and_then(Value::as_str) == Some("template") {
        // The language the send goes in: the caller's, or the one wabridge chose.
        v["template"] = record.request["name"].clone();
        v["language"] = record.request["language"].clone();
    }
    if let Some(e) = &record.error {
        v["error"] = json!({"code": e.code, "message": e.message});
    }
    v
}
