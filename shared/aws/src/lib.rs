//! The distributed engine: DynamoDB (single-table stores, dedupe, ledger), SQS (queues with
//! dead letters), Secrets Manager, and the glue between Lambda's SQS event source and the
//! core's queue handlers ([`lambda`]).
//!
//! May depend on `wabridge-core` (the ports it implements) and the AWS SDK; never on SQLite,
//! a CRM adapter or reqwest.

pub mod dynamo;
pub mod emf;
pub mod engine;
#[cfg(feature = "http")]
pub mod function_url;
mod https;
pub mod lambda;
pub mod s3;
#[cfg(feature = "media")]
pub mod s3_media;
pub mod s3_media_links;
pub mod s3_media_uploads;
pub mod sdk;
pub mod secrets;
mod signed;
pub mod sns;
pub mod sqs;
