//! HubSpot (CRM v3) as a conformance subject, over the HubSpot fake of `crm_http`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use wabridge_core::crm::Crm;
use wabridge_core::mapping::Mapping;
use wabridge_crm::hubspot::HubSpotCrm;

use super::{ActivityView, ContactView, ConversationView, DealView, Fault, Subject};
use crate::crm_http::fake::{serve, Fake};
use crate::crm_http::{COMMS, TIMEOUT, TOKEN};

/// Private apps on Professional and Enterprise: 190 calls per rolling 10 s.
const LIMIT: (usize, Duration) = (190, Duration::from_secs(10));

pub(crate) struct HubSpot {
    pub(super) fake: Arc<Fake>,
    addr: SocketAddr,
    /// How long a fresh adapter distrusts a search miss.
    lag: Mutex<Duration>,
}

impl HubSpot {
    fn text(v: &Value) -> Option<String> {
        v.as_str().map(String::from)
    }

    /// HubSpot record id → the contact's `whatsapp_id`.
    fn key_of(&self, hs_id: &Value) -> String {
        self.fake
            .contacts
            .lock()
            .unwrap()
            .iter()
            .find(|(_, id)| Some(id.as_str()) == hs_id.as_str())
            .map(|(key, _)| key.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Subject for HubSpot {
    const KIND: &'static str = "hubspot";
    const LIMIT: Option<(usize, Duration)> = Some(LIMIT);
    const REJECTION_WORDS: &'static str = "is not a valid phone number";

    async fn start_with(latency: Duration) -> Self {
        let fake = Arc::new(Fake {
            limit: Some(LIMIT),
            latency,
            ..Default::default()
        });
        let addr = serve(fake.clone()).await;
        HubSpot {
            fake,
            addr,
            lag: Mutex::new(Duration::from_millis(200)),
        }
    }

    fn mapping(&self) -> Mapping {
        Mapping::example("hubspot").unwrap()
    }

    fn crm(&self) -> Arc<dyn Crm> {
        let mapping = self.mapping();
        Arc::new(
            HubSpotCrm::new(
                &format!("http://{}", self.addr),
                TOKEN,
                mapping.id_property.as_deref().unwrap(),
                mapping.effect_property.as_deref(),
                TIMEOUT,
            )
            .unwrap()
            .with_search_lag(*self.lag.lock().unwrap())
            .with_bsuid_property(wabridge_crm::bsuid_field(&mapping)),
        )
    }

    fn lag_search_index(&self, lag: Duration) {
        *self.lag.lock().unwrap() = lag;
        self.fake.set_search_lag(lag);
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
            .insert(COMMS.to_string(), fault);
    }

    fn contacts(&self) -> Vec<ContactView> {
        let props = self.fake.contact_props.lock().unwrap().clone();
        props
            .into_iter()
            .map(|(key, p)| ContactView {
                key,
                name: match (Self::text(&p["firstname"]), Self::text(&p["lastname"])) {
                    (Some(f), Some(l)) => Some(format!("{f} {l}")),
                    (f, l) => f.or(l),
                },
                consent: Self::text(&p["whatsapp_marketing_consent"]),
                first_clid: Self::text(&p["wabridge_first_ctwa_clid"]),
                last_clid: Self::text(&p["wabridge_last_ctwa_clid"]),
            })
            .collect()
    }

    fn activities(&self) -> Vec<ActivityView> {
        let comms = self.fake.comms.lock().unwrap().clone();
        comms
            .iter()
            .map(|c| ActivityView {
                effect: Self::text(&c["properties"]["wabridge_effect_id"]).unwrap_or_default(),
                contact: self.key_of(&c["associations"][0]["to"]["id"]),
                text: Self::text(&c["properties"]["hs_communication_body"]).unwrap_or_default(),
            })
            .collect()
    }

    fn conversations(&self) -> Option<Vec<ConversationView>> {
        let tickets = self.fake.tickets.lock().unwrap().clone();
        let links = self.fake.ticket_links.lock().unwrap().clone();
        Some(
            tickets
                .into_iter()
                .map(|(id, t)| {
                    let p = &t["properties"];
                    let ticket = t["id"].as_str().unwrap_or_default();
                    let contact = links
                        .iter()
                        .find(|(kind, from, _)| kind == "tickets/contacts" && from == ticket)
                        .map(|(_, _, to)| self.key_of(&Value::from(to.as_str())))
                        .unwrap_or_default();
                    ConversationView {
                        id,
                        contact,
                        revision: p["wabridge_revision"]
                            .as_str()
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0),
                        outcome: Self::text(&p["wabridge_outcome"]),
                        closed: p["hs_pipeline_stage"] == "4",
                        activities: links
                            .iter()
                            .filter(|(kind, _, to)| {
                                kind == "communications/tickets" && to == ticket
                            })
                            .count(),
                    }
                })
                .collect(),
        )
    }

    fn deals(&self) -> Vec<DealView> {
        let deals = self.fake.deals.lock().unwrap().clone();
        deals
            .iter()
            .map(|d| DealView {
                effect: Self::text(&d["properties"]["wabridge_effect_id"]).unwrap_or_default(),
                contact: self.key_of(&d["associations"][0]["to"]["id"]),
                clid: Self::text(&d["properties"]["ctwa_clid"]),
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
