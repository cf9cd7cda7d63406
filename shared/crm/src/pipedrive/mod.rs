//! The `pipedrive` CRM: Pipedrive's API v2 wherever it has the endpoint (persons, their search,
//! deals, the field schema), v1 only for notes (Pipedrive has no v2 notes). API token in the
//! `x-api-token` header, or an OAuth access token as a bearer ([`PipedriveAuth`]), from the
//! shared token provider (refreshed at Pipedrive's OAuth server, `oauth.rs`, shared by every
//! process through the engine's token store).
//!
//! Every record kind, and what it becomes:
//! - **contact**: a Person, found by searching the identity (the canonical E.164 number, or the
//!   BSUID) in its phone and custom fields (`GET /api/v2/persons/search`, `exact_match`), then
//!   updated (`PATCH /api/v2/persons/{id}`) or created (`POST /api/v2/persons`). Pipedrive has
//!   no upsert, and its search index lags writes: the person ids this process learnt come
//!   first (by identity and by our contact id), search only after (`persons.rs`).
//! - **inbound message / outbound status**: a Note on the person (`POST /v1/notes`), its text
//!   ending with `wabridge: <effect id>`; an in-doubt retry lists the person's notes
//!   (`GET /v1/notes?person_id=`, a consistent read, not the lagging search) and creates none
//!   when the earlier one landed.
//! - **consent**, **attribution** (first / last touch): person custom fields (`PATCH`); touch
//!   fields the company has not created are left out.
//! - **lead**: a Deal on the person (`POST /api/v2/deals`) carrying the effect id in the
//!   mapping's `effect_property` deal field; in doubt, the person's deals are listed first.
//! - **conversation**: a Deal per conversation on the person (`conversations.rs`), found again
//!   by its `wabridge_conversation_id` deal field; the notes of its messages link to it
//!   (`deal_id`). An SLA breach shows as the deal's `wabridge_sla_breached_at`.
//! - **erasure**: each person found by the person's numbers and BSUIDs is deleted
//!   (`DELETE /api/v2/persons/{id}`; Pipedrive keeps deleted persons 30 days, then purges),
//!   and so are its conversation deals (their titles name the person).
//! - **template status, number quality, account, unknown, media, a status of a group message**:
//!   not written (logged): Pipedrive has no object for them (files: not yet).
//! - **calls, edits and deletions, SLA breaches** (`call`, `message_change`, `sla_breach`): not
//!   written yet (logged).
//!
//! Limits: every call takes a slot of the token's burst window first (`pace.rs`): at most
//! `PIPEDRIVE_BURST_LIMIT` per 2 s (default 20 for an API token, 80 for OAuth: Pipedrive gives
//! access tokens four times an API token's burst), and 10 searches per 2 s. A 429 (someone
//! else spent the window) pauses every sender for `Retry-After` / `x-ratelimit-reset`.

pub(crate) mod api;
mod check;
mod conversations;
mod fields;
pub mod oauth;
mod persons;
mod records;

use crate::cache::remember;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::{ConfigError, TokenStores};
use api::Client;
pub use api::PipedriveAuth;
use conversations::{DealSettings, KnownDeal};
use fields::Schema;
use wabridge_core::config;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenProvider;
use wabridge_core::records::Record;

/// How long Pipedrive's search may lag behind a person create: an in-doubt create whose
/// search finds nothing is trusted only this long after the uncertain attempt.
pub const DEFAULT_SEARCH_LAG: Duration = Duration::from_secs(10);

/// Where the adapter writes, and how fast. Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct PipedriveSettings {
    /// `https://<company>.pipedrive.com`.
    pub base: String,
    pub auth: PipedriveAuth,
    /// Person field holding the identity (the mapping's `id_property`).
    pub id_field: String,
    /// Person field holding the BSUID (the mapping's `from = "bsuid"` field).
    pub bsuid_field: Option<String>,
    /// Deal field holding the effect id (the mapping's `effect_property`).
    pub effect_field: Option<String>,
    /// Requests per 2 s, and searches per 2 s.
    pub limits: (usize, usize),
    pub timeout: Duration,
    pub search_lag: Duration,
    /// The mapping's `[conversations]`: owners (Pipedrive user ids) and what each outcome does
    /// to the conversation's deal (`won`, `lost`, `open` or a stage id).
    pub conversations: ConversationSettings,
}

impl std::fmt::Debug for PipedriveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveSettings")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .field("id_field", &self.id_field)
            .field("bsuid_field", &self.bsuid_field)
            .field("effect_field", &self.effect_field)
            .field("limits", &self.limits)
            .field("timeout", &self.timeout)
            .field("search_lag", &self.search_lag)
            .field("conversations", &self.conversations)
            .finish()
    }
}

