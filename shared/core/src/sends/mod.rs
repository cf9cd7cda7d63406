//! Outgoing messages: the `POST /sends` request, policy guards, the send store and its state
//! machine, throughput limits, and the Graph API client the sender uses.

pub mod attachment;
pub mod classify;
pub mod error;
pub mod events;
pub mod graph;
pub mod hooks;
pub mod language;
pub mod media;
pub mod policy;
pub mod ratelimit;
pub mod request;
pub mod sender;
mod sender_alerts;
pub mod service;
pub mod status;
pub mod store;
pub mod template_sync;
