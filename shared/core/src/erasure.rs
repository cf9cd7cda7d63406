//! Erasure of a person (LGPD, GDPR, LFPDPPP, Ley 25.326, Ley 1581): `wabridge erase --contact`
//! and `DELETE /contacts/{id}` (admin scope).
//!
//! The person is found by a phone, a BSUID or a contact id; the engine's [`ErasureStore`] then
//! deletes everything it holds about them (identities, consents, sends, windows, attribution,
//! dedupe entries and ledger effects that carry their number, queued and dead-lettered events)
//! and keeps only:
//! - an **opt-out tombstone** per identity: a salted hash (HMAC-SHA256 under a random salt of
//!   the store) with the time of the erasure. The consent guard reads it as a marketing opt-out
//!   at that time, so an erased person is never sent marketing again by mistake (a stale opt-in
//!   replayed from a CRM is older, so it loses); a new opt-in recorded after the erasure wins,
//!   as after any opt-out;
//! - an **erasure marker** by contact id (a random UUID that no longer links to anyone), so a
//!   repeated erasure answers "already erased" instead of 404.
//!
//! Each erasure reaches the CRM as an `erasure` event on the events queue (the last message
//! about the person: it names their contact id and identities so the CRM can find them), which
//! crm-sync turns into an [`crate::records::Record::Erasure`]: HubSpot deletes the contact with
//! its GDPR delete, the local CRM deletes its records, the webhook CRM gets the record and
//! decides.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::audit::Audit;
use crate::consent::ContactRef;
use crate::error::StoreError;
use crate::event::{Event, EventKind};
use crate::identity::{Bsuid, IdentityKey};

/// Who to erase, as the caller named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A contact id (a UUID, as `records` and the CRM carry it).
    Contact(String),
    /// A phone number or a BSUID; `e164` is the phone as typed, in E.164 (for the CRM).
    Identity {
        key: IdentityKey,
        e164: Option<String>,
    },
}

impl Target {
    /// A phone in any spelling, a BSUID (`CC.…`) or a contact id. The error never repeats the
    /// input (it may be a phone number).
    pub fn parse(input: &str) -> Result<Target, ErasureError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ErasureError::BadTarget(
                "give a phone number, a BSUID or a contact id".into(),
            ));
        }
        if input.len() > 256 {
            return Err(ErasureError::BadTarget(
                "the contact is over 256 bytes".into(),
            ));
        }
        if let Ok(id) = uuid::Uuid::parse_str(input) {
            return Ok(Target::Contact(id.hyphenated().to_string()));
        }
        if let Ok(b) = Bsuid::parse(input) {
            return Ok(Target::Identity {
                key: b.identity_key(),
                e164: None,
            });
        }
        match ContactRef::parse_phone(input) {
            Some(phone) => Ok(Target::Identity {
                key: phone.identity_key(),
                e164: Some(phone.e164.to_string()),
            }),
            None => Err(ErasureError::BadTarget(
                "the contact is not a phone number (+ and country code), a BSUID (CC.…) nor a \
                 contact id (a UUID)"
                    .into(),
            )),
        }
    }
}

/// A person as a store knows them: their contact (when the identity store links one) and every
/// identity key linked to it or named by the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub contact_id: Option<String>,
    pub keys: Vec<IdentityKey>,
}

impl Person {
    /// Whether a stored event (`body`, as queued or dead-lettered) is about this person: it
    /// names their contact id, a BSUID or number of theirs, or a number that is theirs in
    /// another spelling (Mexico's mobile `1`, Argentina's `9`, Brazil's ninth digit: the event's
    /// identities are worked out as crm-sync would).
    pub fn named_in(&self, body: &str) -> bool {
        if self.contact_id.as_deref().is_some_and(|c| body.contains(c)) {
            return true;
        }
        let spelled = self.keys.iter().any(|k| match k {
            IdentityKey::Phone(digits) | IdentityKey::Bsuid(digits) => {
                body.contains(digits.as_str())
            }
        });
        if spelled {
            return true;
        }
        let Ok(event) = serde_json::from_str::<Event>(body) else {
            // Not an event: any run of digits that is one of their numbers.
            return body
                .split(|c: char| !c.is_ascii_digit())
                .filter(|run| (8..=15).contains(&run.len()))
                .filter_map(|run| crate::identity::Phone::from_wa_id(run).ok())
                .any(|p| self.keys.contains(&p.identity_key()));
        };
        crate::sync::plan::plan(&event, &Default::default())
            .map(|plan| plan.identity.keys())
            .unwrap_or_default()
            .iter()
            .any(|k| self.keys.contains(k))
    }

    /// Whether a dedupe key or effect id (`p:<wa_id>:…` for user preferences) carries one of
    /// this person's numbers or BSUIDs.
    pub fn named_in_key(&self, key: &str) -> bool {
        let Some(id) = key
            .strip_prefix("p:")
            .and_then(|rest| rest.split(':').next())
        else {
            return false;
        };
        let named = match Bsuid::parse(id) {
            Ok(b) => Some(b.identity_key()),
            Err(_) => crate::identity::Phone::from_wa_id(id)
                .ok()
                .map(|p| p.identity_key()),
        };
        named.is_some_and(|k| self.keys.contains(&k))
    }
}

