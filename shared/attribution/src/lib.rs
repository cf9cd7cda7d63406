//! The HTTP side of attribution: `POST /links` (tracked `wa.me` links with their QR codes) and
//! `POST /conversions` (conversion events back to Meta's Conversions API).
//!
//! Its own crate because it is the only part of attribution that needs a QR encoder and an
//! HTTP client: the domain (referrals, touches, UTM, reports, the store port) stays in
//! `wabridge_core::attribution`, where crm-sync uses it, so the ingest Lambda links neither.
//!
//! May depend on `wabridge-core` and `wabridge-graph`; never on an engine.

pub mod conversions;
pub mod qr;
pub mod service;

pub use service::AttributionService;
