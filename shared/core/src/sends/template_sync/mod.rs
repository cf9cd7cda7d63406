//! The template sync: reads the business's message templates from the Graph API
//! (`GET /{version}/{waba-id}/message_templates`) and records each one's status, category and
//! body parameter count in the [`TemplateRegistry`], so `POST /sends` checks parameter counts,
//! categories and statuses against what Meta actually holds (`wabridge templates sync`, and
//! hourly in `wabridge serve`).
//!
//! - Paging: `limit` templates a page, the next page asked for with `after` =
//!   `paging.cursors.after` while the answer carries `paging.next` (Meta's mark of a further
//!   page). The `next` URL itself is never fetched: the bearer token only goes to the
//!   configured host.
//! - Bounded: at most [`TemplateSyncConfig::max_pages`] pages of at most
//!   [`TemplateSyncConfig::max_page_bytes`] each, every request with a timeout.
//! - Errors come classified like the sender's ([`SendFailure`]: retry on 5xx, timeouts,
//!   throttling and expired tokens; terminal otherwise).
//! - Ordering with webhooks: a page's statuses count as observed one second before its request
//!   left (webhook event times have whole-second precision), so a
//!   `message_template_status_update` that may be newer than the sync keeps its status.

use std::time::Duration;

use serde::Serialize;

use crate::config;
use crate::error::StoreError;
use crate::sends::classify::SendFailure;
use crate::templates::{TemplateRegistries, TemplateRegistry};

mod page;
pub use page::{body_parameter_count, next_cursor, parse_page, placeholders, Page, RemoteTemplate};

/// Fields asked for: what the registry keeps, and how placeholders are written.
pub const FIELDS: &str =
    "id,name,language,status,category,components,parameter_format,rejected_reason,quality_score";
/// Templates per page (Meta's pages go up to a few hundred; 100 keeps each answer small).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Pages per sync: 100 × 100 templates is far above what one WABA may hold.
pub const DEFAULT_MAX_PAGES: usize = 100;
/// Largest page accepted, bytes: 100 templates of a few KB each fit many times over.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// How much earlier than its request a page's statuses count as observed.
pub const OBSERVATION_SLACK_MS: i64 = 1000;

/// Where and as whom the sync reads.
#[derive(Debug, Clone)]
pub struct TemplateSyncConfig {
    pub base_url: String,
    pub version: String,
    /// The WhatsApp Business Account id (`WHATSAPP_BUSINESS_ACCOUNT_ID`).
    pub waba_id: String,
    pub access_token: String,
    pub timeout: Duration,
    pub page_size: u32,
    pub max_pages: usize,
    pub max_page_bytes: usize,
}

impl TemplateSyncConfig {
    /// Reads `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_BUSINESS_ACCOUNT_ID`, `WHATSAPP_API_URL` and
    /// `WHATSAPP_API_VERSION` through `get`. Fails closed: without a token or a WABA id there
    /// is no sync.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<TemplateSyncConfig, config::ConfigError> {
        const DISABLED: &str = "the template sync is disabled";
        let settings = config::Settings::new(get);
        let (base_url, version) = settings.graph_api()?;
        let access_token = settings.required(config::WHATSAPP_ACCESS_TOKEN, DISABLED)?;
        let waba_id = settings.required(config::WHATSAPP_BUSINESS_ACCOUNT_ID, DISABLED)?;
        if !waba_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(config::ConfigError::Invalid {
                name: config::WHATSAPP_BUSINESS_ACCOUNT_ID,
                value: waba_id,
                expected: "the numeric WhatsApp Business Account id",
            });
        }
        Ok(TemplateSyncConfig {
            base_url,
            version,
            waba_id,
            access_token,
            timeout: Duration::from_secs(15),
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        })
    }

    pub fn from_env() -> Result<TemplateSyncConfig, config::ConfigError> {
        TemplateSyncConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// One config per WABA of `numbers`, in file order ([`TemplateSyncConfig::for_waba`]).
    pub fn per_waba(
        get: impl Fn(&str) -> Option<String>,
        numbers: &crate::numbers::Numbers,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<TemplateSyncConfig>, config::ConfigError> {
        numbers
            .wabas()
            .iter()
            .map(|w| TemplateSyncConfig::for_waba(&get, numbers, &w.id, &secret))
            .collect()
    }

    /// The config of WABA `waba_id` of `numbers`, reading as the first of its numbers whose
    /// token `secret` has (by its `token_key`): numbers of one WABA share its templates, and
    /// any of their tokens may read and manage them. The Graph API URL and version come
    /// through `get`. A WABA none of whose numbers has a token fails closed (the WABA is
    /// logged, never a token).
    pub fn for_waba(
        get: impl Fn(&str) -> Option<String>,
        numbers: &crate::numbers::Numbers,
        waba_id: &str,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<TemplateSyncConfig, config::ConfigError> {
        let (base_url, version) = config::Settings::new(get).graph_api()?;
        let mut of_waba = numbers.all().iter().filter(|m| m.waba_id == waba_id);
        let Some(access_token) = of_waba.find_map(|m| secret(&m.token_key)) else {
            tracing::warn!(waba = %waba_id, "no number of this WABA has its token");
            return Err(config::ConfigError::Missing {
                name: config::WHATSAPP_ACCESS_TOKEN,
                consequence: "a WABA of the numbers registry has no number whose token_key is in the secret store; its templates can be neither synced nor managed",
            });
        };
        Ok(TemplateSyncConfig {
            base_url,
            version,
            waba_id: waba_id.to_string(),
            access_token,
            timeout: Duration::from_secs(15),
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        })
    }

    /// `{base}/{version}/{waba-id}/message_templates`.
    pub fn templates_url(&self) -> String {
        format!(
            "{}/{}/{}/message_templates",
            self.base_url.trim_end_matches('/'),
            self.version.trim_matches('/'),
            self.waba_id
        )
    }
}

/// Why a sync stopped. Pages applied before the failure stay applied (each template's record
/// is correct on its own); the next sync completes the rest.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The Graph API refused or did not answer; classified like the sender's failures.
    #[error("Graph API: {}", .0.reason())]
    Graph(SendFailure),
    #[error("a Graph API answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {0} pages of templates")]
    TooManyPages(usize),
    #[error("unexpected template list: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Whether a later attempt may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Graph(f) => f.is_retryable(),
            SyncError::Store(e) => e.is_retryable(),
            SyncError::TooLarge { .. } | SyncError::TooManyPages(_) | SyncError::Invalid(_) => {
                false
            }
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub pages: usize,
    /// Templates recorded (category, parameter count, status).
    pub templates: usize,
    /// Of those, how many had their status written (the rest kept a newer webhook status).
    pub statuses_written: usize,
    /// Items without a name or a language.
    pub skipped: usize,
}

/// Where the sync reads pages of templates from: the Graph API client of `wabridge-graph`
/// (`GET /{waba-id}/message_templates`), or a fake in tests.
#[async_trait::async_trait]
pub trait TemplateSource: Send + Sync {
    /// Fetches one page (`after` = the cursor of the previous page's end).
    async fn fetch_page(&self, after: Option<&str>) -> Result<Page, SyncError>;
}

/// The pages of Meta's list, one request at a time, following `paging.cursors.after`.
pub struct Pages<'a> {
    sync: &'a TemplateSync,
    after: Option<String>,
    fetched: usize,
    done: bool,
}

