//! The `kommo` CRM: Kommo (formerly amoCRM) API v4 on the account's host
//! (`https://{subdomain}.kommo.com`), with a private integration's long-lived token or OAuth
//! access tokens from the shared token provider (`oauth.rs`: Kommo's single-use refresh tokens
//! rotate through the engine's token store, shared by every process).
//!
//! Every record kind, and what it becomes:
//! - **contact**: a Contact, found by searching the identity (`GET /api/v4/contacts?query=`:
//!   the number's digits, or the BSUID) and keeping only a contact whose phone or custom field
//!   holds exactly that identity (the query is full-text: it also matches parts of other
//!   numbers), then updated (`PATCH /api/v4/contacts/{id}`) or created (`POST
//!   /api/v4/contacts`). Kommo has no upsert and its search index lags writes: the contact ids
//!   this process learnt come first (by identity and by our contact id), search only after
//!   (`contacts.rs`).
//! - **inbound message / outbound status**: a `common` Note on the contact, its text ending
//!   with `wabridge: <effect id>`; notes of concurrent events go out together
//!   (`POST /api/v4/contacts/notes`, up to [`NOTES_BATCH_MAX`] a call). An in-doubt retry reads
//!   the contact's notes (`GET /api/v4/contacts/{id}/notes`, a consistent read, not the lagging
//!   search) and creates none when the earlier one landed (`records.rs`).
//! - **consent**, **attribution** (first / last touch): contact custom fields (`PATCH`); touch
//!   fields the account has not created are left out.
//! - **lead**: a Lead linked to the contact (`POST /api/v4/leads` with `_embedded.contacts`),
//!   carrying the effect id in the mapping's `effect_property` lead field; in doubt, the
//!   contact's leads are read first.
//! - **conversation**: a Lead per conversation linked to the contact (`conversations.rs`),
//!   found again by its `wabridge_conversation_id` lead field. Its messages' notes stay on the
//!   contact, naming the conversation (a Kommo note has one parent). An SLA breach shows as the
//!   lead's `wabridge_sla_breached_at`.
//! - **erasure**: not applied (logged): API v4 cannot delete contacts or leads;
//!   docs/crm/kommo.md says how to erase by hand.
//! - **template status, number quality, account, unknown, media, calls, edits, a status of a
//!   group message**: not written (logged).
//!
//! Limits (`api.rs`): at most `KOMMO_RATE_PER_SECOND` (default and most 7) requests per second,
//! evenly spaced with headroom; a 429 pauses every sender.

pub(crate) mod api;
mod check;
mod contacts;
mod conversations;
mod fields;
pub mod oauth;
mod records;

use crate::cache::remember;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::batch::{BatchStats, Batcher};
use crate::{ConfigError, TokenStores};
use api::Client;
use conversations::{KnownLead, LeadSettings};
use fields::Schema;
pub use oauth::KommoOAuth;
use records::NoteOp;
use wabridge_core::config;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;
use wabridge_core::mapping::Mapping;
use wabridge_core::records::Record;

/// How long Kommo's search may lag behind a contact create: an in-doubt create whose search
/// finds nothing is trusted only this long after the uncertain attempt (Kommo documents no
/// figure).
pub const DEFAULT_SEARCH_LAG: Duration = Duration::from_secs(10);
/// Notes per batch call: Kommo takes up to 250 entities a call but recommends 50.
pub const NOTES_BATCH_MAX: usize = 50;
/// How long a batch of notes waits for more after its first one, before it waits for the
/// pacer's turn (`NoteOp::gate`), gathering more.
pub const NOTES_LINGER: Duration = Duration::from_millis(10);

/// How the adapter authenticates. Its `Debug` shows no secret.
#[derive(Clone)]
pub enum KommoAuth {
    /// A private integration's long-lived token (`KOMMO_TOKEN`).
    Token(String),
    /// OAuth access tokens, refreshed at the account's token endpoint.
    OAuth(KommoOAuth),
}