/// The `erasure` event's item: what the CRM needs to find the person, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureItem {
    /// The record version: the item is the CRM's `erasure` record as it is.
    #[serde(default)]
    pub v: crate::records::Version,
    pub erasure_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// E.164 spellings of their numbers (the CRM's contacts are keyed by them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bsuids: Vec<String>,
    /// Unix ms.
    pub erased_at: i64,
}

/// The events-queue key of an erasure event.
pub fn event_key(erasure_id: &str) -> String {
    format!("x:{erasure_id}")
}

impl ErasureItem {
    pub fn new(erasure_id: &str, person: &Person, e164: Option<&str>, at: i64) -> ErasureItem {
        let mut phones: Vec<String> = e164.map(str::to_string).into_iter().collect();
        let mut bsuids = Vec::new();
        for key in &person.keys {
            match key {
                // The key drops the quirk digits; the CRM holds the canonical E.164 number
                // (with Argentina's `9` and Brazil's ninth digit), which the key gives back.
                IdentityKey::Phone(digits) => phones.push(
                    crate::identity::Phone::from_wa_id(digits)
                        .map(|p| p.e164.to_string())
                        .unwrap_or_else(|_| format!("+{digits}")),
                ),
                IdentityKey::Bsuid(id) => bsuids.push(id.clone()),
            }
        }
        phones.sort();
        phones.dedup();
        ErasureItem {
            v: Default::default(),
            erasure_id: erasure_id.into(),
            contact_id: person.contact_id.clone(),
            phones,
            bsuids,
            erased_at: at,
        }
    }

    /// The event crm-sync turns into the CRM's erasure record.
    pub fn event(&self) -> Event {
        Event {
            received_at: self.erased_at,
            ..Event::own(
                event_key(&self.erasure_id),
                EventKind::Erasure,
                "erasure",
                self,
            )
        }
    }
}

/// The opt-out tombstone of `key` under `salt`: hex HMAC-SHA256 of its storage form.
pub fn tombstone(salt: &[u8], key: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes any key length");
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh salt for a store's tombstones.
pub fn new_salt() -> Vec<u8> {
    (0..32).map(|_| rand::random::<u8>()).collect()
}

/// An erasure done (or found done before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub erasure_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    pub erased_at: i64,
    /// True when this call found the person erased before and did nothing.
    pub already_erased: bool,
    /// Rows / items removed, by store (empty on a repeat).
    pub removed: BTreeMap<String, u64>,
}

/// An earlier erasure, found by its marker or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastErasure {
    pub erasure_id: String,
    pub contact_id: Option<String>,
    pub erased_at: i64,
}

/// What an engine does for an erasure.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// The person `target` names, or `None` when the store knows nothing about them.
    async fn find(&self, target: &Target) -> Result<Option<Person>, StoreError>;
    /// Erases `person` and writes their tombstones and marker; `event` (the CRM's erasure
    /// event) goes on the events queue with it (atomically where the engine can). Returns what
    /// was removed, by store. Idempotent.
    async fn erase(
        &self,
        person: &Person,
        item: &ErasureItem,
    ) -> Result<BTreeMap<String, u64>, StoreError>;
    /// The erasure `target` names, if it was erased before.
    async fn erased(&self, target: &Target) -> Result<Option<PastErasure>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("{0}")]
    BadTarget(String),
    #[error("no contact with this phone number, BSUID or id")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Erases people, one way for the CLI and the API.
#[derive(Clone)]
pub struct ErasureService {
    store: Arc<dyn ErasureStore>,
    audit: Audit,
}

impl ErasureService {
    pub fn new(store: Arc<dyn ErasureStore>, audit: Audit) -> ErasureService {
        ErasureService { store, audit }
    }

    /// Erases who `input` names (a phone, a BSUID or a contact id) on behalf of `actor` (an
    /// audit actor: `key:<id>` or `cli`).
    pub async fn erase(&self, input: &str, actor: &str) -> Result<Erased, ErasureError> {
        let target = Target::parse(input)?;
        let Some(person) = self.store.find(&target).await? else {
            return match self.store.erased(&target).await? {
                Some(past) => Ok(Erased {
                    erasure_id: past.erasure_id,
                    contact_id: past.contact_id,
                    erased_at: past.erased_at,
                    already_erased: true,
                    removed: BTreeMap::new(),
                }),
                None => Err(ErasureError::NotFound),
            };
        };
        let e164 = match &target {
            Target::Identity { e164, .. } => e164.as_deref(),
            Target::Contact(_) => None,
        };
        let erasure_id = format!("era_{}", uuid::Uuid::now_v7().simple());
        let item = ErasureItem::new(&erasure_id, &person, e164, crate::clock::now_ms());
        let removed = self.store.erase(&person, &item).await?;
        // The subject is the erasure id: the contact id links to nothing any more, but the
        // trail needs no more than which erasure it was.
        self.audit
            .note(actor, crate::audit::action::ERASURE, Some(&erasure_id))
            .await;
        Ok(Erased {
            erasure_id,
            contact_id: person.contact_id,
            erased_at: item.erased_at,
            already_erased: false,
            removed,
        })
    }
}

#[cfg(test)]
mod tests;
