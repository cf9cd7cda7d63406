//! Attribution over the real SQLite store: link → first message with the code → attribution →
//! lead, unknown and expired codes, first vs last touch, idempotent redelivery, concurrent
//! messages of one contact, and the report.

use std::sync::Arc;

use serde_json::json;
use wabridge_core::attribution::report::Format;
use wabridge_core::attribution::store::{AttributionStore, Claim, ConversionRow, Credit};
use wabridge_core::attribution::{
    on_inbound_message, AttributionConfig, AttributionOutput, CodeStatus, Inbound, LinkRequest,
    Referral, TouchKind,
};
use wabridge_sqlite::attribution::SqliteAttribution;
use wabridge_sqlite::Db;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_763_000_000_000;

async fn store() -> (tempfile::TempDir, SqliteAttribution) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("w.db")).unwrap();
    (dir, SqliteAttribution::open(db).await.unwrap())
}

fn newsletter() -> LinkRequest {
    LinkRequest {
        utm_source: Some("newsletter".into()),
        utm_medium: Some("email".into()),
        utm_campaign: Some("buen_fin".into()),
        utm_content: Some("header_button".into()),
        phone_number: Some("+52 55 1234 5678".into()),
        landing_page: Some("https://tienda.example.mx/buen-fin".into()),
        ..Default::default()
    }
}

fn referral() -> Referral {
    wabridge_tests::model(
        json!({"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120226305854810726", "source_type": "ad",
           "body": "Summer Succulents are here!", "headline": "Chat with us", "media_type": "image",
           "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e"}),
    )
}

fn attribution(out: &AttributionOutput) -> (&str, TouchKind, Option<&str>) {
    match out {
        AttributionOutput::Attribution(a) => {
            (a.contact_id.as_str(), a.touch, a.utm_source.as_deref())
        }
        other => panic!("expected an attribution record, got {other:?}"),
    }
}

#[tokio::test]
async fn link_code_round_trip_gives_attribution_and_lead_and_strips_the_code() {
    let (_d, store) = store().await;
    let config = AttributionConfig::default();
    let spec = newsletter().validate(&config).unwrap();
    let link = store.create_link(&spec, T0).await.unwrap();
    assert_eq!(store.link(&link.code).await.unwrap().unwrap(), link);

    // The customer opens the link: WhatsApp pre-fills the text, they send it.
    let url = url::Url::parse(&link.url).unwrap();
    let text = url
        .query_pairs()
        .find(|(k, _)| k == "text")
        .unwrap()
        .1
        .into_owned();
    let msg = Inbound {
        event_id: "evt-1",
        contact_id: "contact-1",
        at: T0 + 60_000,
        text: Some(&text),
        referral: None,
    };
    let out = on_inbound_message(&store, &config, &msg).await.unwrap();

    assert_eq!(out.ref_code.as_deref(), Some(link.code.as_str()));
    assert_eq!(out.code_status, Some(CodeStatus::Known));
    assert_eq!(
        out.customer_text.as_deref(),
        Some("Hola, quiero información")
    );
    assert!(
        !out.customer_text.unwrap().contains(&link.code),
        "the code is not customer text"
    );
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        attribution(&out.records[0]),
        ("contact-1", TouchKind::First, Some("newsletter"))
    );
    assert_eq!(
        attribution(&out.records[1]),
        ("contact-1", TouchKind::Last, Some("newsletter"))
    );
    let v = out.records[0].to_value();
    assert_eq!(v["kind"], "attribution");
    assert_eq!(v["utm_medium"], "email");
    assert_eq!(v["utm_campaign"], "buen_fin");
    assert_eq!(v["utm_content"], "header_button");
    assert_eq!(v["ref_code"], link.code.as_str());
    assert_eq!(v["ctwa_clid"], serde_json::Value::Null);
    assert_eq!(v["landing_page"], "https://tienda.example.mx/buen-fin");
    let lead = out.records[2].to_value();
    assert_eq!(lead["kind"], "lead");
    assert_eq!(lead["contact_id"], "contact-1");
    assert_eq!(lead["utm_campaign"], "buen_fin");
    assert_eq!(lead["ref_code"], link.code.as_str());
}

#[tokio::test]
async fn the_same_event_twice_changes_nothing_and_returns_the_same_records() {
    let (_d, store) = store().await;
    let config = AttributionConfig::default();
    let r = referral();
    let msg = Inbound {
        event_id: "evt-ad",
        contact_id: "c",
        at: T0,
        text: Some("Hello!"),
        referral: Some(&r),
    };
    let first = on_inbound_message(&store, &config, &msg).await.unwrap();
    let again = on_inbound_message(&store, &config, &msg).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(store.contact("c").await.unwrap().unwrap().version, 1);
    let report = store.report(0).await.unwrap();
    assert_eq!(report.rows.len(), 1);
    assert_eq!((report.rows[0].conversations, report.rows[0].leads), (1, 1));
}

