//! The attribution store over DynamoDB (moto's server through the real AWS SDK): the same
//! engine as over SQLite — link round trip, idempotent events, concurrent messages of one
//! contact (TransactWriteItems with version conditions), unknown codes, the conversions ledger.

use std::sync::Arc;

use serde_json::json;
use wabridge_aws::dynamo::attribution::DynamoAttribution;
use wabridge_core::attribution::report::{parse_since, Format};
use wabridge_core::attribution::store::{AttributionStore, Claim, ConversionRow, Credit};
use wabridge_core::attribution::{
    on_inbound_message, AttributionConfig, CodeStatus, Inbound, LinkRequest,
};
use wabridge_tests::{create_table, require_aws, require_moto, unique_name};

const T0: i64 = 1_763_000_000_000;

#[tokio::test]
async fn attribution_engine_over_dynamodb() {
    let aws = require_aws!();
    let table = create_table(&aws.dynamo, &unique_name("attr")).await;
    let store = Arc::new(DynamoAttribution::new(aws.dynamo.clone(), &table));
    let config = Arc::new(AttributionConfig::default());

    // Link round trip.
    let req = LinkRequest {
        utm_source: Some("newsletter".into()),
        utm_medium: Some("email".into()),
        utm_campaign: Some("buen_fin".into()),
        phone_number: Some("+525512345678".into()),
        ..Default::default()
    };
    let spec = req.validate(&config).unwrap();
    let l = store.create_link(&spec, T0).await.unwrap();
    assert!(
        !store.insert_link(&l).await.unwrap(),
        "a taken code is refused"
    );
    assert_eq!(store.link(&l.code).await.unwrap().unwrap(), l);
    let msg = Inbound {
        event_id: "e1",
        contact_id: "c1",
        at: T0 + 1000,
        text: Some(&l.text),
        referral: None,
    };
    let out = on_inbound_message(store.as_ref(), &config, &msg)
        .await
        .unwrap();
    assert_eq!(out.code_status, Some(CodeStatus::Known));
    assert_eq!(
        out.customer_text.as_deref(),
        Some("Hola, quiero información")
    );
    assert_eq!(out.records.len(), 3);
    assert_eq!(out.records[0].to_value()["utm_campaign"], "buen_fin");
    // Redelivery: same records, no second commit.
    assert_eq!(
        on_inbound_message(store.as_ref(), &config, &msg)
            .await
            .unwrap(),
        out
    );
    assert_eq!(store.contact("c1").await.unwrap().unwrap().version, 1);

    // A later ad click moves only the last touch.
    let referral: wabridge_core::attribution::Referral = wabridge_tests::model(
        json!({"source_url": "https://www.instagram.com/p/1", "source_id": "77", "source_type": "post", "ctwa_clid": "clid"}),
    );
    let msg = Inbound {
        event_id: "e2",
        contact_id: "c1",
        at: T0 + 86_400_000,
        text: Some("hi"),
        referral: Some(&referral),
    };
    let out = on_inbound_message(store.as_ref(), &config, &msg)
        .await
        .unwrap();
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].to_value()["touch"], "last");
    assert_eq!(out.records[0].to_value()["utm_source"], "instagram");

    // Unknown code.
    let msg = Inbound {
        event_id: "e3",
        contact_id: "c2",
        at: T0,
        text: Some("[ref:ZZZZZZ] hola"),
        referral: None,
    };
    assert_eq!(
        on_inbound_message(store.as_ref(), &config, &msg)
            .await
            .unwrap()
            .code_status,
        Some(CodeStatus::Unknown)
    );

    // Two workers read the same contact version and both try to commit: the version condition
    // lets one through and reports a conflict to the other (which on_inbound_message recomputes).
    // (Done step by step: moto does not serialise concurrent TransactWriteItems the way DynamoDB
    // does, so a racing test would test moto.)
    use wabridge_core::attribution::store::Commit;
    use wabridge_core::attribution::touch::decide;
    let before = store.contact("c1").await.unwrap();
    let a = Inbound {
        event_id: "w1",
        contact_id: "c1",
        at: T0 + 2 * 86_400_000,
        text: None,
        referral: None,
    };
    let b = Inbound {
        event_id: "w2",
        contact_id: "c1",
        at: T0 + 2 * 86_400_000 + 1,
        text: None,
        referral: None,
    };
    let (sa, ea) = decide(&config, before.as_ref(), &a, None, None);
    let (sb, eb) = decide(&config, before.as_ref(), &b, None, None);
    assert_eq!(store.commit(&sa, &ea).await.unwrap(), Commit::Done);
    assert_eq!(
        store.commit(&sb, &eb).await.unwrap(),
        Commit::VersionConflict
    );
    assert!(matches!(
        store.commit(&sa, &ea).await.unwrap(),
        Commit::AlreadyProcessed(_)
    ));
    assert!(store.processed("w2").await.unwrap().is_none());
    on_inbound_message(store.as_ref(), &config, &b)
        .await
        .unwrap();
    assert_eq!(
        store.contact("c1").await.unwrap().unwrap().version,
        sa.version + 1
    );

    // Conversions ledger.
    let row = ConversionRow {
        contact_id: "c1".into(),
        ctwa_clid: Some("clid".into()),
        ..pending_conversion("deal-1", 10.0, "MXN", T0, Credit::default())
    };
    assert_eq!(store.claim_conversion(&row).await.unwrap(), Claim::New);
    store
        .finish_conversion("deal-1", "sent", Some("fbtrace_id x"), 2)
        .await
        .unwrap();
    match store.claim_conversion(&row).await.unwrap() {
        Claim::Existing(e) => assert_eq!(
            (e.status.as_str(), e.detail.as_deref(), e.attempts),
            ("sent", Some("fbtrace_id x"), 2)
        ),
        other => panic!("{other:?}"),
    }
    assert!(store
        .finish_conversion("nope", "sent", None, 1)
        .await
        .is_err());
}

