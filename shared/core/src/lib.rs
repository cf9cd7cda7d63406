//! wabridge core: the WhatsApp webhook model, domain types, ports (narrow traits) and the
//! adapters that implement them (SQLite for the embedded engine; DynamoDB and SQS for AWS).
//!
//! Every function (the Lambdas and the local `wabridge` binary) is a thin wiring of adapters to
//! the services defined here.

pub mod api;
pub mod attribution;
pub mod config;
pub mod consent;
pub mod consumer;
pub mod crm;
pub mod dedupe;
pub mod error;
pub mod event;
pub mod http;
pub mod identity;
pub mod inbox;
pub mod ingest;
pub mod ledger;
pub mod mapping;
pub mod queue;
pub mod records;
pub mod redact;
pub mod sends;
pub mod signature;
pub mod sync;
pub mod telemetry;
pub mod templates;
pub mod webhook;
pub mod window;
