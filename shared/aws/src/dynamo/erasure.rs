//! Erasure over DynamoDB ([`wabridge_core::erasure`]): tombstones `tombstone#<hash>` (a salted
//! hash of an identity key, never the key), erasure markers `erased#<contact id>`, and the
//! salt `erasure#salt`, created by the first erasure and never changed. With the media bucket
//! ([`DynamoErasure::with_media`]) the person's stored files go too, unless another person
//! sent the same file (`super::media_index`).

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{get_s, get_single, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use wabridge_core::erasure::{
    new_salt, tombstone, ErasureItem, ErasureStore, PastErasure, Person, Target,
};
use wabridge_core::error::StoreError;
use wabridge_core::identity::IdentityKey;
use wabridge_core::media::store::MediaStore;

pub const SALT_FAMILY: &str = "erasure";
pub const SALT_ID: &str = "salt";
pub const TOMBSTONE_FAMILY: &str = "tombstone";
pub const MARKER_FAMILY: &str = "erased";

/// The tombstones' salt, if an erasure ever wrote one.
pub(crate) async fn salt(client: &Client, table: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(get_single(client, table, pk(SALT_FAMILY, SALT_ID))
        .await?
        .and_then(|i| {
            i.get("salt")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
        }))
}

fn past(item: &std::collections::HashMap<String, AttributeValue>) -> Option<PastErasure> {
    Some(PastErasure {
        erasure_id: get_s(item, "erasure_id")?,
        contact_id: get_s(item, "contact_id"),
        erased_at: item.get("erased_at")?.as_n().ok()?.parse().ok()?,
    })
}

/// The erasure whose tombstone `key` (an identity key's storage form) has, if any.
pub(crate) async fn tombstone_of(
    client: &Client,
    table: &str,
    key: &str,
) -> Result<Option<PastErasure>, StoreError> {
    let Some(salt) = salt(client, table).await? else {
        return Ok(None);
    };
    Ok(
        get_single(client, table, pk(TOMBSTONE_FAMILY, &tombstone(&salt, key)))
            .await?
            .as_ref()
            .and_then(past),
    )
}
/// The erasure of contact `contact_id`, if it was erased.
pub(crate) async fn marker_of(
    client: &Client,
    table: &str,
    contact_id: &str,
) -> Result<Option<PastErasure>, StoreError> {
    Ok(get_single(client, table, pk(MARKER_FAMILY, contact_id))
        .await?
        .as_ref()
        .and_then(past))
}

/// Every item family of the table and how an erasure reaches it.
pub const FAMILIES: &[(&str, &str)] = &[
    (
        "identity",
        "deleted: the person's keys and every key linked to their contact",
    ),
    ("consent", "deleted: `consent#<key>`, every entry"),
    (
        "consentkey",
        "deleted when its `contact` is one of their keys",
    ),
    ("send", "deleted when its `contact` is one of their keys"),
    ("sendcontent", "deleted with its send"),
    ("sendkey", "deleted with its send"),
    ("sendwamid", "deleted with its send"),
    ("pair", "deleted: `pair#<key>`"),
    ("inbound", "deleted: `inbound#<key>` (the customer's and each number's items)"),
    (
        super::media_index::FAMILY,
        "deleted when its sort key is one of their keys; the file (media/<sha256>) is deleted \
         from the media bucket first, unless another person's live item names it",
    ),
    ("attrcontact", "deleted: `attrcontact#<contact id>`"),
    ("attrlog", "deleted when its body names the contact"),
    ("attrconv", "deleted when its body names the contact"),
    (
        super::conversations::FAMILY,
        "deleted when its `contact_id` is the contact",
    ),
    (
        super::conversations::HEAD_FAMILY,
        "deleted when its `contact_id` is the contact",
    ),
    (
        super::conversations::LAST_FAMILY,
        "deleted when its `contact_id` is the contact",
    ),
    (
        super::conversations::MARK_FAMILY,
        "deleted when its `contact_id` is the contact (message ids only; expires with the ledger)",
    ),
    (
        super::deliveries::FAMILY,
        "a destination's logged delivery deleted when its event names the person, with its key \
         item (kept for `wabridge replay`)",
    ),
    (
        "dedupe",
        "user-preference keys carrying their number deleted",
    ),
    (
        "ledger",
        "effects of user-preference events carrying their number deleted",
    ),
    (TOMBSTONE_FAMILY, "written: salted hashes, no identity"),
    (
        MARKER_FAMILY,
        "written: the contact id, which no longer links to anyone",
    ),
    (SALT_FAMILY, "nothing personal: the tombstones' salt"),
    ("audit", "nothing personal: key ids, actions, record ids"),
    (
        "msgstatus",
        "nothing personal: Meta's message ids and a status rank",
    ),
    ("template", "nothing personal: the template registry"),
    (
        "templatesync",
        "nothing personal: when each WABA's template registry was last synced",
    ),
    (
        "templatelangs",
        "nothing personal: the languages of each template name",
    ),
    (
        "tplapply",
        "nothing of a customer: who applied which template file (expires with the audit trail)",
    ),
    ("attrlink", "nothing personal: tracked campaign links"),
    (
        super::media_uploads::UPLOAD_FAMILY,
        "not linked to a person: uploaded files' type, size and name by SHA-256 (a file name may name someone: expires with send content)",
    ),
    (
        super::media_uploads::META_ID_FAMILY,
        "nothing personal: Meta's media ids by file SHA-256 and number (expire after 7 days)",
    ),
    (
        super::numbers::FAMILY,
        "nothing of a customer: the business numbers registry (ids, labels, token key names)",
    ),
    (
        super::oauth_tokens::FAMILY,
        "nothing personal: a CRM connection's OAuth tokens (credentials, replaced on refresh)",
    ),
];

type Item = std::collections::HashMap<String, AttributeValue>;

/// Parallel segments of an erasure's scan.
const SEGMENTS: i32 = 4;

/// Erasure over the single table and the events queue. The table has no index by person, so
/// an erasure scans it (in four parallel segments): its cost grows with the table,
/// which is fine for an operation done a few times a month. Queued events cannot be taken off
/// SQS: crm-sync skips those from before the erasure (`IdentityStore::erased_at`), and SQS's
/// retention ends them.
pub struct DynamoErasure {
    client: Client,
    table: String,
    events: Arc<dyn wabridge_core::queue::Queue>,
    /// Where the person's media files are deleted; without it an erasure that finds files to
    /// delete fails rather than leave them behind.
    media: Option<Arc<dyn MediaStore>>,
}

fn family(item: &Item) -> (String, String) {
    let pk = get_s(item, PK).unwrap_or_default();
    match pk.split_once('#') {
        Some((f, id)) => (f.to_string(), id.to_string()),
        None => (pk, String::new()),
    }
}

fn key_of(item: &Item) -> Item {
    [PK, SK]
        .iter()
        .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

impl DynamoErasure {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        events: Arc<dyn wabridge_core::queue::Queue>,
    ) -> DynamoErasure {
        DynamoErasure {
            client,
            table: table.into(),
            events,
            media: None,
        }
    }

    /// Also deletes the person's files from the media bucket (`MEDIA_BUCKET`).
    pub fn with_media(mut self, store: Arc<dyn MediaStore>) -> DynamoErasure {
        self.media = Some(store);
        self
    }

    /// Deletes the files of `found`'s media index items that no other person's live item
    /// names; returns how many. Files go before the items: an erasure that fails in between is
    /// retried whole and finds the items again, where the other order would lose track of the
    /// files until the bucket's lifecycle expired them.
    async fn delete_files(&self, found: &[Item], keys: &[String]) -> Result<u64, StoreError> {
        let files: BTreeSet<String> = found
            .iter()
            .map(family)
            .filter(|(f, _)| f == super::media_index::FAMILY)
            .map(|(_, object_key)| object_key)
            .collect();
        let now = super::now_epoch();
        let mut doomed = Vec::new();
        for file in files {
            let named =
                super::media_index::named_by_others(&self.client, &self.table, &file, keys, now)
                    .await?;
            if !named {
                doomed.push(file);
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let Some(store) = &self.media else {
            return Err(StoreError::Invalid(format!(
                "the person has {} stored media file(s) and this erasure has no media bucket \
                 ({}): nothing was deleted",
                doomed.len(),
                wabridge_core::config::MEDIA_BUCKET
            )));
        };
        for file in &doomed {
            store.delete(file).await?;
        }
        Ok(doomed.len() as u64)
    }

    /// Every item of the table for which `keep` says yes.
    async fn scan(&self, keep: impl Fn(&Item) -> bool + Sync) -> Result<Vec<Item>, StoreError> {
        let keep = &keep;
        let segments = (0..SEGMENTS).map(|segment| async move {
            let mut found = Vec::new();
            let mut start = None;
            loop {
                let out = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .segment(segment)
                    .total_segments(SEGMENTS)
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| store_error("Scan", e))?;
                found.extend(
                    out.items
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|i| keep(i)),
                );
                start = out.last_evaluated_key;
                if start.is_none() {
                    return Ok::<_, StoreError>(found);
                }
            }
        });
        let mut all = Vec::new();
        for part in futures::future::join_all(segments).await {
            all.extend(part?);
        }
        Ok(all)
    }

    async fn identity_contact(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(get_single(&self.client, &self.table, pk("identity", key))
            .await?
            .and_then(|i| get_s(&i, "contact_id")))
    }

    async fn delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for key in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(|e| store_error("DeleteItem", e))?;
        }
        Ok(())
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(drop)
            .map_err(|e| store_error("PutItem", e))
    }

    /// The salt, written by the first erasure (a conditional put: concurrent first erasures
    /// agree on one).
    async fn salt_or_new(&self) -> Result<Vec<u8>, StoreError> {
        if let Some(salt) = salt(&self.client, &self.table).await? {
            return Ok(salt);
        }
        let item: Item = [
            (PK.to_string(), s(pk(SALT_FAMILY, SALT_ID))),
            (SK.to_string(), s(SINGLE_SK)),
            ("salt".to_string(), AttributeValue::B(new_salt().into())),
        ]
        .into();
        super::put_new(&self.client, &self.table, item).await?;
        salt(&self.client, &self.table)
            .await?
            .ok_or_else(|| StoreError::Unavailable("the erasure salt vanished".into()))
    }
}