impl std::fmt::Debug for KommoAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KommoAuth::Token(_) => f.write_str("Token(<secret>)"),
            KommoAuth::OAuth(oauth) => f.debug_tuple("OAuth").field(oauth).finish(),
        }
    }
}

/// Where the adapter writes, and how fast. Its `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct KommoSettings {
    /// `https://{subdomain}.kommo.com`.
    pub base: String,
    pub auth: KommoAuth,
    /// Contact field holding the identity (the mapping's `id_property`).
    pub id_field: String,
    /// Contact field holding the BSUID (the mapping's `from = "bsuid"` field).
    pub bsuid_field: Option<String>,
    /// Lead field holding the effect id (the mapping's `effect_property`).
    pub effect_field: Option<String>,
    /// Requests per second (at most 7).
    pub per_second: usize,
    pub timeout: Duration,
    pub search_lag: Duration,
    /// Notes per batch call (1 turns batching off).
    pub notes_batch: usize,
    /// The mapping's `[conversations]`: owners (Kommo user ids) and each outcome's lead status
    /// (`won`, `lost` or a status id).
    pub conversations: ConversationSettings,
}

impl std::fmt::Debug for KommoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KommoSettings")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .field("id_field", &self.id_field)
            .field("bsuid_field", &self.bsuid_field)
            .field("effect_field", &self.effect_field)
            .field("per_second", &self.per_second)
            .field("timeout", &self.timeout)
            .field("search_lag", &self.search_lag)
            .field("notes_batch", &self.notes_batch)
            .field("conversations", &self.conversations)
            .finish()
    }
}

pub struct KommoCrm {
    client: Arc<Client>,
    settings: KommoSettings,
    schema: OnceCell<Schema>,
    notes: Batcher<NoteOp>,
    /// Identity value → contact id.
    by_identity: Mutex<HashMap<String, u64>>,
    /// Our contact id → Kommo contact id.
    contacts: Mutex<HashMap<String, u64>>,
    /// Contact id → the last body written to it (an unchanged contact costs no call).
    written: Mutex<HashMap<u64, String>>,
    /// Effect id → when its last contact create ended without an answer.
    doubtful: Mutex<HashMap<String, Instant>>,
    /// One find-or-create at a time per person (our contact id).
    locks: crate::cache::KeyLocks,
    /// Owners and outcome statuses of conversation leads, checked.
    lead_settings: LeadSettings,
    /// Conversation id → its lead, as this process wrote or found it.
    leads: Mutex<HashMap<String, KnownLead>>,
    /// One find-or-create at a time per conversation.
    lead_locks: crate::cache::KeyLocks,
}

impl KommoCrm {
    pub fn new(settings: KommoSettings) -> Result<KommoCrm, ConfigError> {
        let client = Arc::new(Client::new(
            &settings.base,
            &settings.auth,
            settings.timeout,
            settings.per_second,
        )?);
        let lead_settings = LeadSettings::from_mapping(&settings.conversations)?;
        let notes = Batcher::new(
            NoteOp {
                client: client.clone(),
            },
            settings.notes_batch.clamp(1, 250),
            NOTES_LINGER,
        );
        Ok(KommoCrm {
            client,
            settings,
            schema: OnceCell::new(),
            notes,
            by_identity: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            doubtful: Mutex::new(HashMap::new()),
            locks: Default::default(),
            lead_settings,
            leads: Mutex::new(HashMap::new()),
            lead_locks: Default::default(),
        })
    }