#[tokio::test]
async fn unknown_malformed_and_expired_codes_are_recorded_never_attributed() {
    let (_d, store) = store().await;
    let config = AttributionConfig::default();
    let mut req = newsletter();
    req.expires_in_days = Some(1);
    let link = store
        .create_link(&req.validate(&config).unwrap(), T0)
        .await
        .unwrap();

    let expired_text = format!("hola [ref:{}]", link.code);
    let cases = [
        (
            "e1",
            "c1",
            "hola [ref:ZZZZZZ]".to_string(),
            "ZZZZZZ",
            CodeStatus::Unknown,
        ),
        (
            "e2",
            "c2",
            "hola [ref:0O1IL0]".to_string(),
            "0O1IL0",
            CodeStatus::Unknown,
        ),
        (
            "e3",
            "c3",
            expired_text,
            link.code.as_str(),
            CodeStatus::Expired,
        ),
    ];
    for (event, contact, text, code, status) in &cases {
        let msg = Inbound {
            event_id: event,
            contact_id: contact,
            at: T0 + 2 * DAY,
            text: Some(text),
            referral: None,
        };
        let out = on_inbound_message(&store, &config, &msg).await.unwrap();
        assert_eq!(out.ref_code.as_deref(), Some(*code));
        assert_eq!(out.code_status, Some(*status));
        assert_eq!(out.customer_text.as_deref(), Some("hola"));
        // No touch: a lead for the first conversation (default policy), unattributed.
        assert_eq!(out.records.len(), 1);
        assert_eq!(
            out.records[0].to_value()["utm_source"],
            serde_json::Value::Null
        );
        assert_eq!(out.credit, Credit::default());
        let logged = store.processed(event).await.unwrap().unwrap();
        assert_eq!(logged.code_status, Some(*status));
    }
    // The same link a day earlier is still valid.
    let text = format!("hola [ref:{}]", link.code.to_lowercase());
    let msg = Inbound {
        event_id: "e4",
        contact_id: "c4",
        at: T0 + DAY / 2,
        text: Some(&text),
        referral: None,
    };
    assert_eq!(
        on_inbound_message(&store, &config, &msg)
            .await
            .unwrap()
            .code_status,
        Some(CodeStatus::Known)
    );
}

#[tokio::test]
async fn repeat_customer_keeps_first_touch_and_gets_a_new_last_touch() {
    let (_d, store) = store().await;
    let config = AttributionConfig::default();
    let r = referral();
    let ad = Inbound {
        event_id: "m1",
        contact_id: "ana",
        at: T0,
        text: Some("Hello! Can I get more info on this?"),
        referral: Some(&r),
    };
    let out = on_inbound_message(&store, &config, &ad).await.unwrap();
    assert_eq!(
        attribution(&out.records[0]),
        ("ana", TouchKind::First, Some("facebook"))
    );
    let v = out.records[0].to_value();
    assert_eq!(v["utm_medium"], "paid_social");
    assert_eq!(v["utm_campaign"], "120226305854810726");
    assert_eq!(v["ctwa_clid"], "Aff-n8ZTODiE79d22KtAwQKj9e");
    assert_eq!(v["referral"]["headline"], "Chat with us");

    let link = store
        .create_link(&newsletter().validate(&config).unwrap(), T0)
        .await
        .unwrap();
    let text = link.text.clone();
    let later = Inbound {
        event_id: "m2",
        contact_id: "ana",
        at: T0 + 10 * DAY,
        text: Some(&text),
        referral: None,
    };
    let out = on_inbound_message(&store, &config, &later).await.unwrap();
    assert_eq!(
        out.records.len(),
        1,
        "only the last touch moves: {:?}",
        out.records
    );
    assert_eq!(
        attribution(&out.records[0]),
        ("ana", TouchKind::Last, Some("newsletter"))
    );

    let state = store.contact("ana").await.unwrap().unwrap();
    assert_eq!(
        state.first.unwrap().utm.utm_source.as_deref(),
        Some("facebook")
    );
    assert_eq!(
        state.last.unwrap().utm.utm_source.as_deref(),
        Some("newsletter")
    );
}

#[tokio::test]
async fn concurrent_messages_of_one_contact_all_land_once() {
    let (_d, store) = store().await;
    let store = Arc::new(store);
    let config = Arc::new(AttributionConfig::default());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, config) = (store.clone(), config.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("evt-{i}");
            let msg = Inbound {
                event_id: &id,
                contact_id: "busy",
                at: T0 + i * 1000,
                text: Some("hi"),
                referral: None,
            };
            on_inbound_message(store.as_ref(), &config, &msg)
                .await
                .unwrap()
        }));
    }
    let mut leads = 0;
    for t in tasks {
        leads += t.await.unwrap().records.len();
    }
    let state = store.contact("busy").await.unwrap().unwrap();
    assert_eq!(state.version, 20, "every message committed exactly once");
    assert_eq!(leads, 1, "one lead per contact per window");
}

