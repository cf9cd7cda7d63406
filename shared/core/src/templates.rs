//! The template registry: what wabridge knows about the business's message templates, per name
//! and language: the latest status from `message_template_status_update` webhooks (APPROVED,
//! PAUSED, REJECTED, DISABLED, ...) and, when someone registered it, the category and how many
//! body parameters the template takes.
//!
//! Entry points: [`TemplateRegistry::apply_update`] for the sync handler (a template webhook
//! value as Meta sent it: status, quality, category, components; unordered status deliveries
//! converge: an older event never replaces a newer one);
//! [`TemplateRegistry::define`] to register a template's category and parameter count (CLI,
//! tests); [`TemplateRegistry::apply_synced`] for the sync from Meta's template list
//! ([`crate::sends::template_sync`], `wabridge templates sync`); [`TemplateRegistry::get`] for
//! the policy guards.

use std::sync::Arc;

use crate::sends::template_sync::{placeholders, RemoteTemplate};
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
    /// Meta's quality score: GREEN, YELLOW, RED or UNKNOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
}

/// Fields to set on a template's record; `None` keeps what is there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplatePatch {
    pub category: Option<String>,
    pub body_parameters: Option<u32>,
    pub quality: Option<String>,
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
            quality: None,
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
    /// Sets the patch's fields, keeping the others (and creating the record if needed).
    async fn patch(
        &self,
        name: &str,
        language: &str,
        patch: &TemplatePatch,
    ) -> Result<(), StoreError>;
    /// Every language the store knows of template `name`, ordered by language (the language
    /// picker of `POST /sends`).
    async fn languages(&self, name: &str) -> Result<Vec<TemplateInfo>, StoreError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|t| t.name == name)
            .collect())
    }
    /// Every template the store knows, ordered by name then language (`wabridge templates
    /// list`). Stores that cannot list cheaply (DynamoDB's single table would need a scan)
    /// answer an error saying so.
    async fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        Err(StoreError::Unavailable(
            "this template store cannot list templates".into(),
        ))
    }
    /// When a sync from Meta's list last completed for this registry (Unix ms); `None` before
    /// the first one. Only a registry that was synced knows every template of its WABA, so
    /// only then does a template it lacks mean one the WABA lacks (`template_not_found`).
    async fn synced_at(&self) -> Result<Option<i64>, StoreError>;
    /// Records a completed sync at `at_ms`.
    async fn mark_synced(&self, at_ms: i64) -> Result<(), StoreError>;
}

/// The key of the implicit number's registry (no numbers registry): the one registry wabridge
/// kept before registries were per WABA, so its stored rows stay its rows.
pub const IMPLICIT_WABA: &str = "";

/// Opens one WABA's template store.
type OpenStore = dyn Fn(&str) -> Arc<dyn TemplateStore> + Send + Sync;

/// The template registries, one per WABA (numbers of one WABA share its templates). Without a
/// numbers registry there is one, the implicit number's ([`IMPLICIT_WABA`]), whatever WABA a
/// webhook names; with one ([`TemplateRegistries::per_waba`]), each WABA has its own.
#[derive(Clone)]
pub struct TemplateRegistries {
    open: Arc<OpenStore>,
    per_waba: bool,
}

impl TemplateRegistries {
    /// `open(waba)` gives the store of one WABA's registry ([`IMPLICIT_WABA`]: the implicit one).
    pub fn new(
        open: impl Fn(&str) -> Arc<dyn TemplateStore> + Send + Sync + 'static,
    ) -> TemplateRegistries {
        TemplateRegistries {
            open: Arc::new(open),
            per_waba: false,
        }
    }

    /// Keyed by WABA: what a gateway with a numbers registry uses.
    pub fn per_waba(mut self) -> TemplateRegistries {
        self.per_waba = true;
        self
    }

    /// Whether each WABA has its own registry.
    pub fn is_per_waba(&self) -> bool {
        self.per_waba
    }

    /// The registry of `waba` (a webhook's `entry[].id`, a number's `waba_id`); the implicit
    /// one when registries are not per WABA.
    pub fn of(&self, waba: &str) -> TemplateRegistry {
        let key = if self.per_waba { waba } else { IMPLICIT_WABA };
        TemplateRegistry::new((self.open)(key))
    }

    /// The implicit number's registry.
    pub fn implicit(&self) -> TemplateRegistry {
        TemplateRegistry::new((self.open)(IMPLICIT_WABA))
    }
}

