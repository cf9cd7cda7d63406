//! The `zoho` CRM: Zoho CRM's API v8, OAuth access tokens from the shared token provider
//! (refreshed at the data centre's accounts server, shared by every process through the
//! engine's token store).
//!
//! Every record kind, and what it becomes:
//! - **contact**: a Contact, upserted (`POST /crm/v8/Contacts/upsert`) with
//!   `duplicate_check_fields` on the unique identity field (the canonical E.164 number, or the
//!   BSUID), then the unique BSUID field: Zoho settles it in its database, so there is no
//!   search to lag and no create to doubt. A message carrying the BSUID alone is upserted on the
//!   BSUID field only, leaving the identity of the phone's contact as it is (`contacts.rs`).
//! - **inbound message / outbound status**: a Note on the contact (`POST /crm/v8/Notes`), its
//!   content ending with `wabridge: <effect id>`; an in-doubt retry reads the contact's notes
//!   (`GET /crm/v8/Contacts/{id}/Notes`, a related list read from the database, not the search
//!   index) and creates none when the earlier one landed (`records.rs`).
//! - **consent**, **attribution** (first / last touch): contact fields, in the contact's upsert;
//!   touch fields the org has not created are left out.
//! - **lead**: a Deal on the contact, upserted on the mapping's unique `effect_property` deal
//!   field: a redelivery updates the same deal.
//! - **conversation**: a record of the Cases module, upserted with `duplicate_check_fields` on
//!   the unique `wabridge_Conversation_Id` (`conversations.rs`); the conversation's Notes stay on
//!   the contact and name it.
//! - **erasure**: each contact found under the person's numbers and BSUIDs is deleted, its
//!   Cases first.
//! - **template status, number quality, account, unknown, media, calls, edits, SLA breaches
//!   (the Case shows `sla_breached_at`), a status of a group message**: not written (logged).
//!
//! Every record write (contact and deal upserts, notes, plain deal inserts) is batched across
//! events: the writes of concurrent events to one endpoint leave as one call of up to 100
//! records, Zoho's maximum, and each record's answer (a 207 Multi-Status when some failed)
//! goes to its own event (`writes.rs`).
//!
//! Limits (`api.rs`): Zoho counts calls in flight per org and app (and charges API credits per
//! rolling 24 h): at most `ZOHO_CONCURRENCY` calls at once, 10 heavy ones (searches, writes of
//! more than 10 records); a 429 pauses senders.

pub(crate) mod api;
mod check;
mod contacts;
pub mod conversations;
mod fields;
pub mod oauth;
mod records;
mod writes;

use crate::cache::remember;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::batch::{BatchStats, Batcher};
use crate::{ConfigError, TokenStores};
use api::Client;
use fields::Schema;
use wabridge_core::config;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenProvider;
use wabridge_core::records::Record;
use writes::WriteOp;

/// Records per write call (Zoho's maximum for inserts, updates and upserts).
pub const BATCH_MAX: usize = 100;
/// How long a batch waits for more records after its first.
pub const LINGER: Duration = Duration::from_millis(5);

/// The writes to one endpoint on one set of duplicate-check fields, batched.
type Writes = Arc<Batcher<WriteOp>>;

/// Where the adapter writes, and how fast.
#[derive(Debug, Clone)]
pub struct ZohoSettings {
    /// The API domain, `https://www.zohoapis.<dc>`.
    pub api: String,
    /// Contact field holding the identity (the mapping's `id_property`), unique in Zoho.
    pub id_field: String,
    /// Contact field holding the BSUID (the mapping's `from = "bsuid"` field), unique in Zoho.
    pub bsuid_field: Option<String>,
    /// Deal field holding the effect id (the mapping's `effect_property`), unique in Zoho.
    pub effect_field: Option<String>,
    /// Calls in flight at once.
    pub concurrency: usize,
    pub timeout: Duration,
    /// The mapping's `[conversations]`: Case owners and outcome statuses.
    pub conversations: ConversationSettings,
}

pub struct ZohoCrm {
    client: Arc<Client>,
    settings: ZohoSettings,
    schema: OnceCell<Schema>,
    /// Writes per (path, duplicate-check fields), each batched across events.
    batchers: Mutex<HashMap<(String, Vec<String>), Writes>>,
    /// Our contact id → Zoho record id.
    contacts: Mutex<HashMap<String, String>>,
    /// Zoho record id → the last body upserted (an unchanged contact costs no call).
    written: Mutex<HashMap<String, String>>,
    /// One upsert at a time per person (our contact id): twenty first messages make one call.
    locks: crate::cache::KeyLocks,
    cases: conversations::Cases,
}

impl ZohoCrm {
    pub fn new(settings: ZohoSettings, tokens: Arc<TokenProvider>) -> Result<ZohoCrm, ConfigError> {
        let api = api::url_setting(config::ZOHO_API_URL, &settings.api)?;
        let client = Client::new(&api, tokens, settings.timeout, settings.concurrency)?;
        Ok(ZohoCrm {
            cases: conversations::Cases::new(settings.conversations.clone()),
            client: Arc::new(client),
            settings: ZohoSettings { api, ..settings },
            schema: OnceCell::new(),
            batchers: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            locks: Default::default(),
        })
    }