const DAY: i64 = 86_400_000;

/// A purchase by contact `c-0` as the conversions service claims it.
fn pending_conversion(
    event_id: &str,
    value: f64,
    currency: &str,
    event_time: i64,
    credit: Credit,
) -> ConversionRow {
    ConversionRow {
        event_id: event_id.into(),
        contact_id: "c-0".into(),
        event_name: "Purchase".into(),
        value,
        currency: currency.into(),
        event_time,
        ctwa_clid: None,
        credit,
        status: "pending".into(),
        detail: None,
        attempts: 0,
    }
}

/// Messages and conversions spread over three months, each delivered twice.
async fn report_scenario(store: &dyn AttributionStore) {
    let config = AttributionConfig::default();
    let ad: wabridge_core::attribution::Referral = wabridge_tests::model(
        json!({"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726",
               "source_type": "ad", "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e"}),
    );
    let post: wabridge_core::attribution::Referral = wabridge_tests::model(
        json!({"source_url": "https://www.instagram.com/p/1", "source_id": "77", "source_type": "post"}),
    );
    let messages: Vec<(
        String,
        String,
        i64,
        Option<&wabridge_core::attribution::Referral>,
    )> = (0..40)
        .map(|i| {
            let referral = match i % 3 {
                0 => Some(&ad),
                1 => Some(&post),
                _ => None,
            };
            // Contacts come back: 40 messages from 15 people over 45 days, some 60 days back.
            let at = T0 - 60 * DAY + i * 3 * DAY / 2;
            (format!("m-{i}"), format!("c-{}", i % 15), at, referral)
        })
        .collect();
    for (event_id, contact_id, at, referral) in &messages {
        let msg = Inbound {
            event_id,
            contact_id,
            at: *at,
            text: Some("hola"),
            referral: *referral,
        };
        let first = on_inbound_message(store, &config, &msg).await.unwrap();
        // Meta's retry or a queue redelivery: nothing new, nothing counted again.
        assert_eq!(
            on_inbound_message(store, &config, &msg).await.unwrap(),
            first
        );
    }
    let credit = Credit {
        utm_source: Some("facebook".into()),
        utm_medium: Some("paid_social".into()),
        utm_campaign: Some("120226305854810726".into()),
    };
    for (i, (currency, value)) in [
        ("MXN", 1200.0),
        ("MXN", 300.5),
        ("BRL", 99.9),
        ("MXN", 10.0),
    ]
    .into_iter()
    .enumerate()
    {
        let row = pending_conversion(
            &format!("deal-{i}"),
            value,
            currency,
            T0 - 40 * DAY + i as i64 * 20 * DAY,
            if i == 3 {
                Credit::default()
            } else {
                credit.clone()
            },
        );
        assert_eq!(store.claim_conversion(&row).await.unwrap(), Claim::New);
        assert!(matches!(
            store.claim_conversion(&row).await.unwrap(),
            Claim::Existing(_)
        ));
    }
}

#[tokio::test]
async fn the_report_over_dynamodb_matches_the_sqlite_report() {
    use wabridge_sqlite::attribution::SqliteAttribution;
    use wabridge_sqlite::Db;
    let endpoint = require_moto!();
    let aws = wabridge_tests::Aws::connect(&endpoint).await;
    let table = create_table(&aws.dynamo, &unique_name("report")).await;
    let dynamo = DynamoAttribution::new(aws.dynamo.clone(), &table);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteAttribution::open(Db::open(dir.path().join("w.db")).unwrap())
        .await
        .unwrap();
    report_scenario(&dynamo).await;
    report_scenario(&sqlite).await;

    let now = T0 + 30 * DAY;
    // Across month boundaries, from mid-day, from the start, and a window holding nothing.
    for since in [
        T0 - 61 * DAY,
        T0 - 30 * DAY + 12_345,
        T0 - DAY,
        T0 + 20 * DAY,
    ] {
        let expected = sqlite.report(since).await.unwrap();
        let got = dynamo.report(since, now).await.unwrap();
        assert_eq!(got, expected, "since {since}");
    }
    let all = sqlite.report(T0 - 61 * DAY).await.unwrap();
    let total: u64 = all.rows.iter().map(|r| r.conversations).sum();
    let conversions: u64 = all.rows.iter().map(|r| r.conversions).sum();
    assert!(total >= 15 && conversions == 4, "{all:?}");
    let ad = all
        .rows
        .iter()
        .find(|r| r.utm_source.as_deref() == Some("facebook"))
        .unwrap();
    assert_eq!(ad.value["MXN"], 1500.5);
    assert_eq!(ad.value["BRL"], 99.9);

    // The operator's command over the deployment's table prints what the local report prints.
    let since = "2025-09-01";
    let since_ms = parse_since(since, T0).unwrap();
    let out = wabridge_tests::gateway::against_aws(
        &endpoint,
        &[
            "report",
            "attribution",
            "--since",
            since,
            "--format",
            "json",
        ],
        &[("WABRIDGE_TABLE", table.as_str())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let local = sqlite.report(since_ms).await.unwrap().render(Format::Json);
    assert_eq!(
        printed,
        serde_json::from_str::<serde_json::Value>(&local).unwrap()
    );

    // A range past the index's reach is refused, not silently cut.
    let err = dynamo.report(now - 40 * 31 * DAY, now).await.unwrap_err();
    assert!(err.to_string().contains("36 months"), "{err}");
}
