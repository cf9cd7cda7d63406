//! The send store over the single DynamoDB table: `send#<id>` holds the record; the
//! idempotency key is its own item `sendkey#<key>` (conditional put: of concurrent creates with
//! one key exactly one wins); `sendwamid#<wamid>` maps Meta's message id back to the send.
//! Transitions are conditional updates on the current state.
//!
//! Content (template parameters and components, a text's body) lives apart in
//! `sendcontent#<id>`, whose TTL is the content retention: DynamoDB's TTL deletes whole items,
//! so the send (state, template, recipient) outlives what it said. A send item with content
//! has `has_content`; when its content item is gone (or expired and not yet swept) the request
//! reads back marked `content_purged`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{
    get_s, is_live, n, now_epoch, pk, s, try_update, update_single, EXPIRES_AT, PK, SINGLE_SK, SK,
};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::retention::{merge_send_content, split_send_content};
use wabridge_core::sends::store::{
    pair_wait, Created, SendError, SendRecord, SendState, SendStore,
};

#[derive(Clone, Debug)]
pub struct DynamoSends {
    client: Client,
    table: String,
    content_retention: std::time::Duration,
}

/// The family of a send's content item.
pub const CONTENT_FAMILY: &str = "sendcontent";

type Item = HashMap<String, AttributeValue>;

fn get_n(item: &Item, k: &str) -> i64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The send item, and its content item when the request carries content (kept until
/// `content_expires_at`, epoch seconds).
fn to_items(r: &SendRecord, content_expires_at: i64) -> (Item, Option<Item>) {
    let mut request = r.request.clone();
    let content = split_send_content(&mut request).map(|content| {
        let mut item: Item = HashMap::new();
        item.insert(PK.into(), s(pk(CONTENT_FAMILY, &r.id)));
        item.insert(SK.into(), s(SINGLE_SK));
        item.insert(
            "content".into(),
            s(serde_json::Value::Object(content).to_string()),
        );
        item.insert(EXPIRES_AT.into(), n(content_expires_at));
        item
    });
    let mut item = to_item(r, &request);
    if content.is_some() {
        item.insert("has_content".into(), AttributeValue::Bool(true));
    }
    (item, content)
}

fn to_item(r: &SendRecord, request: &serde_json::Value) -> Item {
    let mut item: Item = HashMap::new();
    item.insert(PK.into(), s(pk("send", &r.id)));
    item.insert(SK.into(), s(SINGLE_SK));
    item.insert("id".into(), s(&r.id));
    if let Some(k) = &r.idempotency_key {
        item.insert("idempotency_key".into(), s(k));
    }
    item.insert("request_hash".into(), s(&r.request_hash));
    item.insert("request".into(), s(request.to_string()));
    item.insert("contact".into(), s(&r.contact));
    item.insert("state".into(), s(r.state.as_str()));
    if let Some(e) = &r.error {
        item.insert("error_code".into(), s(&e.code));
        item.insert("error_message".into(), s(&e.message));
    }
    if let Some(w) = &r.wamid {
        item.insert("wamid".into(), s(w));
    }
    item.insert("lease_until".into(), n(0));
    item.insert("created_at".into(), n(r.created_at));
    item.insert("updated_at".into(), n(r.updated_at));
    item
}

fn from_item(item: &Item) -> Result<SendRecord, StoreError> {
    let id = get_s(item, "id").ok_or_else(|| StoreError::corrupt("send item without id"))?;
    let request = get_s(item, "request")
        .and_then(|r| serde_json::from_str(&r).ok())
        .ok_or_else(|| StoreError::corrupt(format!("send {id}: request not decodable")))?;
    let state = get_s(item, "state")
        .and_then(|s| SendState::parse(&s))
        .ok_or_else(|| StoreError::corrupt(format!("send {id}: state not decodable")))?;
    Ok(SendRecord {
        idempotency_key: get_s(item, "idempotency_key"),
        request_hash: get_s(item, "request_hash").unwrap_or_default(),
        request,
        contact: get_s(item, "contact").unwrap_or_default(),
        state,
        error: get_s(item, "error_code").map(|code| SendError {
            code,
            message: get_s(item, "error_message").unwrap_or_default(),
        }),
        wamid: get_s(item, "wamid"),
        created_at: get_n(item, "created_at"),
        updated_at: get_n(item, "updated_at"),
        id,
    })
}

impl DynamoSends {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoSends {
        DynamoSends {
            client,
            table: table.into(),
            content_retention: std::time::Duration::from_secs(
                wabridge_core::retention::DEFAULT_CONTENT_RETENTION_DAYS * 86_400,
            ),
        }
    }

    /// How long a send's content is kept ([`wabridge_core::retention`]).
    pub fn with_content_retention(mut self, retention: std::time::Duration) -> Self {
        self.content_retention = retention;
        self
    }

    /// Writes a new send: its content item first, so a send item never points at content that
    /// was not written. `false` when the send item exists.
    async fn put_send(&self, r: &SendRecord) -> Result<bool, StoreError> {
        let expires_at = r.created_at / 1000 + self.content_retention.as_secs() as i64;
        let (item, content) = to_items(r, expires_at);
        if let Some(content) = content {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(content))
                .send()
                .await
                .map_err(|e| store_error("PutItem", e))?;
        }
        self.put_new(item).await
    }

    /// The send of `item`, with its content put back (or marked purged).
    async fn load(&self, item: &Item) -> Result<SendRecord, StoreError> {
        let mut record = from_item(item)?;
        if matches!(item.get("has_content"), Some(AttributeValue::Bool(true))) {
            let content = match self.get_item(pk(CONTENT_FAMILY, &record.id)).await? {
                Some(c) if is_live(c.get(EXPIRES_AT), now_epoch())? => get_s(&c, "content")
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .ok_or_else(|| {
                        StoreError::corrupt(format!("send {}: content not decodable", record.id))
                    })
                    .map(Some)?,
                _ => None,
            };
            merge_send_content(&mut record.request, content);
        }
        Ok(record)
    }

    async fn get_item(&self, key: String) -> Result<Option<Item>, StoreError> {
        super::get_single(&self.client, &self.table, key).await
    }

    /// The item (`key`, `sk`), read consistently.
    async fn get_item_at(&self, key: String, sk: String) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(key))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| store_error("GetItem", e))
    }

    async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        super::put_new(&self.client, &self.table, item).await
    }
}

