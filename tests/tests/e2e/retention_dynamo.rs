//! Content retention on the distributed engine, over moto: ingest's and crm-sync's Lambda
//! handlers take every sample webhook, and sends are stored with their content. Every DynamoDB
//! item holding a message text carries a TTL no later than the retention; once DynamoDB's TTL
//! has swept the table as it would after the retention (moto does not sweep: the test deletes
//! what has expired by then, as DynamoDB does), no text is left, and identities and sends stay.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use wabridge_aws::dynamo::sends::DynamoSends;
use wabridge_aws::dynamo::{EXPIRES_AT, PK, SK};
use wabridge_core::clock::now_ms;
use wabridge_core::retention::PURGED;
use wabridge_core::sends::store::{SendRecord, SendState, SendStore};
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::stores::{bytes_contain, dynamo_items, item_text, message_texts};
use wabridge_tests::{queue_depth, require_aws};

use crate::claim_check_s3::{handle, post_webhook, setup};
use crate::infra_e2e::crm_receiver::CrmReceiver;
use crate::local_gateway::clean_logs::samples;

const RETENTION: Duration = Duration::from_secs(30 * 86_400);
const SEND_TEXT: &str = "Pedido A-17 para Rosalía, Rua Augusta 1200";

type Item = std::collections::HashMap<String, AttributeValue>;

fn expires_at(item: &Item) -> Option<i64> {
    item.get(EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

fn family(item: &Item) -> String {
    let pk = item
        .get(PK)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    pk.split('#').next().unwrap_or_default().to_string()
}

/// DynamoDB's TTL sweep as it stands at `at` (epoch seconds): every item expired by then goes.
async fn sweep(aws: &wabridge_tests::Aws, table: &str, at: i64) {
    for item in dynamo_items(&aws.dynamo, table).await {
        if expires_at(&item).is_some_and(|e| e <= at) {
            aws.dynamo
                .delete_item()
                .table_name(table)
                .key(PK, item[PK].clone())
                .key(SK, item[SK].clone())
                .send()
                .await
                .unwrap();
        }
    }
}

fn send(id: &str, parameter: &str) -> SendRecord {
    let now = now_ms();
    SendRecord {
        id: id.into(),
        idempotency_key: Some(format!("key-{id}")),
        request_hash: "h".into(),
        request: json!({"to":"+5218187654321","contact":"+5218187654321","type":"template",
                        "name":"order_update","language":"es_MX","parameters":[parameter]}),
        contact: "+5218187654321".into(),
        state: SendState::Queued,
        error: None,
        wamid: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_items_expire_with_the_retention_and_nothing_else_holds_a_text() {
    let s = setup(require_aws!()).await;
    let receiver = CrmReceiver::start().await;
    let crm = WebhookCrm::new(&receiver.url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap();
    let app = s.crm_sync_with(Arc::new(crm));
    let api = s.ingest(Some(&s.bucket));
    let mut texts = BTreeSet::new();
    for (file, body) in samples() {
        message_texts(&serde_json::from_slice(&body).unwrap(), &mut texts);
        let (status, answer) = post_webhook(&api, &body).await;
        assert_eq!(status, 200, "{}: {answer}", file.display());
    }
    // The Lambda service's part, for 30 s or until the queue is empty (some events wait out a
    // backoff: what they hold stays on SQS, whose own retention ends it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && queue_depth(&s.aws.sqs, &s.queues.url).await != (0, 0) {
        let records = s.records().await;
        if !records.is_empty() {
            handle(&app, records).await;
        }
    }
    assert!(receiver.calls().len() > 10, "crm-sync wrote to the CRM");
    let sends =
        DynamoSends::new(s.aws.dynamo.clone(), s.table.clone()).with_content_retention(RETENTION);
    sends.create(&send("snd_ret1", SEND_TEXT)).await.unwrap();
    texts.insert(SEND_TEXT.into());
    let read = sends.get("snd_ret1").await.unwrap().unwrap();
    assert_eq!(
        read.request["parameters"][0], SEND_TEXT,
        "content reads back whole"
    );

    // Every item that holds a text ends within the retention.
    let holds = |item: &Item, text: &str| bytes_contain(item_text(item).as_bytes(), text);
    let end = wabridge_aws::dynamo::now_epoch() + RETENTION.as_secs() as i64 + 60;
    let items = dynamo_items(&s.aws.dynamo, &s.table).await;
    let mut holders = 0;
    for item in &items {
        for text in &texts {
            if holds(item, text) {
                holders += 1;
                assert!(
                    expires_at(item).is_some_and(|e| e <= end),
                    "{text:?} held by a {} item that outlives the retention",
                    family(item)
                );
            }
        }
    }
    assert!(holders >= 1, "the scan finds the send's content");
    let count = |items: &[Item], f: &str| items.iter().filter(|i| family(i) == f).count();
    let identities = count(&items, "identity");
    assert!(identities > 5, "the samples made identities");

    sweep(&s.aws, &s.table, end).await;
    let after = dynamo_items(&s.aws.dynamo, &s.table).await;
    let left: Vec<String> = after
        .iter()
        .flat_map(|item| {
            texts
                .iter()
                .filter(|t| holds(item, t))
                .map(|t| format!("{t:?} in {}", family(item)))
        })
        .collect();
    assert!(left.is_empty(), "content left after the sweep: {left:?}");
    assert_eq!(count(&after, "identity"), identities, "identities stay");
    let purged = sends
        .get("snd_ret1")
        .await
        .unwrap()
        .expect("the send stays");
    assert_eq!(purged.request[PURGED], true);
    assert_eq!(purged.request["name"], "order_update");
    assert!(purged.request.get("parameters").is_none());
}
