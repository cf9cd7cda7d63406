//! The `salesforce` CRM: Salesforce's REST API, OAuth access tokens from the client-credentials
//! grant through the shared token provider (shared by every process through the engine's token
//! store).
//!
//! Every record kind, and what it becomes:
//! - **contact**: a Contact (or a Lead, `SALESFORCE_OBJECT=Lead`) upserted by External ID: the
//!   identity field `WhatsApp_Id__c` (the canonical E.164 number, or the BSUID of a person
//!   known only by it). A record carrying the BSUID alone is upserted on the second External ID,
//!   `WhatsApp_BSUID__c`, without an identity value, so the contact of the person's phone is
//!   found and keeps its identity (`contacts.rs`). Salesforce settles the match in its database:
//!   no search index to lag (SOSL's lags minutes), no create to doubt.
//! - **inbound message / outbound status**: a completed Task on the contact (`WhoId`), upserted
//!   on the External ID `wabridge_Effect_Id__c` holding the effect id: a retry in doubt updates
//!   the same Task instead of writing a second (`records.rs`).
//! - **consent**, **attribution** (first / last touch): contact fields, in the contact's upsert;
//!   touch fields the org has not created are left out.
//! - **lead**: an Opportunity on the contact (`ContactId`), upserted on `wabridge_Effect_Id__c`
//!   (Contact mode only: an Opportunity cannot point at a Lead; Salesforce makes one when the
//!   Lead is converted).
//! - **conversation**: a Case per conversation, upserted on `wabridge_Conversation_Id__c`; the
//!   conversation's Tasks link to it by `WhatId` (`conversations.rs`). Contact mode only.
//! - **erasure**: each contact found under the person's numbers and BSUIDs (SOQL on the
//!   External IDs, read from the database) is deleted, its Cases first.
//! - **template status, number quality, account, unknown, media, calls, edits, SLA breaches
//!   (the Case shows `sla_breached_at`), a status of a group message**: not written (logged).
//!
//! Every upsert goes through sObject Collections (`PATCH /composite/sobjects/{Object}/{Field}`,
//! up to 200 records, one API call of the org's allocation): the upserts of concurrent events
//! coalesce into one call (`collections.rs`). Limits (`api.rs`): at most
//! `SALESFORCE_CONCURRENCY` calls in flight; `Sforce-Limit-Info` read on every answer.

pub(crate) mod api;
mod check;
mod collections;
mod contacts;
pub mod conversations;
mod fields;
pub mod oauth;
mod records;

use crate::cache::remember;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::batch::Batcher;
use crate::{ConfigError, TokenStores};
use api::Client;
pub use api::{DAILY_LIMIT_WAIT, USAGE_WARN_PERCENT};
use collections::UpsertOp;
use fields::Schema;
use wabridge_core::config;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::owners::ConversationSettings;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenProvider;
use wabridge_core::records::Record;

/// Records per sObject Collections call (Salesforce's maximum).
pub const BATCH_MAX: usize = 200;
/// How long a batch waits for more upserts after its first.
pub const LINGER: Duration = Duration::from_millis(5);

/// The upserts to one object on one External ID field, batched.
type Upserts = Arc<Batcher<UpsertOp>>;

/// The object a person becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonObject {
    Contact,
    Lead,
}

impl PersonObject {
    pub fn name(self) -> &'static str {
        match self {
            PersonObject::Contact => "Contact",
            PersonObject::Lead => "Lead",
        }
    }
}

/// Where the adapter writes, and how fast.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// The org's My Domain URL: the token endpoint's host, and the API's until a grant names
    /// its `instance_url`.
    pub login_url: String,
    /// `62.0`.
    pub api_version: String,
    pub object: PersonObject,
    /// External ID field holding the identity (the mapping's `id_property`).
    pub id_field: String,
    /// External ID field holding the BSUID (the mapping's `from = "bsuid"` field).
    pub bsuid_field: Option<String>,
    /// External ID field of Tasks and Opportunities holding the effect id (the mapping's
    /// `effect_property`).
    pub effect_field: String,
    /// Calls in flight at once.
    pub concurrency: usize,
    pub timeout: Duration,
    /// The mapping's `[conversations]`: Case owners and outcome statuses.
    pub conversations: ConversationSettings,
}