    /// From `KOMMO_TOKEN`, or `KOMMO_CLIENT_ID`, `KOMMO_CLIENT_SECRET`, `KOMMO_REFRESH_TOKEN`
    /// and `KOMMO_REDIRECT_URI` (secrets), `KOMMO_SUBDOMAIN` or `KOMMO_API_URL`,
    /// `KOMMO_RATE_PER_SECOND` and the mapping; OAuth tokens kept in `tokens` (the engine's
    /// store), shared by every process.
    pub fn from_settings<F: Fn(&str) -> Option<String>>(
        mapping: &Mapping,
        settings: &config::Settings<F>,
        timeout: Duration,
        tokens: Option<&TokenStores>,
    ) -> Result<KommoCrm, ConfigError> {
        // The credentials first: a bare `CRM_KIND=kommo` is told what to set to log in.
        let auth = auth(settings, tokens)?;
        let base = base(settings)?;
        let per_second = settings.number(
            config::KOMMO_RATE_PER_SECOND,
            config::DEFAULT_KOMMO_RATE_PER_SECOND,
            "requests per second, a whole number from 1 to 7 (Kommo's limit)",
            |n| (1..=7).contains(n),
        )?;
        KommoCrm::new(KommoSettings {
            base,
            auth,
            id_field: mapping
                .id_property
                .clone()
                .unwrap_or_else(|| "whatsapp_id".into()),
            bsuid_field: crate::bsuid_field(mapping).map(String::from),
            effect_field: mapping.effect_property.clone(),
            per_second: per_second as usize,
            timeout,
            search_lag: DEFAULT_SEARCH_LAG,
            notes_batch: NOTES_BATCH_MAX,
            conversations: mapping.conversations.clone(),
        })
    }

    /// Note batches sent so far (calls, notes, largest batch).
    pub fn note_stats(&self) -> BatchStats {
        self.notes.stats()
    }

    async fn schema(&self) -> Result<&Schema, CrmError> {
        self.schema
            .get_or_try_init(|| Schema::load(&self.client))
            .await
    }

    fn skip(&self, effect: &Effect, why: &str) {
        crate::skips::log("kommo", "Kommo", effect, why);
    }
}

/// The OAuth settings, all four of them, or the long-lived token: one way, not both.
fn auth<F: Fn(&str) -> Option<String>>(
    settings: &config::Settings<F>,
    tokens: Option<&TokenStores>,
) -> Result<KommoAuth, ConfigError> {
    const OAUTH: [&str; 4] = [
        config::KOMMO_CLIENT_ID,
        config::KOMMO_CLIENT_SECRET,
        config::KOMMO_REFRESH_TOKEN,
        config::KOMMO_REDIRECT_URI,
    ];
    let token = settings.optional(config::KOMMO_TOKEN);
    let oauth_set: Vec<&str> = OAUTH
        .into_iter()
        .filter(|n| settings.optional(n).is_some())
        .collect();
    match (token, oauth_set.is_empty()) {
        (Some(_), false) => Err(ConfigError::Invalid {
            name: config::KOMMO_TOKEN,
            reason: format!(
                "set either KOMMO_TOKEN (a long-lived token) or the OAuth settings ({}), not both: {} set too",
                OAUTH.join(", "),
                oauth_set.join(", ")
            ),
        }),
        (Some(token), true) => Ok(KommoAuth::Token(token)),
        (None, true) => Err(ConfigError::Invalid {
            name: config::KOMMO_TOKEN,
            reason: format!(
                "CRM_KIND=kommo needs KOMMO_TOKEN (a private integration's long-lived token) or OAuth: {}",
                OAUTH.join(", ")
            ),
        }),
        (None, false) => {
            let why = "CRM_KIND=kommo with OAuth refreshes Kommo's access tokens with it";
            let client_id = settings.required(config::KOMMO_CLIENT_ID, why)?;
            let client_secret = settings.required(config::KOMMO_CLIENT_SECRET, why)?;
            let refresh_token = settings.required(config::KOMMO_REFRESH_TOKEN, why)?;
            let redirect_uri = settings.required(config::KOMMO_REDIRECT_URI, why)?;
            // Sent as it is (Kommo compares it with the integration's), but it must be a URL.
            api::url_setting(config::KOMMO_REDIRECT_URI, &redirect_uri)?;
            let tokens = tokens.ok_or(ConfigError::Invalid {
                name: config::KOMMO_REFRESH_TOKEN,
                reason: "Kommo's OAuth needs the engine's token store (this command has none)"
                    .into(),
            })?;
            Ok(KommoAuth::OAuth(KommoOAuth {
                store: tokens(&connection_name(&base(settings)?, &client_id)),
                client_id,
                client_secret,
                refresh_token,
                redirect_uri,
            }))
        }
    }
}

