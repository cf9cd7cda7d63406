//! `wabridge templates apply`: submits a [`Plan`]'s changes to Meta through the
//! [`TemplateAdmin`] port (`wabridge-graph` over the Graph API), and records each one that took
//! effect in the [`TemplateHistory`] (template id, content hash, who, when).
//!
//! - Media header samples are uploaded first (the Resumable Upload API's handle goes into the
//!   component's `example.header_handle`).
//! - Creations keep under Meta's 100 per WABA per hour, counted from the history: the rest wait
//!   for the next run, and the report says from when.
//! - Deletes happen only when asked (`--allow-delete`), one language at a time (`hsm_id`), and
//!   never for a template a queued send still names.
//! - One failure does not stop the others; the report lists it with Meta's message.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::meta;
use super::plan::{Action, AppliedChange, Change, Local, Plan};
use crate::clock::rfc3339;
use crate::error::StoreError;
use crate::sends::template_sync::{RemoteTemplate, SyncError};

/// Meta's creation limit per WABA per hour.
pub const CREATIONS_PER_HOUR: usize = 100;
const HOUR_MS: i64 = 3600 * 1000;

/// What `POST /{WABA-ID}/message_templates` answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub id: String,
    pub status: Option<String>,
    pub category: Option<String>,
}

/// Meta's template management endpoints.
#[async_trait]
pub trait TemplateAdmin: Send + Sync {
    /// Every template of the WABA (`GET /{WABA-ID}/message_templates`, every page).
    async fn list(&self) -> Result<Vec<RemoteTemplate>, SyncError>;
    async fn create(&self, body: &Value) -> Result<Created, SyncError>;
    async fn edit(&self, template_id: &str, body: &Value) -> Result<(), SyncError>;
    /// Deletes one language (`hsm_id`) of `name`.
    async fn delete(&self, name: &str, template_id: &str) -> Result<(), SyncError>;
    /// Uploads a header sample through the Resumable Upload API; returns its handle.
    async fn upload_sample(
        &self,
        file_name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<String, SyncError>;
}

/// Where applied changes are kept (the SQLite store, a deployment's DynamoDB table).
#[async_trait]
pub trait TemplateHistory: Send + Sync {
    async fn record(&self, change: &AppliedChange) -> Result<(), StoreError>;
    /// Changes applied at or after `since_ms`, oldest first; only `name`'s when given.
    async fn history(
        &self,
        name: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<AppliedChange>, StoreError>;
    /// How many sends not yet handed to Meta name the template.
    async fn queued_sends(&self, name: &str) -> Result<u64, StoreError>;
}

/// A media header's sample file, read by the caller.
#[derive(Debug, Clone)]
pub struct Sample {
    pub file_name: String,
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

impl Sample {
    /// The MIME type Meta expects for a sample's extension.
    pub fn mime_for(file_name: &str) -> Option<&'static str> {
        let ext = file_name.rsplit('.').next()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "mp4" => "video/mp4",
            "pdf" => "application/pdf",
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub allow_delete: bool,
    pub applied_by: String,
    pub now_ms: i64,
}

/// A change `apply` did not make, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotApplied {
    pub name: String,
    pub language: String,
    pub action: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub applied: Vec<AppliedChange>,
    /// Left for later: deletes without `--allow-delete`, creations over the hourly limit.
    pub skipped: Vec<NotApplied>,
    /// Meta refused or did not answer; a later `apply` tries again.
    pub failed: Vec<NotApplied>,
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Edit { .. } => "edit",
        Action::Delete => "delete",
    }
}

/// Applies `plan`. `samples` holds each media header's sample by (name, language).
pub async fn apply(
    plan: &Plan,
    locals: &[Local<'_>],
    samples: &BTreeMap<(String, String), Sample>,
    admin: &dyn TemplateAdmin,
    history: &dyn TemplateHistory,
    options: &ApplyOptions,
) -> Result<ApplyReport, StoreError> {
    let mut report = ApplyReport::default();
    let recent = history.history(None, options.now_ms - HOUR_MS).await?;
    let mut created_this_hour = recent.iter().filter(|c| c.action == "create").count();
    let oldest_create = recent
        .iter()
        .filter(|c| c.action == "create")
        .map(|c| c.applied_at_ms)
        .min();
    for change in &plan.changes {
        let not = |reason: String| NotApplied {
            name: change.name.clone(),
            language: change.language.clone(),
            action: action_name(&change.action),
            reason,
        };
        match &change.action {
            Action::Delete => {
                if !options.allow_delete {
                    report
                        .skipped
                        .push(not("deletes need --allow-delete".into()));
                    continue;
                }
                let queued = history.queued_sends(&change.name).await?;
                if queued > 0 {
                    report.skipped.push(not(format!(
                        "{queued} queued send(s) still name it; delete after they are sent"
                    )));
                    continue;
                }
            }
            Action::Create if created_this_hour >= CREATIONS_PER_HOUR => {
                let from = oldest_create.unwrap_or(options.now_ms) + HOUR_MS;
                report.skipped.push(not(format!(
                    "Meta allows {CREATIONS_PER_HOUR} creations per WABA per hour; run apply again after {}",
                    rfc3339(from)
                )));
                continue;
            }
            _ => {}
        }
        match apply_one(change, locals, samples, admin, options).await {
            Ok(done) => {
                if done.action == "create" {
                    created_this_hour += 1;
                }
                history.record(&done).await?;
                report.applied.push(done);
            }
            Err(e) => report.failed.push(not(e.to_string())),
        }
    }
    Ok(report)
}

async fn apply_one(
    change: &Change,
    locals: &[Local<'_>],
    samples: &BTreeMap<(String, String), Sample>,
    admin: &dyn TemplateAdmin,
    options: &ApplyOptions,
) -> Result<AppliedChange, SyncError> {
    let mut done = AppliedChange {
        name: change.name.clone(),
        language: change.language.clone(),
        action: action_name(&change.action).to_string(),
        template_id: change.template_id.clone(),
        content_hash: String::new(),
        applied_by: options.applied_by.clone(),
        applied_at_ms: options.now_ms,
    };
    if let Action::Delete = change.action {
        let id = change
            .template_id
            .as_deref()
            .ok_or_else(|| SyncError::Invalid("Meta's list gave no template id".into()))?;
        admin.delete(&change.name, id).await?;
        return Ok(done);
    }
    let local = locals
        .iter()
        .find(|l| l.template.name == change.name)
        .ok_or_else(|| SyncError::Invalid(format!("no file defines {}", change.name)))?;
    let key = (change.name.clone(), change.language.clone());
    let handle = match samples.get(&key) {
        Some(s) => Some(admin.upload_sample(&s.file_name, s.mime, &s.bytes).await?),
        None => None,
    };
    let t = local.template;
    done.content_hash = meta::content_hash(
        t,
        &change.language,
        local
            .sample_sha256
            .get(&change.language)
            .map(String::as_str),
    );
    match &change.action {
        Action::Create => {
            let created = admin
                .create(&meta::create_body(t, &change.language, handle.as_deref()))
                .await?;
            done.template_id = Some(created.id);
        }
        Action::Edit { fields } => {
            let id = change
                .template_id
                .as_deref()
                .ok_or_else(|| SyncError::Invalid("Meta's list gave no template id".into()))?;
            let category = fields.iter().any(|f| f == "category");
            admin
                .edit(
                    id,
                    &meta::edit_body(t, &change.language, handle.as_deref(), category),
                )
                .await?;
        }
        Action::Delete => {}
    }
    Ok(done)
}