pub struct SalesforceCrm {
    client: Arc<Client>,
    settings: SalesforceSettings,
    schema: OnceCell<Schema>,
    /// Upserts per (object, External ID field), each batched across events.
    batchers: Mutex<HashMap<(String, String), Upserts>>,
    /// Our contact id → Salesforce record id.
    contacts: Mutex<HashMap<String, String>>,
    /// Salesforce record id → the last body upserted (an unchanged contact costs no call).
    written: Mutex<HashMap<String, String>>,
    /// One upsert at a time per person (our contact id): twenty first messages make one call.
    locks: crate::cache::KeyLocks,
    cases: conversations::Cases,
}

impl SalesforceCrm {
    pub fn new(
        settings: SalesforceSettings,
        tokens: Arc<TokenProvider>,
        instance: oauth::Instance,
    ) -> Result<SalesforceCrm, ConfigError> {
        let login_url = api::url_setting(config::SALESFORCE_LOGIN_URL, &settings.login_url)?;
        let client = Client::new(
            &login_url,
            &settings.api_version,
            instance,
            tokens,
            settings.timeout,
            settings.concurrency,
        )?;
        Ok(SalesforceCrm {
            cases: conversations::Cases::new(settings.conversations.clone()),
            client: Arc::new(client),
            settings: SalesforceSettings {
                login_url,
                ..settings
            },
            schema: OnceCell::new(),
            batchers: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            locks: Default::default(),
        })
    }

    /// From `SALESFORCE_LOGIN_URL`, `SALESFORCE_CLIENT_ID`, `SALESFORCE_CLIENT_SECRET`
    /// (secrets), `SALESFORCE_API_VERSION`, `SALESFORCE_OBJECT`, `SALESFORCE_CONCURRENCY` and the
    /// mapping; tokens kept in `tokens` (the engine's store), shared by every process.
    pub fn from_settings<F: Fn(&str) -> Option<String>>(
        mapping: &Mapping,
        settings: &config::Settings<F>,
        timeout: Duration,
        tokens: &TokenStores,
    ) -> Result<SalesforceCrm, ConfigError> {
        let login_url = settings.required(
            config::SALESFORCE_LOGIN_URL,
            "CRM_KIND=salesforce asks the org's My Domain (https://<domain>.my.salesforce.com) for tokens",
        )?;
        let login_url = api::url_setting(config::SALESFORCE_LOGIN_URL, &login_url)?;
        if ["://login.salesforce.com", "://test.salesforce.com"]
            .iter()
            .any(|host| login_url.contains(host))
        {
            // Salesforce's help article 000886201: the client-credentials flow is not served there.
            return Err(ConfigError::Invalid {
                name: config::SALESFORCE_LOGIN_URL,
                reason: "the client-credentials flow needs the org's My Domain URL (https://<domain>.my.salesforce.com), not login or test.salesforce.com".into(),
            });
        }
        let why = "CRM_KIND=salesforce gets OAuth access tokens with it (client credentials)";
        let client_id = settings.required(config::SALESFORCE_CLIENT_ID, why)?;
        let client_secret = settings.required(config::SALESFORCE_CLIENT_SECRET, why)?;
        let api_version = settings
            .optional(config::SALESFORCE_API_VERSION)
            .unwrap_or_else(|| config::DEFAULT_SALESFORCE_API_VERSION.into());
        let api_version = api::version_setting(&api_version)?;
        let object = match settings.optional(config::SALESFORCE_OBJECT).as_deref() {
            None | Some("Contact") => PersonObject::Contact,
            Some("Lead") => PersonObject::Lead,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: config::SALESFORCE_OBJECT,
                    reason: format!("`{other}` is not `Contact` or `Lead`"),
                })
            }
        };
        let concurrency = settings.number(
            config::SALESFORCE_CONCURRENCY,
            config::DEFAULT_SALESFORCE_CONCURRENCY,
            "calls in flight at once, a whole number from 1 to 25 (the org's long-running cap)",
            |n| (1..=25).contains(n),
        )?;
        let instance = oauth::Instance::default();
        let endpoint = oauth::ClientCredentials::new(
            &login_url,
            &client_id,
            &client_secret,
            instance.clone(),
            timeout,
        )?;
        let provider = TokenProvider::new(
            Arc::new(endpoint),
            tokens(&connection_name(&login_url, &client_id)),
            oauth::NO_REFRESH_TOKEN,
        );
        SalesforceCrm::new(
            SalesforceSettings {
                login_url,
                api_version,
                object,
                id_field: mapping
                    .id_property
                    .clone()
                    .unwrap_or_else(|| "WhatsApp_Id__c".into()),
                bsuid_field: crate::bsuid_field(mapping).map(String::from),
                effect_field: mapping
                    .effect_property
                    .clone()
                    .unwrap_or_else(|| "wabridge_Effect_Id__c".into()),
                concurrency: concurrency as usize,
                timeout,
                conversations: mapping.conversations.clone(),
            },
            Arc::new(provider),
            instance,
        )
    }

    /// The org's API usage from the last `Sforce-Limit-Info` header: (used, allocation).
    pub fn api_usage(&self) -> Option<(u64, u64)> {
        self.client.usage()
    }

    /// Whether the usage warning is raised (usage at or past [`USAGE_WARN_PERCENT`] of the
    /// allocation on the last answer).
    pub fn api_usage_warned(&self) -> bool {
        self.client.usage_warned()
    }

    /// Upsert calls made and records sent in them, over every object.
    pub fn batch_stats(&self) -> crate::batch::BatchStats {
        let batchers = self.batchers.lock().unwrap();
        let mut total = crate::batch::BatchStats::default();
        for b in batchers.values() {
            let s = b.stats();
            total.calls += s.calls;
            total.inputs += s.inputs;
            total.largest = total.largest.max(s.largest);
        }
        total
    }

    /// The batcher of upserts to `object` on External ID `field`.
    fn batcher(&self, object: &str, field: &str) -> Upserts {
        let mut batchers = self.batchers.lock().unwrap();
        batchers
            .entry((object.to_string(), field.to_string()))
            .or_insert_with(|| {
                Arc::new(Batcher::new(
                    UpsertOp::new(self.client.clone(), object, field),
                    BATCH_MAX,
                    LINGER,
                ))
            })
            .clone()
    }

    async fn schema(&self) -> Result<&Schema, CrmError> {
        self.schema
            .get_or_try_init(|| Schema::load(&self.client, self.settings.object))
            .await
    }

    fn skip(&self, effect: &Effect, why: &str) {
        crate::skips::log("salesforce", "Salesforce", effect, why);
    }
}