/// Whether `item` is about `person` (see [`FAMILIES`]); a send's companions are added by the
/// caller.
fn about(item: &Item, person: &Person, keys: &[String]) -> bool {
    let (family, id) = family(item);
    let contact = person.contact_id.as_deref();
    let attr = |name: &str| get_s(item, name);
    let keyed = |v: Option<String>| v.is_some_and(|v| keys.contains(&v));
    match family.as_str() {
        "identity" => {
            keys.contains(&id) || attr("contact_id").as_deref() == contact && contact.is_some()
        }
        "consent" | "pair" | "inbound" => keys.contains(&id),
        "consentkey" | "send" => keyed(attr("contact")),
        "attrcontact" => Some(id.as_str()) == contact,
        "attrlog" | "attrconv" => {
            contact.is_some_and(|c| attr("body").is_some_and(|b| b.contains(c)))
        }
        "conv" | "convhead" | "convlast" | "convmsg" => {
            contact.is_some() && attr("contact_id").as_deref() == contact
        }
        "dedupe" | "ledger" => person.named_in_key(&id),
        // Log items carry the event; key items (`<destination>#<key>`) only its key.
        super::deliveries::FAMILY => match attr("body") {
            Some(body) => person.named_in(&body),
            None => id
                .split_once('#')
                .is_some_and(|(_, key)| person.named_in_key(key)),
        },
        super::media_index::FAMILY => keyed(attr(SK)),
        _ => false,
    }
}

