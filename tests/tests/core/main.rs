//! Integration tests of the core library over real SQLite files and local HTTP servers.
//! One test binary, so the dependency tree is linked once.

mod alerts;
mod attribution_conversions;
mod attribution_links_numbers;
mod attribution_sqlite;
mod changes_calls;
mod conversations;
mod conversations_sla;
mod crm_attribution;
mod crm_conformance;
mod crm_http;
mod crm_sync;
mod oauth_tokens;
mod outage;
mod sends_burst;
mod sends_media;
mod sends_sqlite;
mod webhook_ingest;
mod webhook_samples;
mod webhook_spec_examples;