impl Pages<'_> {
    /// The next page; `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Page>, SyncError> {
        if self.done {
            return Ok(None);
        }
        if self.fetched == self.sync.config.max_pages {
            return Err(SyncError::TooManyPages(self.sync.config.max_pages));
        }
        let page = self.sync.fetch_page(self.after.as_deref()).await?;
        self.fetched += 1;
        match &page.next_after {
            None => self.done = true,
            Some(next) if self.after.as_deref() == Some(next.as_str()) => {
                return Err(SyncError::Invalid(
                    "the paging cursor did not advance".into(),
                ))
            }
            Some(next) => self.after = Some(next.clone()),
        }
        Ok(Some(page))
    }
}

/// The sync: one per process, cheap to clone.
#[derive(Clone)]
pub struct TemplateSync {
    source: std::sync::Arc<dyn TemplateSource>,
    config: std::sync::Arc<TemplateSyncConfig>,
}

impl std::fmt::Debug for TemplateSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("TemplateSync")
            .field("url", &self.config.templates_url())
            .finish()
    }
}

impl TemplateSync {
    pub fn new(
        config: TemplateSyncConfig,
        source: std::sync::Arc<dyn TemplateSource>,
    ) -> TemplateSync {
        TemplateSync {
            source,
            config: std::sync::Arc::new(config),
        }
    }

    pub fn config(&self) -> &TemplateSyncConfig {
        &self.config
    }

    /// Fetches one page (`after` = the cursor of the previous page's end).
    pub async fn fetch_page(&self, after: Option<&str>) -> Result<Page, SyncError> {
        self.source.fetch_page(after).await
    }

    /// Reads every page and records each template in `registry`. `now_ms` gives the clock
    /// (Unix ms) the observations are stamped with.
    pub async fn sync_with_clock(
        &self,
        registry: &TemplateRegistry,
        now_ms: impl Fn() -> i64,
    ) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        let mut pages = self.pages();
        loop {
            let observed_at = now_ms() - OBSERVATION_SLACK_MS;
            let Some(page) = pages.next().await? else {
                // Complete: from now on a template this registry lacks is one the WABA lacks.
                registry.mark_synced(now_ms()).await?;
                return Ok(report);
            };
            report.pages += 1;
            report.skipped += page.skipped;
            for t in &page.templates {
                let written = registry.apply_synced(t, observed_at).await?;
                report.templates += 1;
                report.statuses_written += usize::from(written);
            }
        }
    }

    /// Every template Meta lists, every page (`templates plan`).
    pub async fn list_all(&self) -> Result<Vec<RemoteTemplate>, SyncError> {
        let mut out = Vec::new();
        let mut pages = self.pages();
        while let Some(page) = pages.next().await? {
            out.extend(page.templates);
        }
        Ok(out)
    }

    /// Walks the pages, bounded by [`TemplateSyncConfig::max_pages`].
    pub fn pages(&self) -> Pages<'_> {
        Pages {
            sync: self,
            after: None,
            fetched: 0,
            done: false,
        }
    }

    /// [`TemplateSync::sync_with_clock`] on the system clock.
    pub async fn sync(&self, registry: &TemplateRegistry) -> Result<SyncReport, SyncError> {
        self.sync_with_clock(registry, crate::clock::now_ms).await
    }
}

/// Syncs every WABA in turn (`syncs`: one per WABA, [`TemplateSyncConfig::per_waba`]; or the
/// implicit number's one), each into its own registry of `registries`. A WABA that fails does
/// not stop the next one. Each WABA id with its result, in order.
pub async fn sync_each(
    syncs: &[TemplateSync],
    registries: &TemplateRegistries,
) -> Vec<(String, Result<SyncReport, SyncError>)> {
    let mut out = Vec::with_capacity(syncs.len());
    for sync in syncs {
        let waba = sync.config().waba_id.clone();
        let result = sync.sync(&registries.of(&waba)).await;
        out.push((waba, result));
    }
    out
}

#[cfg(test)]
mod tests;
