//! The numbers registry in the stack's table (docs/numbers.md, "On AWS"): one partition,
//! `numbers#registry`, with one item per number (sort key `number#<label>`) holding the
//! number's `[[number]]` entry as TOML text, and the registry's settings (`unknown_numbers`)
//! under the sort key `-`. The functions read it with one Query per cold start (and again on
//! an unknown number); `wabridge numbers add/list/remove --table T` manage it.
//!
//! The items hold the TOML text rather than attributes so that reading them goes through the
//! same parser as the local file ([`wabridge_core::numbers::items::join`]): one validator for
//! both engines. Tokens are never here: an entry names its token's key in the stack's secret.
//! Business numbers and key names, nothing of a customer: erasure's `FAMILIES` says so.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::{get_s, n, now_epoch, pk, s, PK, SINGLE_SK, SK};
use crate::sdk::store_error;
use wabridge_core::error::StoreError;
use wabridge_core::numbers::items::{join, Entry};
use wabridge_core::numbers::Numbers;

/// The family of the registry's items.
pub const FAMILY: &str = "numbers";
const PARTITION: &str = "registry";
const NUMBER_SK: &str = "number#";
/// The attribute holding an entry's (or the settings') TOML text.
const TEXT: &str = "toml";

/// What the table holds: the settings' text and every entry, ordered by label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub settings: Option<String>,
    pub entries: Vec<Entry>,
}

impl Stored {
    /// The registry these items make, checked (`source` names the table in errors); `None`
    /// with no entry.
    pub fn numbers(
        &self,
        source: &str,
    ) -> Result<Option<Numbers>, wabridge_core::numbers::NumbersError> {
        join(source, self.settings.as_deref(), &self.entries)
    }
}

#[derive(Clone, Debug)]
pub struct DynamoNumbers {
    client: Client,
    table: String,
}

impl DynamoNumbers {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoNumbers {
        DynamoNumbers {
            client,
            table: table.into(),
        }
    }

    /// The registry of `table` over the CLI's AWS configuration (profiles, SSO,
    /// `AWS_ENDPOINT_URL`).
    #[cfg(feature = "credential-chain")]
    pub async fn from_env(table: impl Into<String>) -> DynamoNumbers {
        DynamoNumbers::new(Client::new(crate::sdk::chain_config().await), table)
    }

    /// How errors name this registry: `table <name>`.
    pub fn source(&self) -> String {
        format!("table {}", self.table)
    }

    /// Every item of the registry, read consistently.
    pub async fn stored(&self) -> Result<Stored, StoreError> {
        let mut stored = Stored::default();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(pk(FAMILY, PARTITION)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in out.items() {
                let sk = get_s(item, SK).unwrap_or_default();
                let text = get_s(item, TEXT).ok_or_else(|| {
                    StoreError::corrupt(format!("{} {sk}: no `{TEXT}` text", self.source()))
                })?;
                match sk.strip_prefix(NUMBER_SK) {
                    Some(label) => stored.entries.push(Entry {
                        label: label.to_string(),
                        phone_number_id: get_s(item, "phone_number_id").unwrap_or_default(),
                        text,
                    }),
                    None if sk == SINGLE_SK => stored.settings = Some(text),
                    None => {}
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(stored);
            }
        }
    }

    /// The registry the table holds, checked; `None` when it holds no number (the functions
    /// then run today's single number). Items that do not check are `Corrupt`, naming the
    /// item, its line and field.
    pub async fn load(&self) -> Result<Option<Numbers>, StoreError> {
        self.stored()
            .await?
            .numbers(&self.source())
            .map_err(|e| StoreError::corrupt(e.to_string()))
    }

    /// Writes (or replaces) each entry, and the settings when given. The caller checks the
    /// registry these writes make first ([`Stored::numbers`]).
    pub async fn put(&self, settings: Option<&str>, entries: &[Entry]) -> Result<(), StoreError> {
        let sks = entries
            .iter()
            .map(|e| {
                let item = [
                    ("phone_number_id", s(&e.phone_number_id)),
                    (TEXT, s(&e.text)),
                ];
                (format!("{NUMBER_SK}{}", e.label), item.to_vec())
            })
            .chain(settings.map(|t| (SINGLE_SK.to_string(), vec![(TEXT, s(t))])));
        for (sk, fields) in sks {
            let mut item: HashMap<String, AttributeValue> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            item.insert(PK.into(), s(pk(FAMILY, PARTITION)));
            item.insert(SK.into(), s(sk));
            item.insert("updated_at".into(), n(now_epoch()));
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| store_error("PutItem", e))?;
        }
        Ok(())
    }

    /// Deletes the entry of `label`; `false` when there was none.
    pub async fn remove(&self, label: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(pk(FAMILY, PARTITION)))
            .key(SK, s(format!("{NUMBER_SK}{label}")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e))?;
        Ok(out.attributes.is_some())
    }
}
