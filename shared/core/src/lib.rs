//! wabridge core: the WhatsApp webhook model, the domain (identity, consent, the 24-hour window,
//! templates, records, mapping and validation, attribution), the ports (narrow traits: queue,
//! stores, CRM, the Graph API's message and template sources, the attribution routes) and the
//! services written against them (ingest, crm-sync, sends).
//!
//! May depend on pure crates only (serde, thiserror, phonenumber, hmac/sha2, tracing, tokio's
//! sync and time): no SQLite, no AWS SDK, no HTTP client or server. The engines
//! (`wabridge-sqlite`, `wabridge-aws`), the CRM adapters (`wabridge-crm`) and the Graph API
//! client (`wabridge-graph`) implement its ports; every function is a thin wiring of them.

pub mod account;
pub mod agents;
pub mod alerts;
pub mod api;
pub mod attribution;
pub mod audit;
pub mod auth;
pub mod breaker;
pub mod calls;
pub mod changes;
pub mod claim_check;
pub mod clock;
pub mod config;
pub mod consent;
pub mod consumer;
pub mod conversations;
pub mod crm;
pub mod dedupe;
pub mod erasure;
pub mod error;
pub mod event;
pub mod http;
pub mod identity;
pub mod inbox;
pub mod ingest;
pub mod ledger;
pub mod mapping;
pub mod media;
pub mod numbers;
pub mod oauth;
pub mod queue;
pub mod records;
pub mod redact;
pub mod retention;
pub mod retry;
pub mod sends;
pub mod signature;
pub mod sync;
pub mod telemetry;
pub mod template_files;
pub mod templates;
pub mod webhook;
pub mod window;
