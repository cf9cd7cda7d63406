//! The sends service: what `POST /sends`, `GET /sends/{id}`, `POST /consents` and
//! `GET /consents?to=` do (transport-free, called by [`crate::api`]; the consent routes in
//! `consents.rs`). The sender's queue handler is in [`super::sender`], status application in
//! [`super::status`].

use std::sync::Arc;

use crate::audit::{action, Audit};
use crate::auth::ApiKeys;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agents::AgentCatalogue;
use crate::clock::now_ms;
use crate::consent::ConsentEntry;
use crate::error::StoreError;
use crate::identity::E164;
use crate::media::upload::MediaLibrary;
use crate::queue::{OutgoingMessage, Queue};
use crate::sends::error::{RequestError, SendsError};
use crate::sends::language::{choose, LanguageMap};
use crate::sends::policy::{Policy, Refusal};
use crate::sends::request::{SendKind, SendRequest};
use crate::sends::store::{Created, SendRecord, SendState, SendStore};

mod consents;
pub use consents::{consent_request, MAX_CONSENT_BYTES};

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