pub struct PipedriveCrm {
    client: Client,
    settings: PipedriveSettings,
    schema: OnceCell<Schema>,
    /// Identity value → person id.
    persons: Mutex<HashMap<String, u64>>,
    /// Our contact id → person id.
    contacts: Mutex<HashMap<String, u64>>,
    /// Person id → the last body written to it (an unchanged contact costs no call).
    written: Mutex<HashMap<u64, String>>,
    /// Effect id → when its last person create ended without an answer.
    doubtful: Mutex<HashMap<String, Instant>>,
    /// One find-or-create at a time per person (our contact id).
    person_locks: crate::cache::KeyLocks,
    /// Owners and outcomes of conversation deals, checked.
    deal_settings: DealSettings,
    /// Conversation id → its deal, as this process wrote or found it.
    deals: Mutex<HashMap<String, KnownDeal>>,
    /// One find-or-create at a time per conversation.
    deal_locks: crate::cache::KeyLocks,
}

impl PipedriveCrm {
    pub fn new(settings: PipedriveSettings) -> Result<PipedriveCrm, ConfigError> {
        let client = Client::new(
            &settings.base,
            &settings.auth,
            settings.timeout,
            settings.limits,
        )?;
        let deal_settings = DealSettings::from_mapping(&settings.conversations)?;
        Ok(PipedriveCrm {
            client,
            settings,
            schema: OnceCell::new(),
            persons: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            doubtful: Mutex::new(HashMap::new()),
            person_locks: Default::default(),
            deal_settings,
            deals: Mutex::new(HashMap::new()),
            deal_locks: Default::default(),
        })
    }

    /// From `PIPEDRIVE_API_TOKEN` or the OAuth app's `PIPEDRIVE_CLIENT_ID`,
    /// `PIPEDRIVE_CLIENT_SECRET` and `PIPEDRIVE_REFRESH_TOKEN` (secrets; one or the other),
    /// `PIPEDRIVE_API_URL`, `PIPEDRIVE_OAUTH_URL`, `PIPEDRIVE_BURST_LIMIT` and the mapping. OAuth
    /// tokens are kept in `tokens` (the engine's store), shared by every process.
    pub fn from_settings<F: Fn(&str) -> Option<String>>(
        mapping: &Mapping,
        settings: &config::Settings<F>,
        timeout: Duration,
        tokens: Option<&TokenStores>,
    ) -> Result<PipedriveCrm, ConfigError> {
        let base = settings
            .optional(config::PIPEDRIVE_API_URL)
            .unwrap_or_else(|| config::DEFAULT_PIPEDRIVE_API_URL.to_string());
        let auth = auth_from_settings(settings, &base, timeout, tokens)?;
        let default_burst = match auth {
            PipedriveAuth::ApiToken(_) => config::DEFAULT_PIPEDRIVE_BURST_LIMIT,
            PipedriveAuth::OAuth { .. } => config::DEFAULT_PIPEDRIVE_OAUTH_BURST_LIMIT,
        };
        let burst = settings.number(
            config::PIPEDRIVE_BURST_LIMIT,
            default_burst,
            "your plan's requests per 2 seconds, a whole number from 1 to 1000",
            |n| (1..=1000).contains(n),
        )?;
        PipedriveCrm::new(PipedriveSettings {
            base,
            auth,
            id_field: mapping
                .id_property
                .clone()
                .unwrap_or_else(|| "whatsapp_id".into()),
            bsuid_field: crate::bsuid_field(mapping).map(String::from),
            effect_field: mapping.effect_property.clone(),
            limits: (burst as usize, api::SEARCH_LIMIT),
            timeout,
            search_lag: DEFAULT_SEARCH_LAG,
            conversations: mapping.conversations.clone(),
        })
    }

    async fn schema(&self) -> Result<&Schema, CrmError> {
        self.schema
            .get_or_try_init(|| Schema::load(&self.client))
            .await
    }

    fn skip(&self, effect: &Effect, why: &str) {
        crate::skips::log("pipedrive", "Pipedrive", effect, why);
    }
}

