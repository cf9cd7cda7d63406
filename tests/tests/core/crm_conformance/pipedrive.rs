//! Pipedrive as a conformance subject, over the local Pipedrive of `pipedrive_fake`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_crm::pipedrive::{PipedriveAuth, PipedriveCrm, PipedriveSettings};

use super::pipedrive_fake::{code, serve, PipedriveFake, TOKEN};
use super::{ActivityView, ContactView, ConversationView, DealView, Fault, Subject};
use crate::crm_http::TIMEOUT;

/// The Enterprise plan's API-token burst limit per 2 s, and the search limit per 2 s.
const LIMITS: (usize, usize) = (120, 10);

pub(crate) struct Pipedrive {
    fake: Arc<PipedriveFake>,
    addr: SocketAddr,
    lag: Mutex<Duration>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

impl Pipedrive {
    fn custom(person: &Value, name: &str) -> Option<String> {
        text(&person["custom_fields"][code(name)])
    }

    /// Person id → its identity (`whatsapp_id`).
    fn key_of(&self, person: &Value) -> String {
        person
            .as_u64()
            .and_then(|id| {
                let persons = self.fake.persons.lock().unwrap();
                Self::custom(&persons.get(&id)?.body, "whatsapp_id")
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl Subject for Pipedrive {
    const KIND: &'static str = "pipedrive";
    const LIMIT: Option<(usize, Duration)> = Some((LIMITS.0, Duration::from_secs(2)));
    const REJECTION_WORDS: &'static str = "is not a valid phone number";

    async fn start_with(latency: Duration) -> Self {
        let fake = Arc::new(PipedriveFake::new(LIMITS).with_latency(latency));
        let addr = serve(fake.clone()).await;
        Pipedrive {
            fake,
            addr,
            lag: Mutex::new(Duration::from_millis(200)),
        }
    }

    fn mapping(&self) -> Mapping {
        Mapping::example("pipedrive").unwrap()
    }

    fn crm(&self) -> Arc<dyn Crm> {
        let mapping = self.mapping();
        Arc::new(
            PipedriveCrm::new(PipedriveSettings {
                base: format!("http://{}", self.addr),
                auth: PipedriveAuth::ApiToken(TOKEN.into()),
                id_field: mapping.id_property.clone().unwrap(),
                bsuid_field: wabridge_crm::bsuid_field(&mapping).map(String::from),
                effect_field: mapping.effect_property.clone(),
                limits: LIMITS,
                timeout: TIMEOUT,
                search_lag: *self.lag.lock().unwrap(),
                conversations: mapping.conversations.clone(),
            })
            .unwrap(),
        )
    }

    fn lag_search_index(&self, lag: Duration) {
        *self.lag.lock().unwrap() = lag;
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
            .insert("POST /v1/notes".into(), fault);
    }

    fn contacts(&self) -> Vec<ContactView> {
        let persons = self.fake.persons.lock().unwrap();
        persons
            .values()
            .map(|p| ContactView {
                key: Self::custom(&p.body, "whatsapp_id").unwrap_or_default(),
                name: text(&p.body["name"]),
                consent: Self::custom(&p.body, "whatsapp_marketing_consent"),
                first_clid: Self::custom(&p.body, "wabridge_first_ctwa_clid"),
                last_clid: Self::custom(&p.body, "wabridge_last_ctwa_clid"),
            })
            .collect()
    }

    fn activities(&self) -> Vec<ActivityView> {
        let notes = self.fake.notes.lock().unwrap().clone();
        notes
            .iter()
            .map(|n| {
                let content = text(&n["content"]).unwrap_or_default();
                let effect = content
                    .split("wabridge: ")
                    .nth(1)
                    .and_then(|rest| rest.split('<').next())
                    .unwrap_or_default()
                    .to_string();
                ActivityView {
                    effect,
                    contact: self.key_of(&n["person_id"]),
                    text: content,
                }
            })
            .collect()
    }

    /// The conversation deals, each with the notes linked to it (`deal_id`).
    fn conversations(&self) -> Option<Vec<ConversationView>> {
        let deals = self.fake.deals.lock().unwrap().clone();
        let notes = self.fake.notes.lock().unwrap().clone();
        Some(
            deals
                .iter()
                .filter_map(|d| {
                    let id = Self::custom(d, "wabridge_conversation_id")?;
                    Some(ConversationView {
                        id,
                        contact: self.key_of(&d["person_id"]),
                        revision: Self::custom(d, "wabridge_revision")
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0),
                        outcome: Self::custom(d, "wabridge_outcome"),
                        closed: Self::custom(d, "wabridge_closed_at").is_some(),
                        activities: notes.iter().filter(|n| n["deal_id"] == d["id"]).count(),
                    })
                })
                .collect(),
        )
    }

    /// The deals of leads (a conversation's deal is not one).
    fn deals(&self) -> Vec<DealView> {
        let deals = self.fake.deals.lock().unwrap().clone();
        deals
            .iter()
            .filter(|d| Self::custom(d, "wabridge_conversation_id").is_none())
            .map(|d| DealView {
                effect: Self::custom(d, "wabridge_effect_id").unwrap_or_default(),
                contact: self.key_of(&d["person_id"]),
                clid: Self::custom(d, "ctwa_clid"),
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
}
