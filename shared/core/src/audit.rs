//! The audit trail: one line per write made through the API or the CLI (a send, a consent, a
//! link, a conversion, a redrive, a template sync), saying when, who (the API key's id, or
//! `cli`; never the key), what, and which record (a send id, a consent entry id, a link code,
//! the CRM's contact id). No phone number, name or message text goes into it.
//!
//! A line is written after the write succeeded. Writing it never fails the caller's request,
//! which has already taken effect: a line that could not be stored is logged as an error with
//! `metric=audit_write_failed`, so that an alarm can be set on it.
//!
//! Kept `WABRIDGE_AUDIT_RETENTION_DAYS` (default 400: a yearly review still finds the year
//! before), then the local purger deletes it and DynamoDB's TTL expires it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError, Settings};
use crate::error::StoreError;

/// What was written (the `action` of a line).
pub mod action {
    pub const SEND: &str = "send";
    pub const CONSENT: &str = "consent";
    pub const LINK: &str = "link";
    pub const CONVERSION: &str = "conversion";
    pub const REDRIVE: &str = "redrive";
    pub const TEMPLATE_SYNC: &str = "template_sync";
    pub const TEMPLATE_APPLY: &str = "template_apply";
    pub const ERASURE: &str = "erasure";
    /// A file stored for sends (`POST /media`, `POST /media/uploads`); the subject is its
    /// SHA-256 (hex), which names no one.
    pub const MEDIA_UPLOAD: &str = "media_upload";
}

/// The actor of a write made from the command line.
pub const CLI_ACTOR: &str = "cli";

pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 400;

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix ms.
    pub at: i64,
    /// `key:<id>` for an API key, [`CLI_ACTOR`] for the CLI.
    pub actor: String,
    pub action: String,
    /// The record written (no personal data), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Where the lines are kept.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Lines at or after `since_ms`, oldest first, at most `limit`.
    async fn since(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// The trail as services use it: a log, or none (then nothing is recorded, as in tools that
/// write nothing).
#[derive(Clone, Default)]
pub struct Audit(Option<Arc<dyn AuditLog>>);

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Audit(on)"
        } else {
            "Audit(off)"
        })
    }
}

impl Audit {
    pub fn new(log: Arc<dyn AuditLog>) -> Audit {
        Audit(Some(log))
    }

    pub fn none() -> Audit {
        Audit(None)
    }

    /// The actor of a call made with the API key `key_id`.
    pub fn key_actor(key_id: &str) -> String {
        format!("key:{key_id}")
    }

    /// Records a write that took effect. Never fails (see the module docs).
    pub async fn note(&self, actor: &str, action: &str, subject: Option<&str>) {
        let Some(log) = &self.0 else { return };
        let entry = AuditEntry {
            at: crate::clock::now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.map(str::to_string),
        };
        if let Err(e) = log.append(&entry).await {
            tracing::error!(metric = "audit_write_failed", error = %e, %actor, %action, "audit line not stored");
        }
    }
}

/// `WABRIDGE_AUDIT_RETENTION_DAYS`: a whole number of days from 30 to 3650, default 400.
pub fn retention(get: impl Fn(&str) -> Option<String>) -> Result<std::time::Duration, ConfigError> {
    let days = Settings::new(get).number(
        config::WABRIDGE_AUDIT_RETENTION_DAYS,
        DEFAULT_AUDIT_RETENTION_DAYS,
        "a whole number of days from 30 to 3650",
        |d| (30..=3650).contains(d),
    )?;
    Ok(std::time::Duration::from_secs(days * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_bounded_and_names_its_variable() {
        assert_eq!(retention(|_| None).unwrap().as_secs(), 400 * 86_400);
        assert_eq!(
            retention(|_| Some("30".into())).unwrap().as_secs(),
            30 * 86_400
        );
        for bad in ["7", "forever", "-1", "4000"] {
            let err = retention(|_| Some(bad.into())).unwrap_err().to_string();
            assert!(
                err.contains("WABRIDGE_AUDIT_RETENTION_DAYS"),
                "{bad}: {err}"
            );
        }
    }
}
