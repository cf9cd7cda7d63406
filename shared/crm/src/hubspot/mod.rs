//! The `hubspot` CRM (CRM v3 API, private app token as `Authorization: Bearer`).
//!
//! Every record kind, and what it becomes:
//! - **contact**: `POST /crm/v3/objects/contacts/batch/upsert` by the mapping's `id_property` (a
//!   custom contact property with unique values holding the E.164 number or the BSUID); the
//!   mapped `[[contact]]` fields are the properties (as strings). Idempotent.
//! - **inbound activity**: a Communication (`POST /crm/v3/objects/communications/batch/create`)
//!   with `hs_communication_channel_type: WHATS_APP`, `hs_communication_logged_from: CRM`, the
//!   mapped `[[activity]]` fields, associated to the contact (type 81, communication → contact,
//!   `HUBSPOT_DEFINED`).
//! - **outbound status**: one Communication per status change of a message we sent (`sent`,
//!   `delivered`, `read`, `failed` with its error), body `WhatsApp message <wamid> <status>`.
//!   Chosen over find-and-update: HubSpot's search is rate limited (a few calls per second) and
//!   eventually consistent, so finding the message's earlier communication would throttle or
//!   duplicate under load; a create per change is batched, exactly once (effect id), and the
//!   ledger's forward-only rule keeps the timeline in order (a late `delivered` after `read` is
//!   dropped before it reaches us), so the newest entry is the final status.
//! - **consent**: a contact upsert of the mapped `[[consent_fields]]` (e.g.
//!   `whatsapp_marketing_consent` = `opt_in` / `opt_out`, `whatsapp_consent_date`).
//! - **attribution** (first / last touch): a contact upsert of
//!   [`crate::hubspot::attribution::contact_properties`] (`wabridge_first_utm_source`, …).
//! - **lead**: a Deal (`POST /crm/v3/objects/deals/batch/create`,
//!   [`crate::hubspot::attribution::deal_body`]) associated to the contact (type 3) with the UTM
//!   properties.
//! - **media**: the file uploaded to HubSpot's file manager (private) and attached to a note on
//!   the contact; a file that could not be stored, a note saying why ([`media`]).
//! - **call**: a Call engagement from the call's terminate event ([`calls`]).
//! - **message change** (an edit or deletion): the message's Communication body updated, or a
//!   Communication of its own when it is not found (`message_changes`).
//! - **conversation** (and `conversation_closed`): one Ticket per conversation, upserted by its
//!   id and keeping the highest revision, associated to the contact and to the Communications
//!   of its messages (`tickets.rs`, `ticket_fields.rs`).
//! - **status of a message sent to a group**: skipped (it names a group, no contact).
//! - **template status, number quality, account, unknown**: skipped by design, logged and counted
//!   ([`HubSpotCrm::stats`]): they belong to the WhatsApp account, not to a contact, and HubSpot
//!   has no object for them (an unassociated engagement shows nowhere in HubSpot's UI). The
//!   `local` and `webhook` CRMs keep them; operators watch them through logs / alarms.
//!
//! Batching across events: concurrent `apply` calls are coalesced ([`batch`]) into one call per
//! endpoint of up to 100 inputs (or whatever arrived within [`DEFAULT_LINGER`]); each caller
//! gets its own result, per-input errors go to the right caller, and a 429 / 5xx / timeout of
//! the batch call fails all its callers with that class.
//!
//! Exactly once: upserts are idempotent. Creates are not, so every created communication and
//! deal carries its effect id in the mapping's `effect_property` (a custom property, e.g.
//! `wabridge_effect_id`), and an in-doubt effect (an earlier attempt may have created it: a
//! timeout, a 5xx, a crash before the ledger's confirm) first searches
//! `POST /crm/v3/objects/{type}/search` (`EQ`) and creates only when nothing is found. The
//! search index lags behind creates, so a miss is trusted only [`DEFAULT_SEARCH_LAG`] after the
//! uncertain attempt (see `HubSpotCrm::already_created`).
//!
//! Limits: every call takes a place in the portal's rolling window first (`HUBSPOT_BURST_LIMIT`
//! calls per 10 s, default 190, less 5 % headroom; batching keeps the calls few). 429 → retry
//! after `Retry-After`, else `X-HubSpot-RateLimit-Interval-Milliseconds`; when a success
//! reports `X-HubSpot-RateLimit-Remaining: 0` (another app spent the window) the next call
//! waits for the interval instead of provoking a 429.

