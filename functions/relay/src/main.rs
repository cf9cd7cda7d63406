//! `relay` Lambda: one destination's queue (`docs/destinations.md`). JSON logs, settings, the
//! destination's secret and clients once per cold start, then SQS batches.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wabridge_core::telemetry::init_lambda_tracing();
    let app = Arc::new(relay::cold_start().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let app = app.clone();
        let deadline = wabridge_aws::lambda::work_deadline(event.context.deadline);
        async move { Ok::<_, Error>(relay::handle(&app, event.payload, deadline).await) }
    }))
    .await
}
