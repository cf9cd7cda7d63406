//! `ingest` Lambda: sets up JSON logs, loads configuration, secrets and SDK clients once per
//! cold start, then serves Function URL / HTTP API v2 requests.

use std::sync::Arc;

use lambda_http::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wabridge_core::telemetry::init_lambda_tracing();

    let api = Arc::new(ingest::cold_start().await?);
    lambda_http::run(service_fn(move |req| {
        let api = api.clone();
        async move { ingest::handle_reloading(&api, req).await }
    }))
    .await
}