    /// From `ZOHO_CLIENT_ID`, `ZOHO_CLIENT_SECRET`, `ZOHO_REFRESH_TOKEN` (secrets),
    /// `ZOHO_DATA_CENTER`, `ZOHO_API_URL`, `ZOHO_ACCOUNTS_URL`, `ZOHO_CONCURRENCY` and the
    /// mapping; tokens kept in `tokens` (the engine's store), shared by every process.
    pub fn from_settings<F: Fn(&str) -> Option<String>>(
        mapping: &Mapping,
        settings: &config::Settings<F>,
        timeout: Duration,
        tokens: &TokenStores,
    ) -> Result<ZohoCrm, ConfigError> {
        let why = "CRM_KIND=zoho refreshes Zoho's OAuth access tokens with it";
        let client_id = settings.required(config::ZOHO_CLIENT_ID, why)?;
        let client_secret = settings.required(config::ZOHO_CLIENT_SECRET, why)?;
        let refresh_token = settings.required(config::ZOHO_REFRESH_TOKEN, why)?;
        let dc = settings
            .optional(config::ZOHO_DATA_CENTER)
            .unwrap_or_else(|| "us".into());
        let (accounts, api) = oauth::data_center(&dc)?;
        let accounts = match settings.optional(config::ZOHO_ACCOUNTS_URL) {
            Some(url) => api::url_setting(config::ZOHO_ACCOUNTS_URL, &url)?,
            None => accounts.to_string(),
        };
        let api = settings
            .optional(config::ZOHO_API_URL)
            .unwrap_or_else(|| api.to_string());
        let concurrency = settings.number(
            config::ZOHO_CONCURRENCY,
            config::DEFAULT_ZOHO_CONCURRENCY,
            "the calls in flight your Zoho edition allows per app, a whole number from 1 to 100",
            |n| (1..=100).contains(n),
        )?;
        let endpoint =
            oauth::ZohoTokenEndpoint::new(&accounts, &client_id, &client_secret, timeout)?;
        // One connection per org and client: the refresh token names the org's grant.
        let connection = connection_name(&client_id, &refresh_token);
        let provider = TokenProvider::new(Arc::new(endpoint), tokens(&connection), refresh_token);
        ZohoCrm::new(
            ZohoSettings {
                api,
                id_field: mapping
                    .id_property
                    .clone()
                    .unwrap_or_else(|| "WhatsApp_ID".into()),
                bsuid_field: crate::bsuid_field(mapping).map(String::from),
                effect_field: mapping.effect_property.clone(),
                concurrency: concurrency as usize,
                timeout,
                conversations: mapping.conversations.clone(),
            },
            Arc::new(provider),
        )
    }

    /// Write calls made and records sent in them, over every endpoint.
    pub fn batch_stats(&self) -> BatchStats {
        let batchers = self.batchers.lock().unwrap();
        let mut total = BatchStats::default();
        for b in batchers.values() {
            let s = b.stats();
            total.calls += s.calls;
            total.inputs += s.inputs;
            total.largest = total.largest.max(s.largest);
        }
        total
    }

    /// The batcher of writes to `path` (`/Contacts/upsert`, `/Notes`) on `checks` (none: an
    /// insert).
    fn batcher(&self, path: &str, checks: &[String]) -> Writes {
        let mut batchers = self.batchers.lock().unwrap();
        batchers
            .entry((path.to_string(), checks.to_vec()))
            .or_insert_with(|| {
                Arc::new(Batcher::new(
                    WriteOp::new(self.client.clone(), path, checks),
                    BATCH_MAX,
                    LINGER,
                ))
            })
            .clone()
    }

    async fn schema(&self) -> Result<&Schema, CrmError> {
        self.schema
            .get_or_try_init(|| Schema::load(&self.client))
            .await
    }

    fn skip(&self, effect: &Effect, why: &str) {
        crate::skips::log("zoho", "Zoho", effect, why);
    }
}

/// The token store's key of one Zoho connection: `zoho:` and a digest of the client and its
/// refresh token (two orgs behind one client keep apart; no secret in the key).
fn connection_name(client_id: &str, refresh_token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{client_id}\n{refresh_token}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("zoho:{hex}")
}

#[async_trait]
impl Crm for ZohoCrm {
    fn kind(&self) -> &'static str {
        "zoho"
    }

    /// At most a contact upsert (and its identity write), a list and a create (or a Case
    /// upsert made twice), each within the timeout and the batches' linger; a token refresh on
    /// top.
    fn call_budget(&self) -> Option<Duration> {
        Some(LINGER * 2 + self.settings.timeout * 5)
    }

    /// Conversations' Cases are written before the event's Notes, and no superseded revision
    /// reaches them (the upsert cannot refuse an older one itself).
    fn conversations_first(&self) -> bool {
        true
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        if let Some(why) = crate::skips::skip_reason(effect, "Zoho") {
            self.skip(effect, &why);
            return Ok(());
        }
        match &effect.record {
            Record::Contact(_) => self.upsert_contact(effect).await,
            Record::Conversation(c) => self.conversation(effect, c).await,
            Record::Activity(a) => self.note(effect, a).await,
            Record::Consent(_) => self.update_contact(effect, &effect.fields, false).await,
            Record::Attribution(a) => {
                let touch = crate::timeline::contact_properties(a);
                self.update_contact(effect, &touch, true).await
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
    fn connections_differ_per_grant_and_show_no_secret() {
        let a = super::connection_name("1000.CLIENT", "1000.refresh-a");
        let b = super::connection_name("1000.CLIENT", "1000.refresh-b");
        assert!(a.starts_with("zoho:") && a.len() == 21, "{a}");
        assert_ne!(a, b);
        assert!(!a.contains("refresh") && !a.contains("CLIENT"));
    }
}
