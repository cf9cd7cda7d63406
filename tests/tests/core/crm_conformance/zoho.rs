//! Zoho CRM as a conformance subject, over the local Zoho of `zoho_fake`. Every adapter it
//! builds (a new process) refreshes its OAuth token through the same SQLite token store, as
//! `wabridge serve` and a CLI command on one data directory do.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_core::oauth::TokenProvider;
use wabridge_crm::zoho::conversations::{CONVERSATION_FIELD, NOTE_LINE};
use wabridge_crm::zoho::oauth::ZohoTokenEndpoint;
use wabridge_crm::zoho::{ZohoCrm, ZohoSettings};
use wabridge_sqlite::{Db, SqliteTokenStore};

use super::zoho_fake::{serve, ZohoFake, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};
use super::{ActivityView, ContactView, DealView, Fault, Subject};
use crate::crm_http::TIMEOUT;

/// The Enterprise edition's concurrent calls per org and app.
pub(crate) const CONCURRENCY: usize = 20;

pub(crate) struct Zoho {
    pub fake: Arc<ZohoFake>,
    pub addr: SocketAddr,
    /// The token store every adapter of this subject shares.
    pub db: Db,
    _dir: tempfile::TempDir,
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(String::from)
}

impl Zoho {
    /// An adapter (a new process) with its own token provider over the shared store.
    pub(crate) fn adapter(&self) -> ZohoCrm {
        self.adapter_with(&self.mapping(), CONCURRENCY)
    }

    /// [`Self::adapter`] over `mapping` (its `[conversations]`, say).
    pub(crate) fn adapter_mapped(&self, mapping: &Mapping) -> ZohoCrm {
        self.adapter_with(mapping, CONCURRENCY)
    }

    /// An adapter over `mapping` allowed `concurrency` calls in flight (`ZOHO_CONCURRENCY`).
    pub(crate) fn adapter_with(&self, mapping: &Mapping, concurrency: usize) -> ZohoCrm {
        let base = format!("http://{}", self.addr);
        let endpoint = ZohoTokenEndpoint::new(&base, CLIENT_ID, CLIENT_SECRET, TIMEOUT).unwrap();
        let store = SqliteTokenStore::new(self.db.clone(), "zoho:test");
        let tokens = TokenProvider::new(Arc::new(endpoint), Arc::new(store), REFRESH_TOKEN);
        ZohoCrm::new(
            ZohoSettings {
                api: base,
                id_field: mapping.id_property.clone().unwrap(),
                bsuid_field: wabridge_crm::bsuid_field(mapping).map(String::from),
                effect_field: mapping.effect_property.clone(),
                concurrency,
                timeout: TIMEOUT,
                conversations: mapping.conversations.clone(),
            },
            Arc::new(tokens),
        )
        .unwrap()
    }

    /// Contact id → its identity (`WhatsApp_ID`).
    fn key_of(&self, id: &Value) -> String {
        let contacts = self.fake.contacts.lock().unwrap();
        id.as_str()
            .and_then(|id| text(contacts.get(id)?.body.get("WhatsApp_ID")))
            .unwrap_or_default()
    }
}

#[async_trait]
impl Subject for Zoho {
    /// Cases, with the Notes naming their conversation (a Note has one parent: the contact).
    fn conversations(&self) -> Option<Vec<super::ConversationView>> {
        let notes = self.fake.notes.lock().unwrap().clone();
        let cases: Vec<Map<String, Value>> = self
            .fake
            .cases
            .lock()
            .unwrap()
            .values()
            .map(|c| c.body.clone())
            .collect();
        Some(
            cases
                .iter()
                .map(|c| {
                    let id = text(c.get(CONVERSATION_FIELD)).unwrap_or_default();
                    let line = format!("{NOTE_LINE}{id}\n");
                    super::ConversationView {
                        contact: self.key_of(&c["Contact_Name"]["id"]),
                        revision: c
                            .get("wabridge_Revision")
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                        outcome: text(c.get("wabridge_Outcome")),
                        closed: c.get("Status").and_then(Value::as_str) == Some("Closed"),
                        activities: notes
                            .iter()
                            .filter(|n| {
                                n["Note_Content"]
                                    .as_str()
                                    .is_some_and(|t| t.contains(&line))
                            })
                            .count(),
                        id,
                    }
                })
                .collect(),
        )
    }

    const KIND: &'static str = "zoho";
    /// Zoho documents no per-window rate: it limits calls in flight ([`Self::CONCURRENCY`]) and
    /// API credits per 24 h.
    const LIMIT: Option<(usize, Duration)> = None;
    const CONCURRENCY: Option<usize> = Some(CONCURRENCY);
    const REJECTION_WORDS: &'static str = "INVALID_DATA";

    async fn start_with(latency: Duration) -> Self {
        // A CRM takes some time to answer: at none, calls would never overlap and the
        // concurrency limit would go untested.
        let latency = latency.max(Duration::from_millis(5));
        let fake = Arc::new(ZohoFake::new(CONCURRENCY).with_latency(latency));
        *fake.search_lag.lock().unwrap() = Duration::from_millis(200);
        let addr = serve(fake.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("tokens.db")).unwrap();
        Zoho {
            fake,
            addr,
            db,
            _dir: dir,
        }
    }

    fn mapping(&self) -> Mapping {
        Mapping::example("zoho").unwrap()
    }

    fn crm(&self) -> Arc<dyn Crm> {
        Arc::new(self.adapter())
    }

    fn lag_search_index(&self, lag: Duration) {
        // Only erasure searches; upserts and related lists read the database.
        *self.fake.search_lag.lock().unwrap() = lag;
    }

    fn script(&self, faults: &[Fault]) {
        self.fake
            .scripted
            .lock()
            .unwrap()
            .extend(faults.iter().copied());
    }

    fn fault_next_activity(&self, fault: Fault) {
        self.fake
            .fail_once
            .lock()
            .unwrap()
            .insert("POST /crm/v8/Notes".into(), fault);
    }

    fn contacts(&self) -> Vec<ContactView> {
        let contacts = self.fake.contacts.lock().unwrap();
        contacts
            .values()
            .map(|c| {
                let f = |name: &str| text(c.body.get(name));
                ContactView {
                    key: f("WhatsApp_ID").unwrap_or_default(),
                    name: f("Last_Name"),
                    consent: f("WhatsApp_Marketing_Consent"),
                    first_clid: f("wabridge_first_ctwa_clid"),
                    last_clid: f("wabridge_last_ctwa_clid"),
                }
            })
            .collect()
    }

    fn activities(&self) -> Vec<ActivityView> {
        let notes = self.fake.notes.lock().unwrap().clone();
        notes
            .iter()
            .map(|n| {
                let content = n["Note_Content"].as_str().unwrap_or_default().to_string();
                let effect = content
                    .rsplit("wabridge: ")
                    .next()
                    .filter(|_| content.contains("wabridge: "))
                    .unwrap_or_default()
                    .to_string();
                ActivityView {
                    effect,
                    contact: self.key_of(&n["Parent_Id"]["id"]),
                    text: content,
                }
            })
            .collect()
    }

    fn deals(&self) -> Vec<DealView> {
        let deals: Vec<Value> = self
            .fake
            .deals
            .lock()
            .unwrap()
            .values()
            .map(|d| Value::Object(d.body.clone()))
            .collect();
        deals
            .iter()
            .map(|d| DealView {
                effect: text(d.get("wabridge_effect_id")).unwrap_or_default(),
                contact: self.key_of(&d["Contact_Name"]["id"]),
                clid: text(d.get("ctwa_clid")),
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