/// The account's host: `KOMMO_API_URL`, or `https://{KOMMO_SUBDOMAIN}.kommo.com`.
fn base<F: Fn(&str) -> Option<String>>(
    settings: &config::Settings<F>,
) -> Result<String, ConfigError> {
    match settings.optional(config::KOMMO_API_URL) {
        Some(url) => Ok(url),
        None => {
            let sub = settings.required(
                config::KOMMO_SUBDOMAIN,
                "CRM_KIND=kommo calls the account's host, https://{subdomain}.kommo.com",
            )?;
            subdomain_host(&sub)
        }
    }
}

/// The token store's name of one account and integration: the refresh token rotates, so it
/// cannot name the connection as Zoho's does.
fn connection_name(base: &str, client_id: &str) -> String {
    use sha2::Digest;
    let digest =
        sha2::Sha256::digest(format!("{}\n{client_id}", base.trim_end_matches('/')).as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("kommo:{hex}")
}

/// `https://{subdomain}.kommo.com`; the subdomain alone (letters, digits, `-`), so a full host
/// or URL here is refused rather than glued into a wrong one.
fn subdomain_host(sub: &str) -> Result<String, ConfigError> {
    let valid = !sub.is_empty()
        && sub.len() <= 63
        && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(ConfigError::Invalid {
            name: config::KOMMO_SUBDOMAIN,
            reason: "must be the account's subdomain alone (`acme` for acme.kommo.com); \
                     other hosts go in KOMMO_API_URL"
                .into(),
        });
    }
    Ok(format!("https://{}.kommo.com", sub.to_ascii_lowercase()))
}

#[async_trait]
impl Crm for KommoCrm {
    fn kind(&self) -> &'static str {
        "kommo"
    }

    /// At most a contact search, a contact write, a list and a create, each within the timeout
    /// (pacing waits come on top under a burst).
    fn call_budget(&self) -> Option<Duration> {
        Some(self.settings.timeout * 4)
    }

    /// crm-sync then never hands over a revision its store has superseded (a lead cannot
    /// refuse an older one), and writes the lead before the notes that name it.
    fn conversations_first(&self) -> bool {
        true
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        if let Some(why) = crate::skips::skip_reason(effect, "Kommo") {
            self.skip(effect, &why);
            return Ok(());
        }
        match &effect.record {
            Record::Contact(_) => self.upsert_contact(effect).await,
            Record::Conversation(c) => self.conversation_lead(effect, c).await,
            Record::Activity(a) => self.note(effect, a).await,
            Record::Consent(_) => self.update_contact(effect, &effect.fields, false).await,
            Record::Attribution(a) => {
                let touch = crate::timeline::contact_properties(a);
                self.update_contact(effect, &touch, true).await
            }
            Record::Lead(lead) => self.lead(effect, lead).await,
            Record::Erasure(_) => {
                tracing::warn!(effect = %effect.id, "kommo: Kommo's API cannot delete contacts or leads: erase this person and their conversation leads in Kommo by hand (docs/crm/kommo.md)");
                Ok(())
            }
            // Skipped above (`skips::skip_reason`).
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subdomain_alone_makes_the_host() {
        assert_eq!(
            subdomain_host("Acme-1").unwrap(),
            "https://acme-1.kommo.com"
        );
        for bad in ["acme.kommo.com", "https://acme", "", "a b"] {
            let e = subdomain_host(bad).unwrap_err().to_string();
            assert!(e.contains("KOMMO_SUBDOMAIN"), "{bad}: {e}");
        }
    }
}