#[async_trait]
impl SendStore for DynamoSends {
    async fn create(&self, record: &SendRecord) -> Result<Created, StoreError> {
        if let Some(key) = &record.idempotency_key {
            let mut claim: Item = HashMap::new();
            claim.insert(PK.into(), s(pk("sendkey", key)));
            claim.insert(SK.into(), s(SINGLE_SK));
            claim.insert("send_id".into(), s(&record.id));
            if !self.put_new(claim).await? {
                let existing = self
                    .get_item(pk("sendkey", key))
                    .await?
                    .and_then(|i| get_s(&i, "send_id"))
                    .ok_or_else(|| {
                        StoreError::Unavailable("idempotency key item vanished".into())
                    })?;
                if let Some(item) = self.get_item(pk("send", &existing)).await? {
                    return Ok(Created::Existing(self.load(&item).await?));
                }
                // The first caller stopped between its two writes: finish its create now.
                let mut r = record.clone();
                r.id = existing;
                self.put_send(&r).await?;
                return Ok(Created::New(r));
            }
        }
        if !self.put_send(record).await? {
            return Err(StoreError::Conflict(format!("send {} exists", record.id)));
        }
        Ok(Created::New(record.clone()))
    }

    async fn get(&self, id: &str) -> Result<Option<SendRecord>, StoreError> {
        match self.get_item(pk("send", id)).await? {
            Some(item) => self.load(&item).await.map(Some),
            None => Ok(None),
        }
    }