/// The API token, or the OAuth app (all three of its settings) with a token provider over the
/// engine's store: exactly one of the two.
fn auth_from_settings<F: Fn(&str) -> Option<String>>(
    settings: &config::Settings<F>,
    base: &str,
    timeout: Duration,
    tokens: Option<&TokenStores>,
) -> Result<PipedriveAuth, ConfigError> {
    const OAUTH: [&str; 3] = [
        config::PIPEDRIVE_CLIENT_ID,
        config::PIPEDRIVE_CLIENT_SECRET,
        config::PIPEDRIVE_REFRESH_TOKEN,
    ];
    let token = settings.optional(config::PIPEDRIVE_API_TOKEN);
    let oauth = OAUTH.iter().any(|n| settings.optional(n).is_some());
    match (token, oauth) {
        (Some(token), false) => return Ok(PipedriveAuth::ApiToken(token)),
        (Some(_), true) => {
            return Err(ConfigError::Invalid {
                name: config::PIPEDRIVE_API_TOKEN,
                reason: "set PIPEDRIVE_API_TOKEN or the OAuth app's PIPEDRIVE_CLIENT_ID, PIPEDRIVE_CLIENT_SECRET and PIPEDRIVE_REFRESH_TOKEN, not both".into(),
            })
        }
        (None, false) => {
            return Err(ConfigError::Setting(config::ConfigError::Missing {
                name: config::PIPEDRIVE_API_TOKEN,
                consequence: "CRM_KIND=pipedrive calls Pipedrive with this API token, or with OAuth: set PIPEDRIVE_CLIENT_ID, PIPEDRIVE_CLIENT_SECRET and PIPEDRIVE_REFRESH_TOKEN instead",
            }))
        }
        (None, true) => {}
    }
    let why = "CRM_KIND=pipedrive with OAuth refreshes Pipedrive's access tokens with it";
    let client_id = settings.required(config::PIPEDRIVE_CLIENT_ID, why)?;
    let client_secret = settings.required(config::PIPEDRIVE_CLIENT_SECRET, why)?;
    let refresh_token = settings.required(config::PIPEDRIVE_REFRESH_TOKEN, why)?;
    let oauth_url = settings.url(
        config::PIPEDRIVE_OAUTH_URL,
        config::DEFAULT_PIPEDRIVE_OAUTH_URL,
    )?;
    let tokens = tokens.ok_or(ConfigError::Invalid {
        name: config::CRM_KIND,
        reason: "pipedrive with OAuth needs the engine's OAuth token store (this command has none)"
            .into(),
    })?;
    let api_domain = oauth::ApiDomain::default();
    let endpoint = oauth::PipedriveTokenEndpoint::new(
        &oauth_url,
        &client_id,
        &client_secret,
        base,
        api_domain.clone(),
        timeout,
    )?;
    let connection = connection_name(&client_id, &refresh_token);
    let provider = TokenProvider::new(Arc::new(endpoint), tokens(&connection), refresh_token);
    Ok(PipedriveAuth::OAuth {
        tokens: Arc::new(provider),
        api_domain,
    })
}

/// The token store's key of one Pipedrive installation: `pipedrive:` and a digest of the app
/// and the refresh token it was given (two companies behind one app keep apart; no secret in
/// the key).
fn connection_name(client_id: &str, refresh_token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{client_id}\n{refresh_token}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("pipedrive:{hex}")
}

#[async_trait]
impl Crm for PipedriveCrm {
    fn kind(&self) -> &'static str {
        "pipedrive"
    }

    /// At most a person search, a person write, a list and a create, each within the timeout
    /// (pacing waits come on top under a burst); with OAuth, a token refresh and a call made
    /// again after a 401 on top.
    fn call_budget(&self) -> Option<Duration> {
        let calls = match self.settings.auth {
            PipedriveAuth::ApiToken(_) => 4,
            PipedriveAuth::OAuth { .. } => 6,
        };
        Some(self.settings.timeout * calls)
    }

    /// A conversation's deal is written before its messages' notes, which link to it.
    fn conversations_first(&self) -> bool {
        true
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        if let Some(why) = crate::skips::skip_reason(effect, "Pipedrive") {
            self.skip(effect, &why);
            return Ok(());
        }
        match &effect.record {
            Record::Contact(_) => self.upsert_contact(effect).await,
            Record::Conversation(c) => self.conversation_deal(effect, c).await,
            Record::Activity(a) => self.note(effect, a).await,
            Record::Consent(_) => self.update_person(effect, &effect.fields, false).await,
            Record::Attribution(a) => {
                let touch = crate::timeline::contact_properties(a);
                self.update_person(effect, &touch, true).await
            }
            Record::Lead(lead) => self.deal(effect, lead).await,
            Record::Erasure(e) => self.erase(e).await,
            // Skipped above (`skips::skip_reason`).
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn connections_differ_per_installation_and_show_no_secret() {
        let a = super::connection_name("b4d083d9216986345b32", "13:refresh-a");
        let b = super::connection_name("b4d083d9216986345b32", "13:refresh-b");
        assert!(a.starts_with("pipedrive:") && a.len() == 26, "{a}");
        assert_ne!(a, b);
        assert!(!a.contains("refresh") && !a.contains("b4d083"));
    }
}
