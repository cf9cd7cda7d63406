//! `sender` Lambda: JSON logs, clients and configuration once per cold start, then SQS batches
//! (and the hourly template sync, see `sender::invoke`).

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wabridge_core::telemetry::init_lambda_tracing();
    let app = Arc::new(sender::cold_start().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        let deadline = wabridge_aws::lambda::work_deadline(event.context.deadline);
        async move {
            sender::invoke(&app, event.payload, deadline)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
