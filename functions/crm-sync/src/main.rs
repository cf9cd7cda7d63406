//! `crm-sync` Lambda: JSON logs, clients and configuration once per cold start, then SQS batches
//! (and the schedule's conversation sweeps, `{"sweep": true}`).

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wabridge_core::telemetry::init_lambda_tracing();
    let (app, sweeper) = crm_sync::cold_start().await?;
    let (app, sweeper) = (Arc::new(app), Arc::new(sweeper));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (app, sweeper) = (app.clone(), sweeper.clone());
        let deadline = wabridge_aws::lambda::work_deadline(event.context.deadline);
        async move {
            if crm_sync::is_sweep(&event.payload) {
                let report = crm_sync::sweep(&sweeper).await?;
                return Ok::<_, Error>(serde_json::to_value(report)?);
            }
            let batch: SqsEvent = serde_json::from_value(event.payload)?;
            let response = crm_sync::handle(&app, batch, deadline).await;
            Ok(serde_json::to_value(response)?)
        }
    }))
    .await
}
