//! The ingest service: verify, split, dedupe, enqueue. Filled in by the ingest work.
