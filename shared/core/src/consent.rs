//! Consent: the append-only history of a contact's opt-ins and opt-outs, per category.
//!
//! Nothing overwrites an earlier entry (it is an audit trail); the contact's consent for a
//! category is its **latest** entry by `at` (when the consent was given or withdrawn, as its
//! evidence says), ties broken by the order they were recorded. An old opt-in registered today
//! does not override a STOP the contact sent yesterday.
//!
//! Entry points for other parts of wabridge (each idempotent under redelivery: the entry id is
//! derived from the webhook event key):
//! - [`ConsentService::record`]: `POST /consents` (opt-ins collected outside WhatsApp);
//! - [`ConsentService::record_stop_keyword`]: the contact wrote STOP (or a mapping keyword);
//! - [`ConsentService::record_user_preference`]: a `user_preferences` webhook (`stop`/`resume`);
//! - [`ConsentService::record_meta_opt_out`]: a send failed with 131050.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::identity::{Bsuid, IdentityKey, Phone};

mod scope;
pub use scope::ConsentScope;

/// Meta's error code for "the user stopped marketing messages from this business".
pub const META_STOPPED_MARKETING: i64 = 131050;

/// What a consent covers. Meta's opt-out (`user_preferences`, 131050) is about marketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentCategory {
    Marketing,
    Utility,
}

impl ConsentCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentCategory::Marketing => "marketing",
            ConsentCategory::Utility => "utility",
        }
    }
    pub fn parse(s: &str) -> Option<ConsentCategory> {
        match s.trim().to_ascii_lowercase().as_str() {
            "marketing" => Some(ConsentCategory::Marketing),
            "utility" => Some(ConsentCategory::Utility),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    OptIn,
    OptOut,
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::OptIn => "opt_in",
            ConsentAction::OptOut => "opt_out",
        }
    }
    pub fn parse(s: &str) -> Option<ConsentAction> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "opt_in" | "optin" => Some(ConsentAction::OptIn),
            "opt_out" | "optout" => Some(ConsentAction::OptOut),
            _ => None,
        }
    }
}

/// Where a consent came from. The first four are what businesses register through the API;
/// the others are recorded by wabridge itself from WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    WebForm,
    Checkout,
    Store,
    Agent,
    /// The contact wrote a stop keyword (STOP, BAJA, ...).
    Keyword,
    /// A `user_preferences` webhook (marketing `stop` / `resume`).
    UserPreferences,
    /// Meta refused a send with 131050 (the user stopped marketing messages).
    MetaError,
    /// The person was erased: their opt-out tombstone ([`crate::erasure`]).
    Erasure,
}

impl ConsentSource {
    pub const API_SOURCES: &'static [&'static str] = &["web_form", "checkout", "store", "agent"];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::WebForm => "web_form",
            ConsentSource::Checkout => "checkout",
            ConsentSource::Store => "store",
            ConsentSource::Agent => "agent",
            ConsentSource::Keyword => "keyword",
            ConsentSource::UserPreferences => "user_preferences",
            ConsentSource::MetaError => "meta_error",
            ConsentSource::Erasure => "erasure",
        }
    }

    /// The sources a caller of the API may name (`web_form`, `checkout`, `store`, `agent`;
    /// `web-form` and `webform` are accepted too).
    pub fn parse_api(s: &str) -> Option<ConsentSource> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "web_form" | "webform" | "web" => Some(ConsentSource::WebForm),
            "checkout" => Some(ConsentSource::Checkout),
            "store" => Some(ConsentSource::Store),
            "agent" => Some(ConsentSource::Agent),
            _ => None,
        }
    }

    pub fn parse_stored(s: &str) -> Option<ConsentSource> {
        ConsentSource::parse_api(s).or(match s {
            "keyword" => Some(ConsentSource::Keyword),
            "user_preferences" => Some(ConsentSource::UserPreferences),
            "meta_error" => Some(ConsentSource::MetaError),
            "erasure" => Some(ConsentSource::Erasure),
            _ => None,
        })
    }
}

/// Who the consent is about: the key every spelling of the contact shares (see
/// [`crate::identity`]) and how the caller wrote it for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    /// `phone:<key>` or `bsuid:<id>` ([`IdentityKey::as_string`]).
    pub key: String,
    /// E.164 phone or BSUID.
    pub display: String,
}

