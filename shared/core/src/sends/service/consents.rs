//! `POST /consents` and `GET /consents?to=`: recording a consent (idempotent with a key, audited,
//! told to the CRM) and reading a contact's history and state.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{idempotency_key_of, Sends};
use crate::audit::action;
use crate::clock::{now_ms, rfc3339};
use crate::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ContactRef, Keyed,
};
use crate::sends::error::{RequestError, SendsError};

/// Largest `POST /consents` body.
pub const MAX_CONSENT_BYTES: usize = 16 * 1024;

impl Sends {
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
