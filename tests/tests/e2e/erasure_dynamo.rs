//! Erasure on the distributed engine, over moto: ingest's and crm-sync's Lambda handlers take
//! every sample webhook; João also has a send and a consent. `DELETE /contacts/{id}` on
//! ingest's Function URL (admin key) erases him: afterwards no item of the table holds his
//! numbers, BSUIDs, texts, send content or consent evidence, his contact id is only in the
//! erasure marker, every item family of the table says how an erasure reaches it, the CRM gets
//! the erasure record, and a repeat finds the same erasure.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wabridge_aws::dynamo::consent::DynamoConsent;
use wabridge_aws::dynamo::erasure::FAMILIES;
use wabridge_aws::dynamo::sends::DynamoSends;
use wabridge_aws::dynamo::PK;
use wabridge_core::clock::now_ms;
use wabridge_core::consent::{
    ConsentAction, ConsentCategory, ConsentEntry, ConsentSource, ConsentStore,
};
use wabridge_core::ingest::IngestConfig;
use wabridge_core::sends::store::{SendRecord, SendState, SendStore};
use wabridge_crm::webhook::WebhookCrm;
use wabridge_tests::stores::{bytes_contain, dynamo_items, item_text, message_texts};
use wabridge_tests::{queue_depth, require_aws};

use crate::claim_check_s3::{handle, post_webhook, setup, Setup, APP_SECRET};
use crate::infra_e2e::crm_receiver::CrmReceiver;
use crate::infra_e2e::lambda_service::{call_ingest, lambda_request};
use crate::local_gateway::clean_logs::samples;

const ADMIN: &str = "erasure-dynamo-admin-key-31f0";
const WA_ID: &str = "5511987654321";
const KEY: &str = "phone:551187654321";

fn ingest(s: &Setup) -> wabridge_core::api::Api {
    let keys = json!([{"id": "ops", "scopes": ["admin"], "key": ADMIN}]).to_string();
    let lookup = |name: &str| match name {
        "WHATSAPP_APP_SECRET" => Some(APP_SECRET.to_string()),
        "WABRIDGE_API_KEYS" => Some(keys.clone()),
        _ => None,
    };
    ingest::build_api(
        &s.aws.config,
        ingest::Settings {
            table: s.table.clone(),
            events_queue_url: s.queues.url.clone(),
            ingest: IngestConfig::from_lookup(lookup).unwrap(),
            sends_queue_url: None,
            api_keys: Arc::new(wabridge_core::auth::ApiKeys::from_lookup(lookup).unwrap()),
            claim_check_bucket: Some(s.bucket.clone()),
            audit_retention: wabridge_tests::AUDIT_RETENTION,
            content_retention: wabridge_tests::CONTENT_RETENTION,
            template_languages: Default::default(),
            media_bucket: None,
            media_links: None,
            catalogues: Default::default(),
            conversation_idle_ms: 24 * 3_600_000,
            consent_scope: Default::default(),
        },
    )
}

async fn drain(s: &Setup, app: &crm_sync::App, for_at_most: Duration) {
    let deadline = Instant::now() + for_at_most;
    while Instant::now() < deadline && queue_depth(&s.aws.sqs, &s.queues.url).await != (0, 0) {
        let records = s.records().await;
        if !records.is_empty() {
            handle(app, records).await;
        }
    }
}