/// One registry's templates as the listings show them (`templates status`, `report health`):
/// `waba` is the numbers registry's WABA, `None` for the implicit number's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WabaTemplates {
    pub waba: Option<crate::numbers::wabas::Waba>,
    pub templates: Vec<TemplateInfo>,
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

    /// The languages of `name` the registry knows as APPROVED, sorted.
    pub async fn approved_languages(&self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .languages(name)
            .await?
            .into_iter()
            .filter(|t| t.status.as_ref().is_some_and(|s| s.as_str() == "APPROVED"))
            .map(|t| t.language)
            .collect())
    }

    /// See [`TemplateStore::synced_at`].
    pub async fn synced_at(&self) -> Result<Option<i64>, StoreError> {
        self.store.synced_at().await
    }

    /// See [`TemplateStore::mark_synced`].
    pub async fn mark_synced(&self, at_ms: i64) -> Result<(), StoreError> {
        self.store.mark_synced(at_ms).await
    }

    /// Every template the registry knows (see [`TemplateStore::list`]).
    pub async fn list(&self) -> Result<Vec<TemplateInfo>, StoreError> {
        self.store.list().await
    }

    /// Records one template as a sync read it from Meta's list: the category and body
    /// parameter count (replacing what was there), the quality score when Meta gave one, and
    /// the status with Meta's reason (`rejected_reason`) as observed at `observed_at_ms`. The
    /// status goes through the same ordering as webhooks: a webhook event newer than the
    /// observation keeps its status. Returns whether the status was written.
    pub async fn apply_synced(
        &self,
        t: &RemoteTemplate,
        observed_at_ms: i64,
    ) -> Result<bool, StoreError> {
        self.define(
            &t.name,
            &t.language,
            t.category.as_deref(),
            Some(t.body_parameters),
        )
        .await?;
        if let Some(quality) = &t.quality {
            let patch = TemplatePatch {
                quality: Some(quality.to_ascii_uppercase()),
                ..TemplatePatch::default()
            };
            self.store.patch(&t.name, &t.language, &patch).await?;
        }
        match &t.status {
            Some(status) => {
                self.store
                    .put_status(
                        &t.name,
                        &t.language,
                        status,
                        t.reason.as_deref(),
                        observed_at_ms,
                    )
                    .await
            }
            None => Ok(false),
        }
    }

    /// Applies a template webhook value by its `field`: the status
    /// (`message_template_status_update`), the quality score
    /// (`message_template_quality_update`), a recategorisation (`template_category_update`:
    /// the new category counts at once, so the send guards treat a template moved to MARKETING
    /// as marketing; a 24-hour notice changes nothing yet), or an edit
    /// (`message_template_components_update`: the body's parameter count). `at_ms` is the
    /// entry's `time` (seconds × 1000) or, without it, when ingest received it. Returns
    /// `Ok(Err(MissingField))` for a value without name, language or what the field updates.
    pub async fn apply_update(
        &self,
        field: &str,
        update: &TemplateStatusUpdate,
        at_ms: i64,
    ) -> Result<Result<bool, MissingField>, StoreError> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let Some(name) = given(&update.message_template_name) else {
            return Ok(Err(MissingField("message_template_name")));
        };
        let Some(language) = given(&update.message_template_language) else {
            return Ok(Err(MissingField("message_template_language")));
        };
        let upper = |v: &str| v.to_ascii_uppercase();
        let patch = match field {
            "message_template_quality_update" => {
                let Some(q) = given(&update.new_quality_score) else {
                    return Ok(Err(MissingField("new_quality_score")));
                };
                TemplatePatch {
                    quality: Some(upper(q)),
                    ..TemplatePatch::default()
                }
            }
            "template_category_update" => {
                if given(&update.correct_category).is_some() {
                    // Meta's notice of a change tomorrow: the category holds until then.
                    return Ok(Ok(false));
                }
                let Some(c) = given(&update.new_category) else {
                    return Ok(Err(MissingField("new_category")));
                };
                TemplatePatch {
                    category: Some(upper(c)),
                    ..TemplatePatch::default()
                }
            }
            "message_template_components_update" => {
                let Some(body) = given(&update.message_template_element) else {
                    return Ok(Err(MissingField("message_template_element")));
                };
                TemplatePatch {
                    body_parameters: Some(placeholders(body).len() as u32),
                    ..TemplatePatch::default()
                }
            }
            _ => {
                let Some(event) = given(&update.event) else {
                    return Ok(Err(MissingField("event")));
                };
                let reason = given(&update.reason).filter(|r| !r.eq_ignore_ascii_case("NONE"));
                return self
                    .store
                    .put_status(name, language, &TemplateStatus::new(event), reason, at_ms)
                    .await
                    .map(Ok);
            }
        };
        self.store.patch(name, language, &patch).await?;
        Ok(Ok(true))
    }

    /// [`TemplateRegistry::apply_update`] of a `message_template_status_update`.
    pub async fn apply_status_update(
        &self,
        update: &TemplateStatusUpdate,
        at_ms: i64,
    ) -> Result<Result<bool, MissingField>, StoreError> {
        self.apply_update("message_template_status_update", update, at_ms)
            .await
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
