//! The attribution store over DynamoDB (single table). Items (`sk = -`), each with `body` (S,
//! the JSON of the domain type):
//! - `attrlink#<code>`: a tracked link (`expires_at` is the link's own expiry, kept for reads but
//!   not the TTL attribute: an expired code must still be recognised as expired);
//! - `attrcontact#<contact id>`: contact touch state with `version` (N) for optimistic writes;
//! - `attrlog#<event id>`: a processed inbound message;
//! - `attrconv#<event id>`: a conversion with `status`, `detail`, `attempts`.
//!
//! A commit writes the contact state (conditioned on its version) and the log entry
//! (conditioned on absence) in one TransactWriteItems.
//!
//! The report reads the sparse index [`REPORT_INDEX`]: a log entry that started a conversation
//! or made a lead, and every conversion, also carry `rperiod` (`<UTC year-month>#<shard>`), `rat`
//! (the time, Unix ms) and the figures the report adds up, so a report Queries a few index
//! partitions a month instead of scanning the table. Each item is written once (conditioned on
//! absence), so a redelivery never counts twice; the shards spread a busy month's index writes.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::{get_s, n, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::attribution::link::TrackedLink;
use wabridge_core::attribution::report::{Report, ReportRow};
use wabridge_core::attribution::store::{
    AttributionStore, Claim, Commit, ContactState, ConversionRow, Credit, LogEntry,
};
use wabridge_core::error::StoreError;

#[derive(Clone)]
pub struct DynamoAttribution {
    client: Client,
    table: String,
}

fn key(family: &str, id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), s(pk(family, id))),
        (SK.to_string(), s(SINGLE_SK)),
    ])
}

fn body<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v).map(s).map_err(StoreError::corrupt)
}

fn parse<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    match item.get("body") {
        Some(AttributeValue::S(b)) => serde_json::from_str(b).map_err(StoreError::corrupt),
        _ => Err(StoreError::corrupt(
            "attribution item without a string body",
        )),
    }
}

/// The table's global secondary index the report reads (see the template): partition key
/// [`REPORT_PERIOD`] (S), sort key [`REPORT_AT`] (N), projecting [`REPORT_ATTRIBUTES`].
pub const REPORT_INDEX: &str = "report";
pub const REPORT_PERIOD: &str = "rperiod";
pub const REPORT_AT: &str = "rat";
/// The attributes the index projects besides its keys.
pub const REPORT_ATTRIBUTES: [&str; 7] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "conversations",
    "leads",
    "currency",
    "value",
];
/// Index partitions per month: one partition takes about 1,000 writes a second.
const REPORT_SHARDS: u32 = 4;
/// How far back a report reads: one Query per month and shard.
pub const REPORT_MAX_MONTHS: i64 = 36;

/// Months since January 1970 (UTC) of a Unix ms time.
fn month_of(at_ms: i64) -> Result<i64, StoreError> {
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .map_err(|_| StoreError::corrupt(format!("time out of range: {at_ms}")))?;
    Ok(i64::from(date.year() - 1970) * 12 + i64::from(u8::from(date.month())) - 1)
}

/// `YYYY-MM` of a month number from [`month_of`].
fn month_name(month: i64) -> String {
    format!(
        "{:04}-{:02}",
        1970 + month.div_euclid(12),
        month.rem_euclid(12) + 1
    )
}

