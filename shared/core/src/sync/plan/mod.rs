//! From a queue [`Event`] to what crm-sync must do: the identity operation and the canonical
//! records, each under an effect name. Pure: no store, no CRM.
//!
//! The event's item is decoded once, by the webhook model ([`parse_item`]); each kind has its
//! own planner (`message`, `status`, `account` for preferences, templates, quality and the rest,
//! `send_result` for the sender's reports). The typed item stays in the [`Plan`] for the hooks.

mod account;
mod call;
mod change;
mod media;
mod message;
mod send_result;
mod status;

use serde_json::Value;

use crate::event::Event;
use crate::identity::{Bsuid, IdentityError, IdentityKey, Phone};
use crate::mapping::ConsentKeywords;
use crate::records::{ConsentRecord, ConsentSource, ConsentStatus, ContactRecord, Record};
use crate::webhook::model::{parse_contact, parse_item, Contact, Item, StatusKind};

/// How the event touches the identity store.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityOp {
    None,
    /// Find or create the contact of these keys (priority order).
    Resolve(Vec<IdentityKey>),
    /// A number / user id change: move `from` to `to`, then resolve `also` onto the same contact.
    Move {
        from: IdentityKey,
        to: IdentityKey,
        also: Vec<IdentityKey>,
    },
}

impl IdentityOp {
    /// Every key the event names for the person once the operation is applied (after a move,
    /// the new one first).
    pub fn keys(&self) -> Vec<IdentityKey> {
        match self {
            IdentityOp::None => vec![],
            IdentityOp::Resolve(keys) => keys.clone(),
            IdentityOp::Move { to, also, .. } => std::iter::once(to.clone())
                .chain(also.iter().cloned())
                .collect(),
        }
    }
}

/// What one event asks for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub identity: IdentityOp,
    /// The contact as this event describes it (ids filled in after identity resolution).
    pub contact: Option<ContactRecord>,
    /// Whether the contact record is written as an effect of this event (messages: always;
    /// statuses and preferences: only when the contact is new).
    pub upsert_contact: bool,
    /// (effect name, record) in the order they are applied.
    pub records: Vec<(&'static str, Record)>,
    /// Outbound status: (message id, kind) to check against the forward-only rule.
    pub status: Option<(String, StatusKind)>,
    /// The event's item as the webhook model typed it (what the hooks read).
    pub item: Item,
}

