//! The OAuth token provider over the DynamoDB store (moto, through the real SDK): the same
//! scenarios as over SQLite (`wabridge_tests::oauth`), two instances on one table item. What
//! would break them: a write that is not conditional on the version, a lease that is not
//! exclusive or never released, a lease a crashed holder left never taken over.

use std::sync::Arc;

use wabridge_aws::dynamo::oauth_tokens::DynamoTokenStore;
use wabridge_core::oauth::TokenStore;
use wabridge_tests::{create_table, require_aws, unique_name};

#[tokio::test]
async fn dynamo_tokens_refresh_once_per_expiry_and_leases_are_taken_over() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("oauth")).await;
    let store = |connection: &'static str| {
        let (client, table) = (aws.dynamo.clone(), table.clone());
        move || -> Arc<dyn TokenStore> {
            Arc::new(DynamoTokenStore::new(
                client.clone(),
                table.clone(),
                connection,
            ))
        }
    };
    wabridge_tests::oauth::one_refresh_per_expiry(store("kommo")).await;
    wabridge_tests::oauth::a_crashed_holders_lease_is_taken_over(store("zoho")).await;
}