impl ContactRef {
    pub fn phone(phone: &Phone) -> ContactRef {
        ContactRef {
            key: phone.identity_key().as_string(),
            display: phone.e164.to_string(),
        }
    }
    pub fn bsuid(bsuid: &Bsuid) -> ContactRef {
        ContactRef {
            key: bsuid.identity_key().as_string(),
            display: bsuid.to_string(),
        }
    }
    /// A recipient written by a person: a BSUID (`CC.…`) or a phone in any format (`+` and
    /// country code, or Meta's `wa_id` digits).
    pub fn parse(input: &str) -> Option<ContactRef> {
        let input = input.trim();
        if let Ok(b) = Bsuid::parse(input) {
            return Some(ContactRef::bsuid(&b));
        }
        ContactRef::parse_phone(input).map(|p| ContactRef::phone(&p))
    }
    /// A phone written by a person: `+` and country code in any spelling, or Meta's `wa_id`
    /// digits (read as international).
    pub fn parse_phone(input: &str) -> Option<Phone> {
        let input = input.trim();
        Phone::parse(input, None)
            .or_else(|_| {
                let digits: String = input.chars().filter(char::is_ascii_digit).collect();
                if !input.starts_with('+') && digits.len() >= 8 {
                    Phone::parse(&format!("+{digits}"), None)
                } else {
                    Err(crate::identity::IdentityError::NotAPhone(input.to_string()))
                }
            })
            .ok()
    }
    /// A `wa_id` from a webhook (lenient, as Meta sends it).
    pub fn from_wa_id(wa_id: &str) -> Option<ContactRef> {
        Phone::from_wa_id(wa_id).ok().map(|p| ContactRef::phone(&p))
    }
    pub fn identity_key(&self) -> Option<IdentityKey> {
        IdentityKey::from_stored(&self.key)
    }
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    /// Unique; the same id recorded twice is one entry (redelivered webhooks, retried calls).
    pub id: String,
    /// [`ContactRef::key`].
    pub contact: String,
    /// [`ContactRef::display`].
    pub to: String,
    pub category: ConsentCategory,
    pub action: ConsentAction,
    pub source: ConsentSource,
    /// Free text or a URL proving the consent (form submission, receipt, agent note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// When the consent was given or withdrawn, Unix ms.
    pub at: i64,
    /// When wabridge recorded it, Unix ms.
    pub recorded_at: i64,
    /// The business number (`phone_number_id`) it was given or withdrawn on: a keyword written
    /// to it, its `user_preferences` webhook, a send from it refused with 131050. `None`: the
    /// business as a whole (`POST /consents` naming no number). [`ConsentScope`] says whether
    /// it counts for the other numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// The contact's consent for one category, from its latest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentState {
    OptedIn,
    OptedOut,
    /// Nothing recorded.
    Unknown,
}

/// How long an `Idempotency-Key` of `POST /consents` is remembered (the marker expires; the
/// consent it recorded stays in the history).
pub const CONSENT_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Append-only consent history.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Appends `entry` unless an entry with its id exists (then nothing changes). Returns
    /// whether it was appended.
    async fn append(&self, entry: &ConsentEntry) -> Result<bool, StoreError>;
    /// The contact's history, oldest first (by `at`, then by recording order).
    async fn history(&self, contact: &str) -> Result<Vec<ConsentEntry>, StoreError>;
    /// Claims the idempotency marker `entry.id` for a request hashing to `request_hash`
    /// (kept [`CONSENT_KEY_TTL`]): `None` when this call claimed it, or the hash and entry of
    /// the call that did. Atomic: of concurrent claims of one id, exactly one gets `None`.
    async fn claim_key(
        &self,
        entry: &ConsentEntry,
        request_hash: &str,
    ) -> Result<Option<(String, ConsentEntry)>, StoreError>;
    /// When the person of `contact` was erased, from their opt-out tombstone, if they were.
    async fn erased_at(&self, contact: &str) -> Result<Option<i64>, StoreError>;
}

/// What recording a consent under an `Idempotency-Key` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyed {
    /// Recorded now.
    New(ConsentEntry),
    /// Recorded by an earlier call with the same key and body: that entry.
    Existing(ConsentEntry),
    /// The key was used with another body.
    Conflict,
}

/// The latest entry of `category` in a history sorted oldest first.
pub fn state_of(history: &[ConsentEntry], category: ConsentCategory) -> ConsentState {
    match history.iter().rev().find(|e| e.category == category) {
        Some(e) if e.action == ConsentAction::OptIn => ConsentState::OptedIn,
        Some(_) => ConsentState::OptedOut,
        None => ConsentState::Unknown,
    }
}

/// Sorts a history oldest first: by `at`, then by `recorded_at`, then by id.
pub fn sort_history(history: &mut [ConsentEntry]) {
    history.sort_by(|a, b| (a.at, a.recorded_at, &a.id).cmp(&(b.at, b.recorded_at, &b.id)));
}

#[derive(Clone)]
pub struct ConsentService {
    store: Arc<dyn ConsentStore>,
    scope: ConsentScope,
}

impl ConsentService {
    pub fn new(store: Arc<dyn ConsentStore>) -> ConsentService {
        ConsentService {
            store,
            scope: ConsentScope::default(),
        }
    }