impl Plan {
    /// A plan of records only (no person named).
    fn records(item: Item, records: Vec<(&'static str, Record)>) -> Plan {
        Plan {
            identity: IdentityOp::None,
            contact: None,
            upsert_contact: false,
            records,
            status: None,
            item,
        }
    }
}

/// Why an event can never be processed (it dead-letters with this reason).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the {kind} item does not match Meta's model: {source}")]
    Malformed {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the sender (value.contacts[]) does not match Meta's model: {0}")]
    MalformedContact(#[source] serde_json::Error),
    /// What is missing, as a sentence (`status without id`).
    #[error("{0}")]
    Missing(&'static str),
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
}

/// Builds the plan of an event.
pub fn plan(event: &Event, keywords: &ConsentKeywords) -> Result<Plan, PlanError> {
    let item = parse_item(event).map_err(|source| PlanError::Malformed {
        kind: event.kind.as_str(),
        source,
    })?;
    let contact = parse_contact(event)
        .transpose()
        .map_err(PlanError::MalformedContact)?
        .unwrap_or_default();
    match item {
        Item::Message(m) | Item::Echo(m) => message::plan(event, *m, &contact, keywords),
        Item::Call(c) => call::plan(event, *c, &contact),
        Item::Status(s) => status::plan(event, *s),
        Item::UserPreference(p) => account::preference(event, p, &contact),
        Item::TemplateStatus(t) => Ok(account::template_status(event, t)),
        Item::QualityUpdate(q) => Ok(account::quality(event, q)),
        Item::SendResult(r) => send_result::plan(event, *r),
        Item::Consent(c) => send_result::consent(event, *c),
        Item::Erasure(e) => Ok(Plan::records(
            Item::Erasure(e.clone()),
            vec![("erasure", Record::Erasure(e))],
        )),
        Item::MediaResult(r) => media::plan(event, *r),
        Item::Conversation(c) => Ok(Plan::records(
            Item::Conversation(c.clone()),
            vec![("conversation", Record::Conversation(*c))],
        )),
        // Applied by crm-sync (`sync::conversation`): its records come from the store.
        Item::Sweep(s) => Ok(Plan::records(Item::Sweep(s), Vec::new())),
        Item::AccountUpdate(_) => Ok(account::account(event, item)),
        Item::Unknown => Ok(account::unknown(event, item)),
    }
}

/// Event time in ms from Meta's seconds.
fn ms(seconds: Option<i64>) -> Option<i64> {
    seconds.map(|t| t.saturating_mul(1000))
}

/// Phone and BSUID of a user, from wherever this item carries them.
struct Who {
    phone: Option<Phone>,
    bsuid: Option<Bsuid>,
}

impl Who {
    /// From the item's own fields: `wa_id` (`from`, `recipient_id`) and `user_id`
    /// (`from_user_id`, `recipient_user_id`).
    fn new(wa_id: Option<&str>, user_id: Option<&str>) -> Result<Who, IdentityError> {
        Who::of(wa_id, user_id, &Contact::default())
    }

    /// From the item's fields, then the event's contact (`contacts[]`). A username user's
    /// BSUID may sit in the phone fields too (`from`, `wa_id`): told apart by its form.
    fn of(
        wa_id: Option<&str>,
        user_id: Option<&str>,
        contact: &Contact,
    ) -> Result<Who, IdentityError> {
        let ids = [nonempty(wa_id), nonempty(contact.wa_id.as_deref())];
        let phone = ids.into_iter().flatten().find(|id| !Bsuid::has_form(id));
        let bsuid = nonempty(user_id)
            .or(nonempty(contact.user_id.as_deref()))
            .or_else(|| ids.into_iter().flatten().find(|id| Bsuid::has_form(id)));
        Ok(Who {
            phone: phone.map(Phone::from_wa_id).transpose()?,
            bsuid: bsuid.map(Bsuid::parse).transpose()?,
        })
    }

    fn keys(&self) -> Vec<IdentityKey> {
        let mut keys = Vec::new();
        if let Some(p) = &self.phone {
            keys.push(p.identity_key());
        }
        if let Some(b) = &self.bsuid {
            keys.push(b.identity_key());
        }
        keys
    }

    fn contact(&self, name: Option<String>, username: Option<String>, at: i64) -> ContactRecord {
        ContactRecord {
            phone_e164: self.phone.as_ref().map(|p| p.e164.to_string()),
            phone_verified: self.phone.as_ref().map(|p| p.verified),
            wa_id: self.phone.as_ref().and_then(|p| p.wa_id.clone()),
            bsuid: self.bsuid.as_ref().map(|b| b.to_string()),
            username,
            name,
            updated_at: at,
            ..Default::default()
        }
    }
}

/// `None` for an absent or empty string (Meta sends both for "not set").
fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Meta's 131050 as the CRM's consent record: a marketing opt-out from `event`.
fn meta_opt_out(event: &Event, evidence: Value, at: Option<i64>) -> ConsentRecord {
    ConsentRecord {
        v: Default::default(),
        event_id: event.key.clone(),
        contact_id: String::new(),
        status: ConsentStatus::OptOut,
        category: "marketing_messages".into(),
        source: ConsentSource::MetaError,
        evidence,
        at,
    }
}

/// Fills the contact id into a record built before identity resolution.
pub fn set_contact(record: &mut Record, contact_id: &str) {
    match record {
        Record::Contact(c) => c.id = contact_id.to_string(),
        Record::Activity(a) => a.contact_id = contact_id.to_string(),
        Record::Consent(c) => c.contact_id = contact_id.to_string(),
        Record::Unknown(u) => u.contact_id = Some(contact_id.to_string()),
        Record::Media(m) => m.contact_id = contact_id.to_string(),
        Record::MessageChange(c) => c.contact_id = contact_id.to_string(),
        Record::Call(c) => c.contact_id = contact_id.to_string(),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
