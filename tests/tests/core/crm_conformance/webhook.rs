//! The signed webhook as a conformance subject: the fake is a Standard Webhooks receiver that
//! verifies each signature and deduplicates on `webhook-id`, as the receivers it stands for
//! must; its "CRM" is what such a receiver would hold after upserting by `external_id`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_crm::webhook::WebhookCrm;

use super::{ActivityView, ContactView, ConversationView, DealView, Fault, Subject};
use crate::crm_http::fake::{serve, Fake};
use crate::crm_http::{SECRET, TIMEOUT};

pub(crate) struct Webhook {
    fake: Arc<Fake>,
    addr: SocketAddr,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

impl Webhook {
    /// Each accepted post once (a receiver drops a repeated `webhook-id`).
    fn records(&self) -> Vec<Value> {
        let mut seen = HashSet::new();
        let bodies = self.fake.hook_bodies.lock().unwrap().clone();
        bodies
            .into_iter()
            .filter(|b| seen.insert(b["_webhook_id"].as_str().unwrap_or_default().to_string()))
            .collect()
    }

    /// Our contact id (stable; what a receiver keys on) → the person's identity: the phone
    /// of any of its contact records, else the BSUID.
    fn keys(records: &[Value]) -> HashMap<String, String> {
        let mut keys: HashMap<String, String> = HashMap::new();
        for r in records.iter().filter(|r| r["kind"] == "contact") {
            let (Some(id), Some(external)) = (text(&r["id"]), text(&r["fields"]["external_id"]))
            else {
                continue;
            };
            let by_phone = text(&r["phone_e164"]).is_some();
            let known = keys.entry(id).or_insert_with(|| external.clone());
            if by_phone {
                *known = external;
            }
        }
        keys
    }
}

#[async_trait]
impl Subject for Webhook {
    const KIND: &'static str = "webhook";
    /// A receiver the business runs: no documented limit.
    const LIMIT: Option<(usize, Duration)> = None;
    const REJECTION_WORDS: &'static str = "is not a valid phone";

    async fn start_with(latency: Duration) -> Self {
        let fake = Arc::new(Fake {
            latency,
            ..Default::default()
        });
        let addr = serve(fake.clone()).await;
        Webhook { fake, addr }
    }

    fn mapping(&self) -> Mapping {
        Mapping::example("webhook").unwrap()
    }

    fn crm(&self) -> Arc<dyn Crm> {
        Arc::new(WebhookCrm::new(&format!("http://{}/hook", self.addr), SECRET, TIMEOUT).unwrap())
    }

    /// Nothing is searched: the receiver deduplicates on the effect id.
    fn lag_search_index(&self, _lag: Duration) {}

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
            .insert("/hook#activity".into(), fault);
    }

    fn contacts(&self) -> Vec<ContactView> {
        let records = self.records();
        let keys = Self::keys(&records);
        let mut contacts: HashMap<String, ContactView> = HashMap::new();
        for r in &records {
            let ours = if r["kind"] == "contact" {
                &r["id"]
            } else {
                &r["contact_id"]
            };
            let Some(key) = text(ours).and_then(|id| keys.get(&id).cloned()) else {
                continue;
            };
            let c = contacts.entry(key.clone()).or_insert_with(|| ContactView {
                key,
                ..Default::default()
            });
            match r["kind"].as_str() {
                Some("contact") => c.name = text(&r["fields"]["full_name"]).or(c.name.take()),
                Some("consent") => c.consent = text(&r["fields"]["marketing_consent"]),
                Some("attribution") if r["touch"] == "first" => {
                    c.first_clid = text(&r["ctwa_clid"])
                }
                Some("attribution") if r["touch"] == "last" => c.last_clid = text(&r["ctwa_clid"]),
                _ => {}
            }
        }
        contacts.into_values().collect()
    }

    fn activities(&self) -> Vec<ActivityView> {
        let records = self.records();
        let keys = Self::keys(&records);
        records
            .iter()
            .filter(|r| r["kind"] == "activity")
            .map(|r| {
                let codes: Vec<String> = r["errors"]
                    .as_array()
                    .map(|e| e.iter().map(|e| e["code"].to_string()).collect())
                    .unwrap_or_default();
                ActivityView {
                    effect: text(&r["_webhook_id"]).unwrap_or_default(),
                    contact: text(&r["contact_id"])
                        .and_then(|id| keys.get(&id).cloned())
                        .unwrap_or_default(),
                    text: format!(
                        "{} {}",
                        text(&r["text"])
                            .or_else(|| text(&r["status"]))
                            .unwrap_or_default(),
                        codes.join(" ")
                    ),
                }
            })
            .collect()
    }

    fn conversations(&self) -> Option<Vec<ConversationView>> {
        let records = self.records();
        let keys = Self::keys(&records);
        // A receiver keeps each conversation's highest revision.
        let mut newest: HashMap<String, &Value> = HashMap::new();
        for r in records.iter().filter(|r| r["kind"] == "conversation") {
            let id = text(&r["id"]).unwrap_or_default();
            let held = newest.get(&id).and_then(|h| h["revision"].as_u64());
            if held < r["revision"].as_u64() {
                newest.insert(id, r);
            }
        }
        Some(
            newest
                .into_iter()
                .map(|(id, r)| ConversationView {
                    contact: text(&r["contact_id"])
                        .and_then(|c| keys.get(&c).cloned())
                        .unwrap_or_default(),
                    revision: r["revision"].as_u64().unwrap_or(0),
                    outcome: text(&r["outcome"]),
                    closed: !r["closed_at"].is_null(),
                    activities: records
                        .iter()
                        .filter(|a| a["kind"] == "activity" && a["conversation_id"] == id.as_str())
                        .count(),
                    id,
                })
                .collect(),
        )
    }

    fn deals(&self) -> Vec<DealView> {
        let records = self.records();
        let keys = Self::keys(&records);
        records
            .iter()
            .filter(|r| r["kind"] == "lead")
            .map(|r| DealView {
                effect: text(&r["_webhook_id"]).unwrap_or_default(),
                contact: text(&r["contact_id"])
                    .and_then(|id| keys.get(&id).cloned())
                    .unwrap_or_default(),
                clid: text(&r["ctwa_clid"]),
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