#[tokio::test]
async fn report_counts_conversations_leads_and_conversions_per_campaign() {
    let (_d, store) = store().await;
    let config = AttributionConfig::default();
    let r = referral();
    for (i, contact) in ["a", "b", "c"].iter().enumerate() {
        let id = format!("ad-{i}");
        let m = Inbound {
            event_id: &id,
            contact_id: contact,
            at: T0 + i as i64,
            text: Some("hi"),
            referral: Some(&r),
        };
        on_inbound_message(&store, &config, &m).await.unwrap();
    }
    // b comes back after 3 days without a touch: a new conversation credited to the ad.
    let m = Inbound {
        event_id: "b-2",
        contact_id: "b",
        at: T0 + 3 * DAY,
        text: Some("again"),
        referral: None,
    };
    on_inbound_message(&store, &config, &m).await.unwrap();
    // d writes directly.
    let m = Inbound {
        event_id: "d-1",
        contact_id: "d",
        at: T0,
        text: Some("hola"),
        referral: None,
    };
    on_inbound_message(&store, &config, &m).await.unwrap();
    // An old conversation outside --since.
    let m = Inbound {
        event_id: "old",
        contact_id: "e",
        at: T0 - 60 * DAY,
        text: Some("hola"),
        referral: Some(&r),
    };
    on_inbound_message(&store, &config, &m).await.unwrap();

    let ad = Credit {
        utm_source: Some("facebook".into()),
        utm_medium: Some("paid_social".into()),
        utm_campaign: Some("120226305854810726".into()),
    };
    for (id, value, currency) in [
        ("sale-1", 1200.0, "MXN"),
        ("sale-2", 300.5, "MXN"),
        ("sale-3", 10.0, "USD"),
    ] {
        let row = ConversionRow {
            event_id: id.into(),
            contact_id: "a".into(),
            event_name: "Purchase".into(),
            value,
            currency: currency.into(),
            event_time: T0 + DAY,
            ctwa_clid: None,
            credit: ad.clone(),
            status: "pending".into(),
            detail: None,
            attempts: 0,
        };
        assert_eq!(store.claim_conversion(&row).await.unwrap(), Claim::New);
        assert!(matches!(
            store.claim_conversion(&row).await.unwrap(),
            Claim::Existing(_)
        ));
    }

    let report = store.report(T0 - DAY).await.unwrap();
    assert_eq!(report.rows.len(), 2, "{report:?}");
    let direct = &report.rows[0];
    assert_eq!(
        (
            direct.utm_source.as_deref(),
            direct.conversations,
            direct.leads,
            direct.conversions
        ),
        (None, 1, 1, 0)
    );
    let row = &report.rows[1];
    assert_eq!(row.utm_source.as_deref(), Some("facebook"));
    assert_eq!((row.conversations, row.leads, row.conversions), (4, 3, 3));
    assert_eq!(row.value["MXN"], 1500.5);
    assert_eq!(row.value["USD"], 10.0);

    let all = store.report(0).await.unwrap();
    assert_eq!(
        all.rows[1].conversations, 5,
        "the old conversation counts without --since"
    );
    let csv = report.render(Format::Csv);
    assert!(
        csv.contains("facebook,paid_social,120226305854810726,4,3,3,MXN,1500.50"),
        "{csv}"
    );
}

#[tokio::test]
async fn queue_events_of_the_official_ctwa_example_are_attributed_and_system_messages_ignored() {
    use wabridge_core::attribution::on_event;
    use wabridge_core::event::{Event, EventKind};
    use wabridge_core::webhook::model::{parse_item, Item, Message};
    fn message(event: &Event) -> Message {
        match parse_item(event).unwrap() {
            Item::Message(m) => *m,
            other => panic!("not a message: {other:?}"),
        }
    }
    let (_d, store) = store().await;
    let config = AttributionConfig::default();
    let item = r#"{"referral":{"source_url":"https://fb.me/3cr4Wqqkv","source_id":"120226305854810726","source_type":"ad","body":"Summer Succulents are here!","headline":"Chat with us","media_type":"image","ctwa_clid":"Aff-n8ZT"},"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=","timestamp":"1750275992","text":{"body":"Hello! Can I get more info on this?"},"type":"text"}"#;
    let event = |kind: EventKind, key: &str, item: &str| Event {
        v: 1,
        key: key.into(),
        kind,
        field: "messages".into(),
        waba_id: "102290129340398".into(),
        entry_time: None,
        phone_number_id: None,
        display_phone_number: None,
        contact: None,
        item: serde_json::value::RawValue::from_string(item.to_string()).unwrap(),
        received_at: T0,
    };
    let ev = event(EventKind::Message, "k1", item);
    let out = on_event(&store, &config, &ev, &message(&ev), "sheena")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.customer_text.as_deref(),
        Some("Hello! Can I get more info on this?")
    );
    let first = out.records[0].to_value();
    assert_eq!(
        (
            first["touch"].as_str(),
            first["utm_source"].as_str(),
            first["ctwa_clid"].as_str()
        ),
        (Some("first"), Some("facebook"), Some("Aff-n8ZT"))
    );
    assert_eq!(first["at"], 1_750_275_992_000i64);
    let system = r#"{"from":"16505551234","id":"wamid.s","timestamp":"1","type":"system","system":{"body":"changed"}}"#;
    // A number change is not a touch.
    let ev = event(EventKind::Message, "k3", system);
    assert!(on_event(&store, &config, &ev, &message(&ev), "sheena")
        .await
        .unwrap()
        .is_none());
}
