//! Adapters: the ports implemented over SQLite (embedded engine) and DynamoDB/SQS (AWS engine).
pub mod aws;
pub mod dynamo;
pub mod sqs;
pub mod sqlite;