    /// Whether an opt-out on one number holds for the others (`WABRIDGE_CONSENT_SCOPE`).
    pub fn with_scope(mut self, scope: ConsentScope) -> ConsentService {
        self.scope = scope;
        self
    }

    pub fn scope(&self) -> ConsentScope {
        self.scope
    }

    pub async fn record(&self, entry: &ConsentEntry) -> Result<bool, StoreError> {
        self.store.append(entry).await
    }

    /// Records `entry` once per idempotency key (its id derives from the key). A retry after a
    /// crash between the marker and the history append appends the first call's entry then:
    /// the append is idempotent, so the history never misses it nor holds it twice.
    pub async fn record_keyed(
        &self,
        entry: &ConsentEntry,
        request_hash: &str,
    ) -> Result<Keyed, StoreError> {
        match self.store.claim_key(entry, request_hash).await? {
            None => {
                self.store.append(entry).await?;
                Ok(Keyed::New(entry.clone()))
            }
            Some((hash, first)) if hash == request_hash => {
                self.store.append(&first).await?;
                Ok(Keyed::Existing(first))
            }
            Some(_) => Ok(Keyed::Conflict),
        }
    }

    /// The contact's history, oldest first. An erased person's starts with their tombstone: a
    /// marketing opt-out at the erasure, before which nothing counts (a stale opt-in replayed
    /// from a CRM loses; a new one wins, as after any opt-out).
    pub async fn history(&self, contact: &ContactRef) -> Result<Vec<ConsentEntry>, StoreError> {
        let history = self.store.history(&contact.key).await?;
        let Some(erased_at) = self.store.erased_at(&contact.key).await? else {
            return Ok(history);
        };
        let tombstone = ConsentEntry {
            id: "erasure".into(),
            contact: contact.key.clone(),
            to: contact.display.clone(),
            category: ConsentCategory::Marketing,
            action: ConsentAction::OptOut,
            source: ConsentSource::Erasure,
            evidence: None,
            at: erased_at,
            recorded_at: erased_at,
            number: None,
        };
        Ok(std::iter::once(tombstone)
            .chain(history.into_iter().filter(|e| e.at > erased_at))
            .collect())
    }

    pub async fn state(
        &self,
        contact: &ContactRef,
        category: ConsentCategory,
    ) -> Result<ConsentState, StoreError> {
        Ok(state_of(&self.history(contact).await?, category))
    }

    /// The contact wrote a stop keyword: a marketing opt-out. `event_key` is the webhook event's
    /// dedupe key (so a redelivery records nothing new); `at_ms` the message timestamp.
    pub async fn record_stop_keyword(
        &self,
        contact: &ContactRef,
        number: Option<&str>,
        event_key: &str,
        keyword: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        self.record(&system_entry(
            contact,
            number,
            format!("keyword:{event_key}"),
            ConsentAction::OptOut,
            ConsentSource::Keyword,
            Some(format!("wrote {keyword:?} on WhatsApp")),
            at_ms,
        ))
        .await
    }

    /// A `user_preferences` webhook: `value` `stop` is a marketing opt-out, `resume` an opt-in.
    /// Other values are ignored (`Ok(false)`).
    pub async fn record_user_preference(
        &self,
        contact: &ContactRef,
        number: Option<&str>,
        event_key: &str,
        value: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let action = match value {
            "stop" => ConsentAction::OptOut,
            "resume" => ConsentAction::OptIn,
            _ => return Ok(false),
        };
        self.record(&system_entry(
            contact,
            number,
            format!("user_preferences:{event_key}"),
            action,
            ConsentSource::UserPreferences,
            Some(format!("user_preferences marketing_messages={value}")),
            at_ms,
        ))
        .await
    }

    /// Meta refused send `send_id` with 131050: the user stopped marketing messages.
    pub async fn record_meta_opt_out(
        &self,
        contact: &ContactRef,
        number: Option<&str>,
        send_id: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        self.record(&system_entry(
            contact,
            number,
            format!("meta_131050:{send_id}"),
            ConsentAction::OptOut,
            ConsentSource::MetaError,
            Some(format!(
                "send {send_id} refused by Meta with 131050 (user stopped marketing messages)"
            )),
            at_ms,
        ))
        .await
    }
}

fn system_entry(
    contact: &ContactRef,
    number: Option<&str>,
    id: String,
    action: ConsentAction,
    source: ConsentSource,
    evidence: Option<String>,
    at_ms: i64,
) -> ConsentEntry {
    ConsentEntry {
        id,
        contact: contact.key.clone(),
        to: contact.display.clone(),
        category: ConsentCategory::Marketing,
        action,
        source,
        evidence,
        at: at_ms,
        recorded_at: crate::clock::now_ms(),
        number: number.map(str::to_string),
    }
}

#[cfg(test)]
mod tests;
