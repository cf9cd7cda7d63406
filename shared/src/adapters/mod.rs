//! Adapters: the ports implemented over SQLite (embedded engine) and DynamoDB/SQS (AWS engine).
pub mod aws;
pub mod dynamo;
pub mod sqlite;
pub mod sqs;
