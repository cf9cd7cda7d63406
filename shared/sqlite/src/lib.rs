//! The embedded engine: every port over one SQLite file.
//!
//! [`Db`] owns the file: one writer thread doing group commit (many callers' writes in one
//! transaction, one fsync) and a small pool of read connections. The adapters share it:
//! [`SqliteDedupe`], [`SqliteQueue`] (named queues with dead letters), [`SqliteInbox`] (dedupe +
//! enqueue + mark in one atomic write) and [`SqliteRecords`] (the local CRM store).
//!
//! May depend on `wabridge-core` (the ports it implements) and rusqlite with a bundled SQLite;
//! never on the AWS engine, a CRM adapter or an HTTP client.

pub mod alerts;
pub mod attribution;
pub mod audit;
pub mod checkpoint;
pub mod consent;
pub mod conversations;
pub mod db;
pub mod dedupe;
pub mod deliveries;
pub mod engine;
pub mod erasure;
pub mod identity;
pub mod inbox;
pub mod ledger;
pub mod media_files;
pub mod media_index;
pub mod media_uploads;
pub mod oauth_tokens;
pub mod queue;
pub mod recent;
pub mod records;
pub mod retention;
pub mod sends;
pub mod templates;
#[cfg(test)]
mod testing;
pub mod window;

pub use alerts::SqliteAlerts;
pub use audit::SqliteAudit;
pub use checkpoint::CheckpointPolicy;
pub use consent::SqliteConsent;
pub use conversations::SqliteConversations;
pub use db::{Clock, Db, DbOptions};
pub use dedupe::SqliteDedupe;
pub use deliveries::SqliteDeliveries;
pub use engine::SqliteEngine;
pub use erasure::SqliteErasure;
pub use inbox::SqliteInbox;
pub use media_files::LocalMediaStore;
pub use media_index::SqliteMediaIndex;
pub use media_uploads::SqliteMediaUploads;
pub use oauth_tokens::SqliteTokenStore;
pub use queue::{SqliteQueue, DEFAULT_MAX_RECEIVES, EVENTS_QUEUE, MEDIA_QUEUE, SENDS_QUEUE};
pub use recent::MergePolicy;
pub use records::{Record, SqliteRecords};
pub use retention::SqliteContentPurge;
pub use sends::SqliteSends;
pub use templates::{SqliteTemplateHistory, SqliteTemplates};
pub use window::SqliteWindow;