/// The token store's key of one Salesforce connection: `salesforce:` and a digest of the org's
/// login URL and the client (no secret in the key).
fn connection_name(login_url: &str, client_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{login_url}\n{client_id}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("salesforce:{hex}")
}

#[async_trait]
impl Crm for SalesforceCrm {
    fn kind(&self) -> &'static str {
        "salesforce"
    }

    /// At most a contact upsert (and its identity write), a Case read and a Task, Case or
    /// Opportunity upsert, each within the timeout; a token grant and the schema reads on top.
    fn call_budget(&self) -> Option<Duration> {
        Some(LINGER * 2 + self.settings.timeout * 6)
    }

    /// A Task links to its conversation's Case, which must exist first.
    fn conversations_first(&self) -> bool {
        true
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        if let Some(why) = crate::skips::skip_reason(effect, "Salesforce") {
            self.skip(effect, &why);
            return Ok(());
        }
        match &effect.record {
            Record::Contact(_) => self.upsert_contact(effect).await,
            Record::Conversation(c) => self.conversation(effect, c).await,
            Record::Activity(a) => self.task(effect, a).await,
            Record::Consent(_) => self.update_contact(effect, &effect.fields, false).await,
            Record::Attribution(a) => {
                let touch = fields::custom(crate::timeline::contact_properties(a));
                self.update_contact(effect, &touch, true).await
            }
            Record::Lead(_) if self.settings.object == PersonObject::Lead => {
                self.skip(
                    effect,
                    "an Opportunity cannot point at a Lead (SALESFORCE_OBJECT=Lead)",
                );
                Ok(())
            }
            Record::Lead(lead) => self.opportunity(effect, lead).await,
            Record::Erasure(e) => self.erase(e).await,
            // Skipped above (`skips::skip_reason`).
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn connections_differ_per_org_and_client_and_show_no_secret() {
        let a = super::connection_name("https://acme.my.salesforce.com", "3MVG9.client");
        let b = super::connection_name("https://other.my.salesforce.com", "3MVG9.client");
        assert!(a.starts_with("salesforce:") && a.len() == 27, "{a}");
        assert_ne!(a, b);
        assert!(!a.contains("acme") && !a.contains("3MVG9"));
    }
}