/// The index attributes of a counted item: its month partition (sharded by `id`), its time and
/// its credit.
fn report_attributes(
    id: &str,
    at_ms: i64,
    credit: &Credit,
) -> Result<Vec<(&'static str, AttributeValue)>, StoreError> {
    let shard = id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % REPORT_SHARDS;
    let mut attrs = vec![
        (
            REPORT_PERIOD,
            s(format!("{}#{shard}", month_name(month_of(at_ms)?))),
        ),
        (REPORT_AT, n(at_ms)),
    ];
    for (name, value) in [
        ("utm_source", &credit.utm_source),
        ("utm_medium", &credit.utm_medium),
        ("utm_campaign", &credit.utm_campaign),
    ] {
        if let Some(v) = value {
            attrs.push((name, s(v.clone())));
        }
    }
    Ok(attrs)
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<f64, StoreError> {
    match item.get(name) {
        None => Ok(0.0),
        Some(AttributeValue::N(v)) => v.parse().map_err(StoreError::corrupt),
        Some(_) => Err(StoreError::corrupt(format!("{name} is not a number"))),
    }
}

/// Adds one index item (a counted log entry or a conversion) to the report's rows.
fn tally(
    rows: &mut BTreeMap<Credit, ReportRow>,
    item: &HashMap<String, AttributeValue>,
) -> Result<(), StoreError> {
    let credit = Credit {
        utm_source: get_s(item, "utm_source"),
        utm_medium: get_s(item, "utm_medium"),
        utm_campaign: get_s(item, "utm_campaign"),
    };
    let row = rows
        .entry(credit.clone())
        .or_insert_with(|| ReportRow::new(credit));
    row.conversations += number(item, "conversations")? as u64;
    row.leads += number(item, "leads")? as u64;
    if let Some(currency) = get_s(item, "currency") {
        row.conversions += 1;
        *row.value.entry(currency).or_insert(0.0) += number(item, "value")?;
    }
    Ok(())
}

impl DynamoAttribution {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAttribution {
            client,
            table: table.into(),
        }
    }

    /// Over the CLI's AWS configuration (aws-config's standard chain: credentials, region,
    /// profiles, `AWS_ENDPOINT_URL`): the CLI's report.
    #[cfg(feature = "credential-chain")]
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = crate::sdk::chain_config().await;
        DynamoAttribution::new(Client::new(config), table)
    }

    async fn get(
        &self,
        family: &str,
        id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(family, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Puts `item` unless an item with its key exists; `false` when it does.
    async fn put_new(&self, item: HashMap<String, AttributeValue>) -> Result<bool, StoreError> {
        super::put_new(&self.client, &self.table, item).await
    }

    /// Conversations, leads, conversions and value per source / medium / campaign from
    /// `since_ms` up to `now_ms` (Unix ms; message time for conversations and leads, event time
    /// for conversions), as the SQLite store's report: Queries of [`REPORT_INDEX`], one per month
    /// and shard, at most [`REPORT_MAX_MONTHS`] months back.
    pub async fn report(&self, since_ms: i64, now_ms: i64) -> Result<Report, StoreError> {
        let first = month_of(since_ms)?;
        let last = month_of(now_ms)?.max(first);
        if last - first >= REPORT_MAX_MONTHS {
            return Err(StoreError::Invalid(format!(
                "the DynamoDB report reads at most {REPORT_MAX_MONTHS} months back; use a later --since"
            )));
        }
        let mut rows: BTreeMap<Credit, ReportRow> = BTreeMap::new();
        for month in first..=last {
            for shard in 0..REPORT_SHARDS {
                let mut start = None;
                loop {
                    let out = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(REPORT_INDEX)
                        .key_condition_expression("#p = :p AND #at >= :since")
                        .expression_attribute_names("#p", REPORT_PERIOD)
                        .expression_attribute_names("#at", REPORT_AT)
                        .expression_attribute_values(
                            ":p",
                            s(format!("{}#{shard}", month_name(month))),
                        )
                        .expression_attribute_values(":since", n(since_ms))
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| store_error("Query", e))?;
                    for item in out.items() {
                        tally(&mut rows, item)?;
                    }
                    start = out.last_evaluated_key;
                    if start.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(Report {
            since_ms,
            rows: rows.into_values().collect(),
        })
    }
}

#[async_trait]
impl AttributionStore for DynamoAttribution {
    async fn insert_link(&self, link: &TrackedLink) -> Result<bool, StoreError> {
        let mut item = key("attrlink", &link.code);
        item.insert("body".into(), body(link)?);
        item.insert("link_expires_at".into(), n(link.expires_at));
        self.put_new(item).await
    }

    async fn link(&self, code: &str) -> Result<Option<TrackedLink>, StoreError> {
        self.get("attrlink", code)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    async fn contact(&self, contact_id: &str) -> Result<Option<ContactState>, StoreError> {
        self.get("attrcontact", contact_id)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    async fn processed(&self, event_id: &str) -> Result<Option<LogEntry>, StoreError> {
        self.get("attrlog", event_id)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }

    async fn commit(&self, state: &ContactState, entry: &LogEntry) -> Result<Commit, StoreError> {
        let mut contact = key("attrcontact", &state.contact_id);
        contact.insert("body".into(), body(state)?);
        contact.insert("version".into(), n(state.version as i64));
        let contact_put = if state.version <= 1 {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(contact))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(contact))
                .condition_expression("#v = :prev")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":prev", n(state.version as i64 - 1))
        }
        .build()
        .map_err(StoreError::corrupt)?;
        let mut log = key("attrlog", &entry.event_id);
        log.insert("body".into(), body(entry)?);
        log.insert("at".into(), n(entry.at));
        if entry.conversation_start || entry.lead {
            for (name, value) in report_attributes(&entry.event_id, entry.at, &entry.credit)? {
                log.insert(name.into(), value);
            }
            log.insert(
                "conversations".into(),
                n(i64::from(entry.conversation_start)),
            );
            log.insert("leads".into(), n(i64::from(entry.lead)));
        }
        let log_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(log))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(StoreError::corrupt)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(contact_put).build())
            .transact_items(TransactWriteItem::builder().put(log_put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Commit::Done),
            Err(e) => {
                let cancelled = e
                    .as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception());
                if !cancelled {
                    return Err(store_error("TransactWriteItems", e));
                }
                // A condition failed: either the event is logged already, or the contact moved.
                match self.processed(&entry.event_id).await? {
                    Some(done) => Ok(Commit::AlreadyProcessed(done)),
                    None => Ok(Commit::VersionConflict),
                }
            }
        }
    }

    async fn claim_conversion(&self, row: &ConversionRow) -> Result<Claim, StoreError> {
        let mut item = key("attrconv", &row.event_id);
        item.insert("body".into(), body(row)?);
        item.insert("status".into(), s(row.status.clone()));
        item.insert("attempts".into(), n(i64::from(row.attempts)));
        for (name, value) in report_attributes(&row.event_id, row.event_time, &row.credit)? {
            item.insert(name.into(), value);
        }
        item.insert("currency".into(), s(row.currency.clone()));
        item.insert("value".into(), AttributeValue::N(row.value.to_string()));
        if self.put_new(item).await? {
            return Ok(Claim::New);
        }
        let item = self
            .get("attrconv", &row.event_id)
            .await?
            .ok_or_else(|| StoreError::Unavailable("conversion vanished".into()))?;
        let mut existing: ConversionRow = parse(&item)?;
        if let Some(status) = get_s(&item, "status") {
            existing.status = status;
        }
        existing.detail = get_s(&item, "detail");
        if let Some(AttributeValue::N(a)) = item.get("attempts") {
            existing.attempts = a.parse().unwrap_or(0);
        }
        Ok(Claim::Existing(Box::new(existing)))
    }

    async fn finish_conversion(
        &self,
        event_id: &str,
        status: &str,
        detail: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key("attrconv", event_id)))
            .condition_expression("attribute_exists(#pk)")
            .update_expression("SET #st = :st, #d = :d, #a = :a")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#d", "detail")
            .expression_attribute_names("#a", "attempts")
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":d", detail.map(s).unwrap_or(AttributeValue::Null(true)))
            .expression_attribute_values(":a", n(i64::from(attempts)))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e));
        match result {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                Err(StoreError::NotFound(format!("conversion {event_id}")))
            }
            Err(e) => Err(e),
        }
    }
}
