//! Routing of the HTTP API shared by the Lambda and the local gateway. Filled in by the ingest work.