pub(crate) mod api;
pub mod attribution;
pub use crate::batch;
pub mod calls;
pub(crate) mod check;
mod erase;
mod identity;
pub mod media;
mod message_changes;
mod recovery;
pub mod ticket_fields;
mod ticket_links;
mod ticket_reads;
mod tickets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::cache::InFlight;
use crate::hubspot::attribution::{contact_properties, deal_body, DealSettings};
use crate::hubspot::ticket_fields::TicketSettings;
use crate::timeline::status_text;
use api::{as_string, Client, CreateInput, CreateOp, UpsertInput, UpsertOp};
use batch::{BatchStats, Batcher};
use wabridge_core::attribution::LeadRecord;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::records::{ActivityRecord, Direction, Record};

/// Communication → contact (HubSpot-defined association type id).
pub const COMMUNICATION_TO_CONTACT: u32 = 81;
/// Most inputs HubSpot takes in one batch call.
pub const BATCH_MAX: usize = 100;
/// How long a batch waits for more inputs after its first one.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// How long HubSpot's search index may lag behind a create: an in-doubt search that finds
/// nothing is trusted only this long after the attempt that may have created the object.
pub const DEFAULT_SEARCH_LAG: Duration = Duration::from_secs(10);
/// Contact ids remembered (HubSpot id by id-property value); the cache restarts when full.
const CONTACT_CACHE_MAX: usize = 100_000;
/// In-doubt effects remembered with the time of their last uncertain attempt.
const DOUBTFUL_MAX: usize = 10_000;

/// Calls and batch sizes per endpoint, and records skipped by design per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubSpotStats {
    pub contacts: BatchStats,
    pub communications: BatchStats,
    pub deals: BatchStats,
    /// Ticket upserts (conversations).
    pub tickets: BatchStats,
    /// `template_status`, `quality`, `unknown` records not written to HubSpot.
    pub skipped: BTreeMap<&'static str, u64>,
}

pub struct HubSpotCrm {
    client: Arc<Client>,
    id_property: String,
    effect_property: Option<String>,
    deal_settings: DealSettings,
    contacts: Batcher<UpsertOp>,
    communications: Batcher<CreateOp>,
    deals: Batcher<CreateOp>,
    contact_ids: Mutex<HashMap<String, String>>,
    /// Contact upserts in flight, by id-property value: a lookup of the contact's HubSpot id
    /// (a ticket written beside its contact) waits for one instead of upserting again.
    upserting: InFlight<String>,
    /// Our contact id → id-property value of its HubSpot contact ([`identity`]).
    persons: Mutex<HashMap<String, String>>,
    /// Contact property holding the BSUID ([`HubSpotCrm::with_bsuid_property`]).
    bsuid_property: Option<String>,
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    search_lag: Duration,
    /// Effect id → when its last create attempt ended without an answer (5xx, timeout).
    doubtful: Mutex<HashMap<String, Instant>>,
    call_budget: Duration,
    /// Where media files are read from for upload ([`HubSpotCrm::with_media`]).
    media: Option<media::MediaFiles>,
    /// Conversations as tickets ([`tickets`]).
    tickets: tickets::Tickets,
}

impl HubSpotCrm {
    pub fn new(
        base: &str,
        token: &str,
        id_property: &str,
        effect_property: Option<&str>,
        timeout: Duration,
    ) -> Result<HubSpotCrm, crate::ConfigError> {
        let client = Arc::new(Client::new(base, token, timeout)?);
        let (contacts, communications, deals) =
            batchers(&client, id_property, BATCH_MAX, DEFAULT_LINGER);
        Ok(HubSpotCrm {
            id_property: id_property.to_string(),
            effect_property: effect_property.map(String::from),
            deal_settings: DealSettings::default(),
            contacts,
            communications,
            deals,
            contact_ids: Mutex::new(HashMap::new()),
            upserting: InFlight::default(),
            persons: Mutex::new(HashMap::new()),
            bsuid_property: None,
            skipped: Mutex::new(BTreeMap::new()),
            search_lag: DEFAULT_SEARCH_LAG,
            doubtful: Mutex::new(HashMap::new()),
            // A batch's linger, the wait for a ticket being created, then at most a search
            // and a create (an in-doubt create).
            call_budget: DEFAULT_LINGER + tickets::TICKET_WAIT + timeout * 2,
            media: None,
            tickets: tickets::Tickets::new(&client, TicketSettings::default()),
            client,
        })
    }

    /// Batch size (at most [`BATCH_MAX`]; 1 turns batching off) and linger.
    pub fn with_batching(mut self, max: usize, linger: Duration) -> Self {
        let (contacts, communications, deals) = batchers(
            &self.client,
            &self.id_property,
            max.clamp(1, BATCH_MAX),
            linger,
        );
        self.contacts = contacts;
        self.communications = communications;
        self.deals = deals;
        self
    }

