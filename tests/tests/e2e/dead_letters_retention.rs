//! How long the effects ledger remembers what a dead letter (or any redelivery) might come back
//! to, on DynamoDB (moto's server): every ledger and status item carries the table's TTL
//! attribute `expires_at` = last write + the retention (default 30 days, longer than a message
//! can spend on its queue plus its DLQ), so the table does not grow without bound. The SQLite
//! ledger's purge is covered by `wabridge-core`'s unit tests (`sqlite::ledger`, `sqlite::dedupe`).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use wabridge_aws::dynamo::ledger::{DynamoLedger, FAMILY, STATUS_FAMILY};
use wabridge_aws::dynamo::{now_epoch, pk, EXPIRES_AT, PK, SINGLE_SK, SK};
use wabridge_core::config::DEFAULT_LEDGER_RETENTION_DAYS;
use wabridge_core::ledger::{Claim, Ledger};
use wabridge_tests::{create_table, require_aws, unique_name, Aws};

const DAY: i64 = 86_400;

async fn expires_at(aws: &Aws, table: &str, family: &str, id: &str) -> i64 {
    let key = HashMap::from([
        (PK.to_string(), AttributeValue::S(pk(family, id))),
        (SK.to_string(), AttributeValue::S(SINGLE_SK.to_string())),
    ]);
    let item = aws
        .dynamo
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("{family}#{id} exists"));
    item.get(EXPIRES_AT)
        .unwrap_or_else(|| panic!("{family}#{id} carries {EXPIRES_AT}: {item:?}"))
        .as_n()
        .unwrap()
        .parse()
        .unwrap()
}

fn assert_about(actual: i64, expected: i64, what: &str) {
    assert!(
        (actual - expected).abs() <= 5,
        "{what}: expires_at {actual}, expected about {expected}"
    );
}

#[tokio::test]
async fn dynamo_ledger_items_expire_after_the_retention() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("ledger-ttl")).await;
    assert_eq!(DEFAULT_LEDGER_RETENTION_DAYS, 30);
    let ledger = DynamoLedger::new(aws.dynamo.clone(), &table);
    let lease = Duration::from_secs(60);

    assert_eq!(
        ledger.claim("ev1#activity", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    let default = 30 * DAY;
    assert_about(
        expires_at(&aws, &table, FAMILY, "ev1#activity").await,
        now_epoch() + default,
        "claimed",
    );
    ledger.confirm("ev1#activity").await.unwrap();
    assert_about(
        expires_at(&aws, &table, FAMILY, "ev1#activity").await,
        now_epoch() + default,
        "confirmed",
    );
    assert_eq!(
        ledger.claim("ev1#activity", lease).await.unwrap(),
        Claim::Done
    );
    assert!(ledger.advance_status("wamid.X", 2).await.unwrap());
    assert_about(
        expires_at(&aws, &table, STATUS_FAMILY, "wamid.X").await,
        now_epoch() + default,
        "status",
    );

    // A configured retention applies to every write.
    let short = DynamoLedger::new(aws.dynamo.clone(), &table)
        .with_retention(Duration::from_secs(2 * DAY as u64));
    short.claim("ev2#contact", lease).await.unwrap();
    short.release("ev2#contact").await.unwrap();
    assert_about(
        expires_at(&aws, &table, FAMILY, "ev2#contact").await,
        now_epoch() + 2 * DAY,
        "released, 2-day retention",
    );
}
