//! Salesforce as a conformance subject, over the local org of `salesforce_fake`. Every adapter
//! it builds (a new process) gets its OAuth token through the same SQLite token store, as
//! `wabridge serve` and a CLI command on one data directory do.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use wabridge_core::config;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenProvider;
use wabridge_crm::salesforce::oauth::{ClientCredentials, Instance, NO_REFRESH_TOKEN};
use wabridge_crm::salesforce::{PersonObject, SalesforceCrm, SalesforceSettings};
use wabridge_sqlite::{Db, SqliteTokenStore};

use super::salesforce_fake::{serve, SalesforceFake, CLIENT_ID, CLIENT_SECRET, ORG_CONCURRENCY};
use super::{ActivityView, ContactView, DealView, Fault, Subject};
use crate::crm_http::TIMEOUT;

pub(crate) struct Salesforce {
    pub fake: Arc<SalesforceFake>,
    pub addr: SocketAddr,
    /// The token store every adapter of this subject shares.
    pub db: Db,
    _dir: tempfile::TempDir,
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(String::from)
}

impl Salesforce {
    /// An adapter (a new process) with its own token provider over the shared store, writing
    /// persons as `object`, `concurrency` calls at once.
    pub(crate) fn adapter_with(&self, object: PersonObject, concurrency: usize) -> SalesforceCrm {
        self.adapter_mapped(&self.mapping(), object, concurrency)
    }

    /// [`Self::adapter_with`] over `mapping` (its `[conversations]`, say).
    pub(crate) fn adapter_mapped(
        &self,
        mapping: &Mapping,
        object: PersonObject,
        concurrency: usize,
    ) -> SalesforceCrm {
        let login = format!("http://{}", self.addr);
        let instance = Instance::default();
        let endpoint =
            ClientCredentials::new(&login, CLIENT_ID, CLIENT_SECRET, instance.clone(), TIMEOUT)
                .unwrap();
        let store = SqliteTokenStore::new(self.db.clone(), "salesforce:test");
        let tokens = TokenProvider::new(Arc::new(endpoint), Arc::new(store), NO_REFRESH_TOKEN);
        SalesforceCrm::new(
            SalesforceSettings {
                login_url: login,
                api_version: super::salesforce_fake::API_VERSION.into(),
                object,
                id_field: mapping.id_property.clone().unwrap(),
                bsuid_field: wabridge_crm::bsuid_field(mapping).map(String::from),
                effect_field: mapping.effect_property.clone().unwrap(),
                concurrency,
                timeout: TIMEOUT,
                conversations: mapping.conversations.clone(),
            },
            Arc::new(tokens),
            instance,
        )
        .unwrap()
    }

    /// The adapter as `wabridge serve` builds it by default (Contact, the default concurrency).
    pub(crate) fn adapter(&self) -> SalesforceCrm {
        self.adapter_with(
            PersonObject::Contact,
            config::DEFAULT_SALESFORCE_CONCURRENCY as usize,
        )
    }

    /// An org whose cap on calls in flight is `cap`.
    pub(crate) async fn start_capped(latency: Duration, cap: usize) -> Self {
        // A CRM takes some time to answer: at none, calls would never overlap and the
        // concurrency cap would go untested.
        let latency = latency.max(Duration::from_millis(5));
        let fake = Arc::new(SalesforceFake::new(cap).with_latency(latency));
        let addr = serve(fake.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("tokens.db")).unwrap();
        Salesforce {
            fake,
            addr,
            db,
            _dir: dir,
        }
    }

    /// Person record id → its identity (`WhatsApp_Id__c`).
    fn key_of(&self, id: Option<&Value>) -> String {
        let Some(id) = id.and_then(Value::as_str) else {
            return String::new();
        };
        ["Contact", "Lead"]
            .iter()
            .flat_map(|o| self.fake.of(o))
            .find(|(k, _)| k == id)
            .and_then(|(_, r)| text(r.get("WhatsApp_Id__c")))
            .unwrap_or_default()
    }

