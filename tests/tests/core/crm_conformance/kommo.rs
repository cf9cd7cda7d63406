//! Kommo as a conformance subject, over the local Kommo of `kommo_fake`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_crm::kommo::{KommoAuth, KommoCrm, KommoSettings, NOTES_BATCH_MAX};

use super::kommo_fake::{field_id, serve, KommoFake, LIMIT, TOKEN};
use super::{ActivityView, ContactView, ConversationView, DealView, Fault, Subject};
use crate::crm_http::TIMEOUT;

pub(crate) struct Kommo {
    pub fake: Arc<KommoFake>,
    pub addr: SocketAddr,
    lag: Mutex<Duration>,
}

/// The text value of custom field `id` in an entity's `custom_fields_values`.
pub(crate) fn custom(entity: &Value, lead: bool, name: &str) -> Option<String> {
    let id = field_id(lead, name);
    entity["custom_fields_values"]
        .as_array()?
        .iter()
        .find(|f| f["field_id"] == id)?["values"][0]["value"]
        .as_str()
        .map(String::from)
}

impl Kommo {
    /// Contact id → its identity (`whatsapp_id`).
    fn key_of(&self, contact: &Value) -> String {
        contact
            .as_u64()
            .and_then(|id| {
                let contacts = self.fake.contacts.lock().unwrap();
                custom(&contacts.get(&id)?.body, false, "whatsapp_id")
            })
            .unwrap_or_default()
    }

    /// The adapter's settings against this fake, with the search lag it trusts.
    pub(crate) fn settings(&self) -> KommoSettings {
        let mapping = Mapping::example("kommo").unwrap();
        KommoSettings {
            base: format!("http://{}", self.addr),
            auth: KommoAuth::Token(TOKEN.into()),
            id_field: mapping.id_property.clone().unwrap(),
            bsuid_field: wabridge_crm::bsuid_field(&mapping).map(String::from),
            effect_field: mapping.effect_property.clone(),
            per_second: LIMIT,
            timeout: TIMEOUT,
            search_lag: *self.lag.lock().unwrap(),
            notes_batch: NOTES_BATCH_MAX,
            conversations: mapping.conversations.clone(),
        }
    }
}

#[async_trait]
impl Subject for Kommo {
    const KIND: &'static str = "kommo";
    const LIMIT: Option<(usize, Duration)> = Some((LIMIT, Duration::from_secs(1)));
    const REJECTION_WORDS: &'static str = "is not a valid phone number";

    async fn start_with(latency: Duration) -> Self {
        let fake = Arc::new(KommoFake::with_latency(latency));
        let addr = serve(fake.clone()).await;
        Kommo {
            fake,
            addr,
            lag: Mutex::new(Duration::from_millis(200)),
        }
    }

    fn mapping(&self) -> Mapping {
        Mapping::example("kommo").unwrap()
    }

    fn crm(&self) -> Arc<dyn Crm> {
        Arc::new(KommoCrm::new(self.settings()).unwrap())
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
            .insert("POST /api/v4/contacts/notes".into(), fault);
    }

    fn contacts(&self) -> Vec<ContactView> {
        let contacts = self.fake.contacts.lock().unwrap();
        contacts
            .values()
            .map(|c| ContactView {
                key: custom(&c.body, false, "whatsapp_id").unwrap_or_default(),
                name: c.body["name"].as_str().map(String::from),
                consent: custom(&c.body, false, "whatsapp_marketing_consent"),
                first_clid: custom(&c.body, false, "wabridge_first_ctwa_clid"),
                last_clid: custom(&c.body, false, "wabridge_last_ctwa_clid"),
            })
            .collect()
    }

    fn activities(&self) -> Vec<ActivityView> {
        let notes = self.fake.notes.lock().unwrap().clone();
        notes
            .iter()
            .map(|n| {
                let text = n["params"]["text"].as_str().unwrap_or_default().to_string();
                let effect = text
                    .lines()
                    .find_map(|l| l.strip_prefix("wabridge: "))
                    .unwrap_or_default()
                    .to_string();
                ActivityView {
                    effect,
                    contact: self.key_of(&n["entity_id"]),
                    text,
                }
            })
            .collect()
    }

    /// The conversation leads. A Kommo note has one parent and the adapter keeps notes on the
    /// contact, so a lead's activities are its contact's notes naming the conversation.
    fn conversations(&self) -> Option<Vec<ConversationView>> {
        let leads = self.fake.leads.lock().unwrap().clone();
        let notes = self.fake.notes.lock().unwrap().clone();
        Some(
            leads
                .iter()
                .filter_map(|l| {
                    let id = custom(l, true, "wabridge_conversation_id")?;
                    let contact = &l["contacts"][0];
                    let line = format!("WhatsApp conversation {id}");
                    let activities = notes
                        .iter()
                        .filter(|n| n["entity_id"] == *contact)
                        .filter(|n| {
                            n["params"]["text"]
                                .as_str()
                                .is_some_and(|t| t.lines().any(|l| l == line))
                        })
                        .count();
                    Some(ConversationView {
                        contact: self.key_of(contact),
                        revision: custom(l, true, "wabridge_revision")
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0),
                        outcome: custom(l, true, "wabridge_outcome"),
                        closed: custom(l, true, "wabridge_closed_at").is_some(),
                        activities,
                        id,
                    })
                })
                .collect(),
        )
    }

    /// The leads of leads (a conversation's lead is not one).
    fn deals(&self) -> Vec<DealView> {
        let leads = self.fake.leads.lock().unwrap().clone();
        leads
            .iter()
            .filter(|l| custom(l, true, "wabridge_conversation_id").is_none())
            .map(|l| DealView {
                effect: custom(l, true, "wabridge_effect_id").unwrap_or_default(),
                contact: self.key_of(&l["contacts"][0]),
                clid: custom(l, true, "ctwa_clid"),
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
