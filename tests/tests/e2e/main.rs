//! End-to-end tests against real components (moto, Prism, SQLite, the wabridge binary).
//! One test binary: each module links the AWS SDK once instead of once per file, which keeps
//! a clean build's disk use and link time down.

mod attribution_cli;
mod attribution_dynamo;
mod aws_ingest;
mod aws_lambda_ingest;
mod aws_secrets;
mod changes_calls_aws;
mod claim_check_s3;
mod conversations_aws;
mod conversations_sla_aws;
mod crm_aws;
mod crm_local_serve;
mod dead_letters_retention;
mod dead_letters_sqs;
mod destinations_serve;
mod erasure_dynamo;
mod infra_e2e;
mod infra_template;
mod lambda_logs;
mod layering;
mod local_gateway;
mod media_aws_flow;
mod media_bench;
mod media_fetch;
mod media_lambda;
mod media_out;
mod media_pipeline;
mod media_s3;
mod media_uploads_url;
mod numbers_aws;
mod numbers_aws_registry;
mod numbers_aws_sends;
mod numbers_media;
mod numbers_sends;
mod numbers_serve;
mod oauth_dynamo;
mod retention_dynamo;
mod sends_contract;
mod sends_dynamo;
mod sends_lambda;
mod sends_media_lambda;
mod sends_report;
mod sends_serve;
mod templates_files;
mod templates_sync;