    pub(crate) fn records(&self, object: &str) -> Vec<Map<String, Value>> {
        self.fake.of(object).into_iter().map(|(_, r)| r).collect()
    }
}

#[async_trait]
impl Subject for Salesforce {
    /// Cases, with the Tasks related to them (`WhatId`).
    fn conversations(&self) -> Option<Vec<super::ConversationView>> {
        let tasks = self.fake.of("Task");
        Some(
            self.fake
                .of("Case")
                .into_iter()
                .map(|(id, c)| super::ConversationView {
                    id: text(c.get("wabridge_Conversation_Id__c")).unwrap_or_default(),
                    contact: self.key_of(c.get("ContactId")),
                    revision: c
                        .get("wabridge_Revision__c")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    outcome: text(c.get("wabridge_Outcome__c")),
                    closed: c.get("Status").and_then(Value::as_str) == Some("Closed"),
                    activities: tasks
                        .iter()
                        .filter(|(_, t)| t.get("WhatId").and_then(Value::as_str) == Some(&id))
                        .count(),
                })
                .collect(),
        )
    }

    const KIND: &'static str = "salesforce";
    /// Salesforce documents no per-window rate: a rolling 24-hour allocation per org and a cap
    /// on long-running calls in flight ([`Self::CONCURRENCY`]).
    const LIMIT: Option<(usize, Duration)> = None;
    const CONCURRENCY: Option<usize> = Some(ORG_CONCURRENCY);
    const REJECTION_WORDS: &'static str = "INVALID_FIELD";

    async fn start_with(latency: Duration) -> Self {
        Self::start_capped(latency, ORG_CONCURRENCY).await
    }

    fn mapping(&self) -> Mapping {
        Mapping::example("salesforce").unwrap()
    }

    fn crm(&self) -> Arc<dyn Crm> {
        Arc::new(self.adapter())
    }

    fn lag_search_index(&self, _lag: Duration) {
        // Nothing searches: upserts and SOQL on External IDs read the database.
    }

    fn script(&self, faults: &[Fault]) {
        self.fake
            .scripted
            .lock()
            .unwrap()
            .extend(faults.iter().copied());
    }

    fn fault_next_activity(&self, fault: Fault) {
        self.fake.fail_once.lock().unwrap().insert(
            "PATCH composite/sobjects/Task/wabridge_Effect_Id__c".into(),
            fault,
        );
    }

    fn contacts(&self) -> Vec<ContactView> {
        self.records("Contact")
            .iter()
            .map(|c| {
                let f = |name: &str| text(c.get(name));
                ContactView {
                    key: f("WhatsApp_Id__c").unwrap_or_default(),
                    name: f("LastName"),
                    consent: f("WhatsApp_Marketing_Consent__c"),
                    first_clid: f("wabridge_first_ctwa_clid__c"),
                    last_clid: f("wabridge_last_ctwa_clid__c"),
                }
            })
            .collect()
    }

    fn activities(&self) -> Vec<ActivityView> {
        self.records("Task")
            .iter()
            .map(|t| ActivityView {
                effect: text(t.get("wabridge_Effect_Id__c")).unwrap_or_default(),
                contact: self.key_of(t.get("WhoId")),
                text: text(t.get("Description")).unwrap_or_default(),
            })
            .collect()
    }

    fn deals(&self) -> Vec<DealView> {
        self.records("Opportunity")
            .iter()
            .map(|o| DealView {
                effect: text(o.get("wabridge_Effect_Id__c")).unwrap_or_default(),
                contact: self.key_of(o.get("ContactId")),
                clid: text(o.get("ctwa_clid__c")),
            })
            .collect()
    }

    fn problems(&self) -> Vec<String> {
        self.fake.problems.lock().unwrap().clone()
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.fake.arrivals.lock().unwrap().clone()
    }

    fn over_limit(&self) -> u64 {
        self.fake.over_limit.load(Ordering::Relaxed)
    }

    fn peak_concurrency(&self) -> usize {
        self.fake.peak.load(Ordering::SeqCst)
    }
}
