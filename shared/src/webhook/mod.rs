//! The WhatsApp webhook: typed model and the splitter. Filled in by the ingest work.