    /// The portal's burst limit: at most `max` calls (less 5 % headroom) in any rolling
    /// `window` (default 190 per 10 s, private apps on Professional and Enterprise).
    pub fn with_rate_limit(self, max: usize, window: Duration) -> Self {
        self.client.set_rate_limit(max, window);
        self
    }

    /// How long HubSpot's search index may lag behind creates (default [`DEFAULT_SEARCH_LAG`]).
    pub fn with_search_lag(mut self, lag: Duration) -> Self {
        self.search_lag = lag;
        self
    }

    /// Pipeline and stage of the deals made from leads.
    pub fn with_deal_settings(mut self, settings: DealSettings) -> Self {
        self.deal_settings = settings;
        self
    }

    /// Pipeline, stages and owners of the tickets made from conversations.
    pub fn with_tickets(mut self, settings: TicketSettings) -> Self {
        self.tickets = tickets::Tickets::new(&self.client, settings);
        self
    }

    pub fn stats(&self) -> HubSpotStats {
        HubSpotStats {
            contacts: self.contacts.stats(),
            communications: self.communications.stats(),
            deals: self.deals.stats(),
            tickets: self.tickets.stats(),
            skipped: self.skipped.lock().unwrap().clone(),
        }
    }

    fn id_value(&self, fields: &Map<String, Value>) -> Result<String, CrmError> {
        fields
            .get(&self.id_property)
            .map(as_string)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                CrmError::Rejected(format!("contact has no `{}` (mapping)", self.id_property))
            })
    }

    /// Upserts `properties` onto the contact whose id property is `id`; returns its HubSpot id.
    async fn upsert(&self, id: String, properties: Map<String, Value>) -> Result<String, CrmError> {
        let mut properties = properties;
        properties.insert(self.id_property.clone(), Value::String(id.clone()));
        let landing = self.upserting.start(&id);
        let hs_id = match self
            .contacts
            .submit(UpsertInput {
                id: id.clone(),
                properties,
            })
            .await
        {
            Ok(hs_id) => hs_id,
            Err(e) => {
                landing.land(None);
                return Err(e);
            }
        };
        {
            let mut cache = self.contact_ids.lock().unwrap();
            if cache.len() >= CONTACT_CACHE_MAX {
                cache.clear();
            }
            cache.insert(id, hs_id.clone());
        }
        landing.land(Some(hs_id.clone()));
        Ok(hs_id)
    }

    /// The HubSpot id of the effect's contact if this process knows it, without a call.
    async fn known_contact_hs_id(&self, effect: &Effect) -> Result<Option<String>, CrmError> {
        let id = self.effect_contact_id(effect).await?;
        Ok(self.contact_ids.lock().unwrap().get(&id).cloned())
    }

    /// The HubSpot id of the effect's contact: cached, else the answer of its upsert in
    /// flight, else upserted (harmless to repeat).
    async fn contact_hs_id(&self, effect: &Effect) -> Result<String, CrmError> {
        let id = self.effect_contact_id(effect).await?;
        if let Some(hs) = self.contact_ids.lock().unwrap().get(&id) {
            return Ok(hs.clone());
        }
        if let Some(hs) = self.upserting.wait(&id).await {
            return Ok(hs);
        }
        let fields = effect
            .contact
            .as_ref()
            .map(|(_, f)| f.clone())
            .unwrap_or_default();
        self.upsert(id, fields).await
    }

    async fn log_communication(
        &self,
        effect: &Effect,
        activity: &ActivityRecord,
    ) -> Result<(), CrmError> {
        if self.already_created("communications", effect).await? {
            return Ok(());
        }
        let contact = self.contact_hs_id(effect).await?;
        let mut properties = effect.fields.clone();
        properties.insert("hs_communication_channel_type".into(), "WHATS_APP".into());
        properties.insert("hs_communication_logged_from".into(), "CRM".into());
        // A status of a message we sent; an echo (a message from the Business app, with an
        // agent) reads like an inbound one, its text through the mapping.
        if activity.direction == Some(Direction::Outbound) && activity.agent.is_none() {
            properties.insert("hs_communication_body".into(), status_text(activity).into());
        }
        if let Some(prop) = &self.effect_property {
            properties.insert(prop.clone(), effect.id.clone().into());
        }
        let mut associations = vec![ticket_links::inline(&contact, COMMUNICATION_TO_CONTACT)];
        // Tied to its conversation's ticket in the same call when the ticket is known here;
        // else at the ticket's next write.
        let conversation = activity.conversation_id.as_deref();
        let ticket = match conversation {
            Some(c) => self.tickets.inline_for(c).await,
            None => None,
        };
        if let Some((ticket, type_id)) = &ticket {
            associations.push(ticket_links::inline(ticket, *type_id));
        }
        let input = CreateInput {
            properties,
            associations: associations.into(),
        };
        let id = self.create(&self.communications, effect, input).await?;
        if let (Some(conversation), None) = (conversation, ticket) {
            self.tickets.communication_logged(conversation, id);
        }
        Ok(())
    }

    async fn create_deal(&self, effect: &Effect, lead: &LeadRecord) -> Result<(), CrmError> {
        if self.already_created("deals", effect).await? {
            return Ok(());
        }
        let contact = self.contact_hs_id(effect).await?;
        let body = deal_body(lead, &contact, &self.deal_settings);
        let mut properties = body["properties"].as_object().cloned().unwrap_or_default();
        if let Some(prop) = &self.effect_property {
            properties.insert(prop.clone(), effect.id.clone().into());
        }
        let input = CreateInput {
            properties,
            associations: body["associations"].clone(),
        };
        self.create(&self.deals, effect, input).await.map(drop)
    }

    fn skip(&self, effect: &Effect, why: &str) {
        let kind = effect.record.kind();
        *self.skipped.lock().unwrap().entry(kind).or_default() += 1;
        tracing::info!(effect = %effect.id, kind, reason = why, "hubspot: record not written to HubSpot (by design)");
    }
}