#[async_trait::async_trait]
impl ErasureStore for DynamoErasure {
    async fn find(&self, target: &Target) -> Result<Option<Person>, StoreError> {
        let (contact, named) = match target {
            Target::Contact(c) => (Some(c.clone()), None),
            Target::Identity { key, .. } => (
                self.identity_contact(&key.as_string()).await?,
                Some(key.as_string()),
            ),
        };
        let probe = Person {
            contact_id: contact.clone(),
            keys: named
                .iter()
                .filter_map(|k| IdentityKey::from_stored(k))
                .collect(),
        };
        let probe_keys: Vec<String> = named.iter().cloned().collect();
        let found = self.scan(|i| about(i, &probe, &probe_keys)).await?;
        if found.is_empty() {
            return Ok(None);
        }
        let mut keys = probe.keys.clone();
        for item in &found {
            let (family, id) = family(item);
            if family == "identity" {
                if let Some(k) = IdentityKey::from_stored(&id) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        Ok(Some(Person {
            contact_id: contact,
            keys,
        }))
    }

    async fn erase(
        &self,
        person: &Person,
        item: &ErasureItem,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        // The CRM's event first: an erasure that fails after it is retried whole; one that
        // failed before it would leave the CRM never told.
        let event = item.event();
        self.events.send_batch(&[event.to_message()]).await?;
        let keys: Vec<String> = person.keys.iter().map(IdentityKey::as_string).collect();
        let found = self.scan(|i| about(i, person, &keys)).await?;
        let files = self.delete_files(&found, &keys).await?;
        let mut doomed = Vec::new();
        let mut removed = BTreeMap::new();
        for item in &found {
            let (family, _) = family(item);
            *removed.entry(family.clone()).or_insert(0u64) += 1;
            doomed.push(key_of(item));
            if family == super::deliveries::FAMILY {
                doomed.extend(super::deliveries::key_item_of(item));
            }
            if family == "send" {
                let id = get_s(item, "id").unwrap_or_default();
                let mut companions = vec![pk(super::sends::CONTENT_FAMILY, &id)];
                companions.extend(get_s(item, "idempotency_key").map(|k| pk("sendkey", &k)));
                companions.extend(get_s(item, "wamid").map(|w| pk("sendwamid", &w)));
                for companion in companions {
                    doomed.push(
                        [
                            (PK.to_string(), s(companion)),
                            (SK.to_string(), s(SINGLE_SK)),
                        ]
                        .into(),
                    );
                }
            }
        }
        self.delete(doomed).await?;
        if files > 0 {
            removed.insert("media_files".to_string(), files);
        }
        let salt = self.salt_or_new().await?;
        for key in &keys {
            self.put(
                [
                    (
                        PK.to_string(),
                        s(pk(TOMBSTONE_FAMILY, &tombstone(&salt, key))),
                    ),
                    (SK.to_string(), s(SINGLE_SK)),
                    ("erasure_id".to_string(), s(&item.erasure_id)),
                    ("erased_at".to_string(), super::n(item.erased_at)),
                ]
                .into(),
            )
            .await?;
        }
        if let Some(c) = &person.contact_id {
            self.put(
                [
                    (PK.to_string(), s(pk(MARKER_FAMILY, c))),
                    (SK.to_string(), s(SINGLE_SK)),
                    ("erasure_id".to_string(), s(&item.erasure_id)),
                    ("contact_id".to_string(), s(c)),
                    ("erased_at".to_string(), super::n(item.erased_at)),
                ]
                .into(),
            )
            .await?;
        }
        Ok(removed)
    }

    async fn erased(&self, target: &Target) -> Result<Option<PastErasure>, StoreError> {
        match target {
            Target::Contact(c) => marker_of(&self.client, &self.table, c).await,
            Target::Identity { key, .. } => {
                tombstone_of(&self.client, &self.table, &key.as_string()).await
            }
        }
    }
}
