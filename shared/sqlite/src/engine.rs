//! [`SqliteEngine`]: the one way `wabridge serve`, the CLI and the tests build wabridge's
//! stores, queues and services over one SQLite file.

use std::sync::Arc;

use wabridge_core::attribution::AttributionConfig;
use wabridge_core::auth::ApiKeys;
use wabridge_core::consent::{ConsentScope, ConsentService};
use wabridge_core::conversations::Conversations;
use wabridge_core::crm::Crm;
use wabridge_core::error::StoreError;
use wabridge_core::mapping::Mapping;
use wabridge_core::sends::events::QueueEvents;
use wabridge_core::sends::hooks::SendingHooks;
use wabridge_core::sends::policy::Policy;
use wabridge_core::sends::service::Sends;
use wabridge_core::sync::CrmSync;
use wabridge_core::window::WindowService;

use crate::attribution::SqliteAttribution;
use crate::identity::SqliteIdentityStore;
use crate::ledger::SqliteLedger;
use crate::{
    Db, SqliteConsent, SqliteQueue, SqliteSends, SqliteTemplates, SqliteWindow, EVENTS_QUEUE,
    SENDS_QUEUE,
};

/// How long each kind of data is kept (see README's privacy section).
#[derive(Debug, Clone, Copy)]
pub struct Retentions {
    pub ledger: std::time::Duration,
    pub audit: std::time::Duration,
    pub content: std::time::Duration,
}

/// The embedded engine: every store and queue over one [`Db`]. Cheap to clone.
#[derive(Clone)]
pub struct SqliteEngine {
    pub db: Db,
    /// Whether an opt-out on one number holds for the others (`WABRIDGE_CONSENT_SCOPE`).
    pub consent_scope: ConsentScope,
}

impl SqliteEngine {
    pub fn new(db: Db) -> SqliteEngine {
        SqliteEngine {
            db,
            consent_scope: ConsentScope::default(),
        }
    }

    /// The send guards read consent in `scope` ([`ConsentScope`]).
    pub fn with_consent_scope(mut self, scope: ConsentScope) -> SqliteEngine {
        self.consent_scope = scope;
        self
    }

    /// The named queue (`events`, `sends`).
    pub fn queue(&self, name: &str) -> SqliteQueue {
        SqliteQueue::new(self.db.clone(), name)
    }

    /// The audit trail in the file, lines kept `retention` (the purger deletes them after:
    /// [`crate::SqliteDedupe::with_audit_purge`]).
    pub fn audit(&self, retention: std::time::Duration) -> crate::SqliteAudit {
        crate::SqliteAudit::new(self.db.clone()).with_retention(retention)
    }

    /// The purger `wabridge serve` runs hourly ([`crate::SqliteDedupe::spawn_purger`]): expired
    /// dedupe keys and consent markers, the ledger past `retention.ledger`, ended pair windows,
    /// audit lines past `retention.audit`, message content past `retention.content` (uploaded
    /// files' details too), expired media upload ids.
    pub fn purger(&self, clock: crate::Clock, retention: Retentions) -> crate::SqliteDedupe {
        crate::SqliteDedupe::with_clock(self.db.clone(), clock.clone())
            .with_ledger_purge(retention.ledger)
            .with_pair_window_purge()
            .with_consent_key_purge()
            .with_audit_purge(self.audit(retention.audit))
            .with_content_purge(retention.content)
            .with_media_upload_purge(retention.content)
    }

    /// The policy guards' stores: consent, template registry, 24-hour window.
    pub fn policy(&self) -> Policy {
        Policy {
            consent: ConsentService::new(Arc::new(SqliteConsent::new(self.db.clone())))
                .with_scope(self.consent_scope),
            templates: SqliteTemplates::registries(self.db.clone()),
            window: WindowService::new(Arc::new(SqliteWindow::new(self.db.clone()))),
            numbers: None,
        }
    }

    /// The sends service: accepted sends go on the `sends` queue; sends that end without a
    /// status webhook (and Meta's 131050 opt-outs) are reported on the `events` queue, which
    /// crm-sync turns into CRM records. `keys` guard the HTTP routes.
    pub fn sends(&self, keys: Arc<ApiKeys>) -> Sends {
        Sends::new(
            Arc::new(SqliteSends::new(self.db.clone())),
            Arc::new(self.queue(SENDS_QUEUE)),
            self.policy(),
            Arc::new(QueueEvents::new(Arc::new(self.queue(EVENTS_QUEUE)))),
            keys,
        )
    }

    /// Conversations over the file, closing after `idle_ms` without a message.
    pub fn conversations(&self, idle_ms: i64) -> Conversations {
        Conversations::new(
            Arc::new(crate::SqliteConversations::new(self.db.clone())),
            idle_ms,
        )
    }

    /// crm-sync over the file: identities, the effects ledger (kept `ledger_retention` by the
    /// purger), attribution, and the hooks of `sends` (delivery tracking, consent, window,
    /// template registry).
    pub async fn crm_sync(
        &self,
        crm: Arc<dyn Crm>,
        mapping: Mapping,
        attribution: AttributionConfig,
        sends: Arc<Sends>,
    ) -> Result<CrmSync, StoreError> {
        let attribution_store = SqliteAttribution::open(self.db.clone()).await?;
        Ok(CrmSync::new(
            Arc::new(SqliteIdentityStore::new(self.db.clone())),
            Arc::new(SqliteLedger::new(self.db.clone())),
            crm,
            Arc::new(mapping),
        )
        .with_attribution(Arc::new(attribution_store), attribution)
        .with_hooks(Arc::new(SendingHooks::new(sends)))
        .with_alerts(Arc::new(self.alerts())))
    }

    /// Business alerts over the file: warn lines and the state `wabridge report health` reads.
    pub fn alerts(&self) -> crate::SqliteAlerts {
        crate::SqliteAlerts::new(self.db.clone())
    }
}
