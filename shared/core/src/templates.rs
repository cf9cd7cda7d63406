//! The template registry: what wabridge knows about the business's message templates, per name
//! and language: the latest status from `message_template_status_update` webhooks (APPROVED,
//! PAUSED, REJECTED, DISABLED, ...) and, when someone registered it, the category and how many
//! body parameters the template takes.
//!
//! Entry points: [`TemplateRegistry::apply_status_update`] for the sync handler (webhook value
//! as Meta sent it; unordered deliveries converge: an older event never replaces a newer one);
//! [`TemplateRegistry::define`] to register a template's category and parameter count (CLI,
//! tests); [`TemplateRegistry::apply_synced`] for the sync from Meta's template list
//! ([`crate::sends::template_sync`], `wabridge templates sync`); [`TemplateRegistry::get`] for
//! the policy guards.

use std::sync::Arc;

use crate::webhook::model::TemplateStatusUpdate;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// A template's status as Meta names it (upper case). Unknown values are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateStatus(pub String);

impl TemplateStatus {
    pub fn new(s: &str) -> TemplateStatus {
        TemplateStatus(s.trim().to_ascii_uppercase())
    }
    /// PAUSED, REJECTED and DISABLED templates are refused (sending one fails at Meta and hurts
    /// the number's quality rating).
    pub fn refuses_sends(&self) -> bool {
        matches!(self.0.as_str(), "PAUSED" | "REJECTED" | "DISABLED")
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the registry knows about one template in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    pub name: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TemplateStatus>,
    /// Meta's `reason` with the last status (for REJECTED, PAUSED ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms of the event that set the status (`entry.time`), to ignore older deliveries.
    #[serde(default)]
    pub status_at: i64,
    /// MARKETING, UTILITY or AUTHENTICATION when registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Number of body parameters (`{{1}}`, `{{2}}`, ...) when registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_parameters: Option<u32>,
}

impl TemplateInfo {
    pub fn empty(name: &str, language: &str) -> TemplateInfo {
        TemplateInfo {
            name: name.to_string(),
            language: language.to_string(),
            status: None,
            reason: None,
            status_at: 0,
            category: None,
            body_parameters: None,
        }
    }
}

#[async_trait]
pub trait TemplateStore: Send + Sync {
    async fn get(&self, name: &str, language: &str) -> Result<Option<TemplateInfo>, StoreError>;
    /// Sets the status unless the stored one came from a newer event (`status_at` greater).
    /// Returns whether it changed.
    async fn put_status(
        &self,
        name: &str,
        language: &str,
        status: &TemplateStatus,
        reason: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Sets the category and body parameter count, keeping the status.
    async fn put_definition(
        &self,
        name: &str,
        language: &str,
        category: Option<&str>,
        body_parameters: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Every template the store knows, ordered by name then language (`wabridge templates
    /// list`). Stores that cannot list cheaply (DynamoDB's single table would need a scan)
    /// answer an error saying so.
    async fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        Err(StoreError::Unavailable(
            "this template store cannot list templates".into(),
        ))
    }
}

#[derive(Clone)]
pub struct TemplateRegistry {
    store: Arc<dyn TemplateStore>,
}

/// A `message_template_status_update` value that lacks what the registry needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template status update without {0}")]
pub struct MissingField(pub &'static str);

impl TemplateRegistry {
    pub fn new(store: Arc<dyn TemplateStore>) -> TemplateRegistry {
        TemplateRegistry { store }
    }

    pub async fn get(
        &self,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateInfo>, StoreError> {
        self.store.get(name, language).await
    }

    pub async fn define(
        &self,
        name: &str,
        language: &str,
        category: Option<&str>,
        body_parameters: Option<u32>,
    ) -> Result<(), StoreError> {
        self.store
            .put_definition(
                name,
                language,
                category.map(|c| c.trim().to_ascii_uppercase()).as_deref(),
                body_parameters,
            )
            .await
    }

    /// Every template the registry knows (see [`TemplateStore::list`]).
    pub async fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        self.store.list().await
    }

    /// Records what a sync read from Meta's template list: the category and body parameter
    /// count (replacing what was there) and the status as observed at `observed_at_ms`. The
    /// status goes through the same ordering as webhooks: a webhook event newer than the
    /// observation keeps its status. Returns whether the status was written.
    pub async fn apply_synced(
        &self,
        name: &str,
        language: &str,
        status: Option<&TemplateStatus>,
        category: Option<&str>,
        body_parameters: Option<u32>,
        observed_at_ms: i64,
    ) -> Result<bool, StoreError> {
        self.define(name, language, category, body_parameters)
            .await?;
        match status {
            Some(status) => {
                self.store
                    .put_status(name, language, status, None, observed_at_ms)
                    .await
            }
            None => Ok(false),
        }
    }

    /// Applies a `message_template_status_update` change value (`event`,
    /// `message_template_name`, `message_template_language`, `reason`). `at_ms` is the entry's
    /// `time` (seconds × 1000) or, without it, when ingest received it. Returns
    /// `Ok(Err(MissingField))` for a value without name, language or event (nothing to apply).
    pub async fn apply_status_update(
        &self,
        update: &TemplateStatusUpdate,
        at_ms: i64,
    ) -> Result<Result<bool, MissingField>, StoreError> {
        fn field(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        let Some(name) = field(&update.message_template_name) else {
            return Ok(Err(MissingField("message_template_name")));
        };
        let Some(language) = field(&update.message_template_language) else {
            return Ok(Err(MissingField("message_template_language")));
        };
        let Some(event) = field(&update.event) else {
            return Ok(Err(MissingField("event")));
        };
        let reason = field(&update.reason).filter(|r| !r.eq_ignore_ascii_case("NONE"));
        self.store
            .put_status(name, language, &TemplateStatus::new(event), reason, at_ms)
            .await
            .map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_statuses() {
        for s in ["PAUSED", "rejected", "Disabled"] {
            assert!(TemplateStatus::new(s).refuses_sends(), "{s}");
        }
        for s in ["APPROVED", "PENDING", "IN_APPEAL", "FLAGGED"] {
            assert!(!TemplateStatus::new(s).refuses_sends(), "{s}");
        }
    }
}
