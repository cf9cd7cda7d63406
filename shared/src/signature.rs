//! Webhook signatures (`X-Hub-Signature-256`). Filled in by the ingest work.