    async fn transition(
        &self,
        id: &str,
        to: SendState,
        error: Option<&SendError>,
        wamid: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<(SendRecord, bool)>, StoreError> {
        if let Some(w) = wamid {
            let mut m: Item = HashMap::new();
            m.insert(PK.into(), s(pk("sendwamid", w)));
            m.insert(SK.into(), s(SINGLE_SK));
            m.insert("send_id".into(), s(id));
            self.put_new(m).await?;
        }
        let from = to.predecessors();
        let mut update = "SET #state = :to, updated_at = :at, lease_until = :zero".to_string();
        let mut req = update_single(&self.client, &self.table, "send", id)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":at", n(at_ms))
            .expression_attribute_values(":zero", n(0));
        if let Some(e) = error {
            update.push_str(", error_code = :ec, error_message = :em");
            req = req
                .expression_attribute_values(":ec", s(&e.code))
                .expression_attribute_values(":em", s(&e.message));
        }
        if let Some(w) = wamid {
            update.push_str(", wamid = if_not_exists(wamid, :w)");
            req = req.expression_attribute_values(":w", s(w));
        }
        let mut names = Vec::new();
        for (i, st) in from.iter().enumerate() {
            names.push(format!(":p{i}"));
            req = req.expression_attribute_values(format!(":p{i}"), s(st.as_str()));
        }
        let condition = if names.is_empty() {
            "attribute_not_exists(pk)".to_string()
        } else {
            format!("attribute_exists(pk) AND #state IN ({})", names.join(", "))
        };
        let moved = try_update(
            req.update_expression(update)
                .condition_expression(condition),
        )
        .await?;
        if !moved {
            if let Some(w) = wamid {
                // Keep the wamid even when the state did not move (a status beat the sender).
                let _ = try_update(
                    update_single(&self.client, &self.table, "send", id)
                        .update_expression("SET wamid = :w")
                        .condition_expression(
                            "attribute_exists(pk) AND attribute_not_exists(wamid)",
                        )
                        .expression_attribute_values(":w", s(w)),
                )
                .await;
            }
        }
        Ok(self.get(id).await?.map(|r| (r, moved)))
    }

    async fn claim(&self, id: &str, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        try_update(
            update_single(&self.client, &self.table, "send", id)
                .update_expression("SET lease_until = :until")
                .condition_expression("#state = :queued AND lease_until <= :now")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":queued", s("queued"))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":until", n(until_ms)),
        )
        .await
    }

    async fn release(&self, id: &str) -> Result<(), StoreError> {
        // No such send: nothing to release.
        try_update(
            update_single(&self.client, &self.table, "send", id)
                .update_expression("SET lease_until = :zero")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":zero", n(0)),
        )
        .await
        .map(|_| ())
    }

    async fn reserve_pair(
        &self,
        recipient: &str,
        number: Option<&str>,
        id: &str,
        now_ms: i64,
        interval: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        let until_ms = now_ms.saturating_add(interval.as_millis() as i64);
        // `pair#<recipient>`, one item per business number (`n#<id>`; the implicit single
        // number's under the single sort key): an erasure deletes the whole partition.
        let sk = number.map_or_else(|| SINGLE_SK.to_string(), |n| format!("n#{n}"));
        let taken = try_update(
            self.client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(pk("pair", recipient)))
                .key(SK, s(sk.clone()))
                .update_expression("SET send_id = :id, until_ms = :until, #exp = :exp")
                .condition_expression(
                    "attribute_not_exists(pk) OR until_ms <= :now OR send_id = :id",
                )
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":id", s(id))
                .expression_attribute_values(":until", n(until_ms))
                .expression_attribute_values(":now", n(now_ms))
                // The item is only worth its window; the TTL sweeps it up a day later.
                .expression_attribute_values(":exp", n(until_ms / 1000 + 86_400)),
        )
        .await?;
        if taken {
            return Ok(None);
        }
        let held_until = self
            .get_item_at(pk("pair", recipient), sk)
            .await?
            .map(|item| get_n(&item, "until_ms"))
            .unwrap_or(now_ms);
        Ok(Some(pair_wait(held_until, now_ms)))
    }

    async fn find_by_wamid(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get_item(pk("sendwamid", wamid))
            .await?
            .and_then(|i| get_s(&i, "send_id")))
    }
}
