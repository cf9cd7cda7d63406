//! Adapters: the ports implemented over SQLite (embedded engine) and DynamoDB/SQS (AWS engine).