fn batchers(
    client: &Arc<Client>,
    id_property: &str,
    max: usize,
    linger: Duration,
) -> (Batcher<UpsertOp>, Batcher<CreateOp>, Batcher<CreateOp>) {
    (
        Batcher::new(
            UpsertOp {
                client: client.clone(),
                object: "contacts",
                id_property: id_property.to_string(),
            },
            max,
            linger,
        ),
        Batcher::new(
            CreateOp {
                client: client.clone(),
                object: "communications",
            },
            max,
            linger,
        ),
        Batcher::new(
            CreateOp {
                client: client.clone(),
                object: "deals",
            },
            max,
            linger,
        ),
    )
}

#[async_trait]
impl Crm for HubSpotCrm {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn call_budget(&self) -> Option<Duration> {
        Some(self.call_budget)
    }

    /// A conversation's ticket is written beside the contact: an opening's ticket is created
    /// while the contact is upserted and tied to it once the contact's id is known, and the
    /// event's Communications wait for the ticket's id to carry it inline (`tickets.rs`).
    fn waits_for_contact(&self, record: &Record) -> bool {
        !matches!(record, Record::Conversation(_))
    }

    async fn apply(&self, effect: &Effect) -> Result<(), CrmError> {
        match &effect.record {
            Record::Contact(_) => {
                let id = self.person_value(&effect.record, &effect.fields).await?;
                self.upsert(id, effect.fields.clone()).await.map(drop)
            }
            Record::Activity(a) if a.group_id.is_some() && effect.contact.is_none() => {
                self.skip(
                    effect,
                    "a status of a message sent to a group: no contact to log it on",
                );
                Ok(())
            }
            Record::Activity(a) => self.log_communication(effect, a).await,
            Record::Consent(_) => {
                if effect.fields.is_empty() {
                    self.skip(effect, "the mapping has no [[consent_fields]]");
                    return Ok(());
                }
                let id = self.effect_contact_id(effect).await?;
                self.upsert(id, effect.fields.clone()).await.map(drop)
            }
            Record::Attribution(a) => {
                let id = self.effect_contact_id(effect).await?;
                self.upsert(id, contact_properties(a)).await.map(drop)
            }
            Record::Lead(lead) => self.create_deal(effect, lead).await,
            Record::TemplateStatus(_) => {
                self.skip(
                    effect,
                    "template status belongs to the WhatsApp account, not a contact",
                );
                Ok(())
            }
            Record::Quality(_) => {
                self.skip(
                    effect,
                    "number quality belongs to the WhatsApp account, not a contact",
                );
                Ok(())
            }
            Record::Unknown(_) => {
                self.skip(effect, "no HubSpot object for this webhook field");
                Ok(())
            }
            Record::Erasure(e) => self.erase(e).await,
            Record::Media(m) => self.attach_media(effect, m).await,
            Record::Call(c) => self.log_call(effect, c).await,
            Record::MessageChange(c) => self.apply_change(effect, c).await,
            Record::Account(_) => {
                self.skip(
                    effect,
                    "account updates belong to the WhatsApp account, not a contact",
                );
                Ok(())
            }
            Record::Conversation(c) => self.write_ticket(effect, c).await,
            Record::SlaBreach(_) => {
                // The breach reaches HubSpot on the conversation's ticket (the conversation
                // record that comes with it carries `sla_breached_at`): counted and logged.
                self.skip(
                    effect,
                    "HubSpot shows SLA breaches on the conversation's ticket",
                );
                Ok(())
            }
        }
    }
}