async fn erase(api: &wabridge_core::api::Api, id: &str) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN}");
    let req = lambda_request(
        "DELETE",
        &format!("/contacts/{id}"),
        &[("authorization", &auth)],
        b"",
    );
    let (status, body) = call_ingest(api, req).await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_in_no_item_of_the_table_and_the_crm_is_told() {
    let s = setup(require_aws!()).await;
    let receiver = CrmReceiver::start().await;
    let crm = WebhookCrm::new(&receiver.url, "whsec_c2VjcmV0", Duration::from_secs(5)).unwrap();
    let app = s.crm_sync_with(Arc::new(crm));
    let api = ingest(&s);
    let mut his = BTreeSet::new();
    for (file, body) in samples() {
        let payload: Value = serde_json::from_slice(&body).unwrap();
        for entry in payload["entry"].as_array().into_iter().flatten() {
            for change in entry["changes"].as_array().into_iter().flatten() {
                for m in change["value"]["messages"].as_array().into_iter().flatten() {
                    if m["from"] == WA_ID {
                        message_texts(m, &mut his);
                    }
                }
            }
        }
        let (status, answer) = post_webhook(&api, &body).await;
        assert_eq!(status, 200, "{}: {answer}", file.display());
    }
    drain(&s, &app, Duration::from_secs(30)).await;
    let now = now_ms();
    DynamoSends::new(s.aws.dynamo.clone(), s.table.clone())
        .create(&SendRecord {
            id: "snd_joao".into(),
            idempotency_key: Some("crm-joao-1".into()),
            request_hash: "h".into(),
            request: json!({"to": format!("+{WA_ID}"), "contact": KEY, "type": "template",
                "name": "order_update", "language": "pt_BR", "parameters": ["Pedido de João 8841"]}),
            contact: KEY.into(),
            state: SendState::Queued,
            error: None,
            wamid: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    DynamoConsent::new(s.aws.dynamo.clone(), s.table.clone())
        .append(&ConsentEntry {
            id: "c-joao".into(),
            contact: KEY.into(),
            to: format!("+{WA_ID}"),
            category: ConsentCategory::Marketing,
            action: ConsentAction::OptIn,
            source: ConsentSource::WebForm,
            evidence: Some("formulario-joao-loja-centro".into()),
            at: now,
            recorded_at: now,
            number: None,
        })
        .await
        .unwrap();

    let (status, erased) = erase(&api, "%2B55%2011%208765-4321").await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["already_erased"], false);
    let contact_id = erased["contact_id"]
        .as_str()
        .expect("João had a contact")
        .to_string();
    for family in [
        "identity", "send", "consent", "inbound", "conv", "convhead", "convlast", "convmsg",
    ] {
        assert!(
            erased["removed"][family].as_u64().unwrap_or(0) > 0,
            "{family}: {erased}"
        );
    }

    let items = dynamo_items(&s.aws.dynamo, &s.table).await;
    let mut needles: Vec<String> = his.into_iter().collect();
    needles.extend(
        [
            WA_ID,
            "551187654321",
            "Pedido de João 8841",
            "formulario-joao-loja-centro",
        ]
        .map(String::from),
    );
    let mut left = Vec::new();
    let mut families = BTreeSet::new();
    for item in &items {
        let pk = item[PK].as_s().unwrap().clone();
        let family = pk.split('#').next().unwrap().to_string();
        let text = format!("{pk}\n{}", item_text(item));
        for needle in &needles {
            if bytes_contain(text.as_bytes(), needle) {
                left.push(format!("{needle:?} in {pk}"));
            }
        }
        if family != "erased" && text.contains(&contact_id) {
            left.push(format!("the contact id in {pk}"));
        }
        families.insert(family);
    }
    assert!(
        left.is_empty(),
        "left after the erasure:\n{}",
        left.join("\n")
    );
    let known: BTreeSet<&str> = FAMILIES.iter().map(|(f, _)| *f).collect();
    let unknown: Vec<_> = families
        .iter()
        .filter(|f| !known.contains(f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "item families no erasure reaches (add to FAMILIES): {unknown:?}"
    );
    assert!(
        families.contains("identity"),
        "others' identities stay: {families:?}"
    );
    assert!(families.contains("tombstone") && families.contains("erased"));

    // The tombstone reads as an opt-out; a repeat finds the same erasure.
    let consent = DynamoConsent::new(s.aws.dynamo.clone(), s.table.clone());
    assert!(consent.erased_at(KEY).await.unwrap().is_some());
    let (status, repeat) = erase(&api, WA_ID).await;
    assert_eq!(status, 200, "{repeat}");
    assert_eq!(
        (repeat["already_erased"].as_bool(), &repeat["erasure_id"]),
        (Some(true), &erased["erasure_id"])
    );
    let (status, _) = erase(&api, "%2B5491155554444").await;
    assert_eq!(status, 404);

    // The CRM gets the erasure record from crm-sync.
    drain(&s, &app, Duration::from_secs(30)).await;
    let told = receiver
        .calls()
        .iter()
        .any(|c| c.body.contains("\"kind\":\"erasure\"") && c.body.contains(&contact_id));
    assert!(told, "the CRM got the erasure record");
}
