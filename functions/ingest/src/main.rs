//! `ingest` Lambda: sets up JSON logs, loads configuration, secrets and SDK clients once per
//! cold start, then serves Function URL / HTTP API v2 requests.

use std::sync::Arc;

use lambda_http::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        // CloudWatch stamps every line already.
        .without_time()
        .init();

    let api = Arc::new(ingest::cold_start().await?);
    lambda_http::run(service_fn(move |req| {
        let api = api.clone();
        async move { ingest::handle(&api, req).await }
    }))
    .await
}
