//! Pipedrive's conversation deals beyond the suite's case: a create whose answer was lost makes
//! every later write of that conversation wait out the search lag (no second deal), a new
//! process finds the deal by its conversation id, owners and outcomes from `[conversations]`
//! set the deal's owner and status, a note links to the deal, erasure deletes it, and
//! `wabridge crm check` names the conversation fields.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::mapping::owners::ConversationSettings;
use wabridge_core::mapping::Mapping;
use wabridge_core::records::{ActivityRecord, ContactRecord, Direction, Record};
use wabridge_crm::pipedrive::{PipedriveAuth, PipedriveCrm, PipedriveSettings};

use super::pipedrive_fake::{self, code, PipedriveFake};
use super::Fault;
use crate::crm_http::TIMEOUT;

const LAG: Duration = Duration::from_millis(1500);
const PHONE: &str = "+525512340077";

fn adapter(addr: std::net::SocketAddr) -> PipedriveCrm {
    let mapping = Mapping::example("pipedrive").unwrap();
    let mut conversations = ConversationSettings::default();
    conversations.owners.insert("ana".into(), "7001".into());
    conversations
        .outcome_stages
        .insert("converted".into(), "won".into());
    PipedriveCrm::new(PipedriveSettings {
        base: format!("http://{addr}"),
        auth: PipedriveAuth::ApiToken(pipedrive_fake::TOKEN.into()),
        id_field: mapping.id_property.clone().unwrap(),
        bsuid_field: wabridge_crm::bsuid_field(&mapping).map(String::from),
        effect_field: mapping.effect_property.clone(),
        limits: (100, 10),
        timeout: TIMEOUT,
        search_lag: LAG,
        conversations,
    })
    .unwrap()
}

fn contact() -> (Record, Map<String, Value>) {
    let mut fields = Map::new();
    fields.insert("whatsapp_id".into(), json!(PHONE));
    fields.insert("phone".into(), json!(PHONE));
    fields.insert("name".into(), json!("Ana Pérez"));
    let record = Record::Contact(ContactRecord {
        id: "c1".into(),
        phone_e164: Some(PHONE.into()),
        ..Default::default()
    });
    (record, fields)
}

fn revision(n: u64) -> ConversationRecord {
    ConversationRecord {
        id: "cnv_0123456789abcdef".into(),
        contact_id: "c1".into(),
        number: "106540352242922".into(),
        revision: n,
        inbound_count: n as u32,
        ..Default::default()
    }
}

fn effect(id: &str, record: Record, in_doubt: bool) -> Effect {
    Effect {
        id: id.into(),
        record,
        fields: Map::new(),
        contact: Some(contact()),
        in_doubt,
    }
}

fn conversation(id: &str, r: ConversationRecord, in_doubt: bool) -> Effect {
    effect(id, Record::Conversation(r), in_doubt)
}

fn custom(deal: &Value, name: &str) -> Value {
    deal["custom_fields"][code(name)].clone()
}

#[tokio::test]
async fn one_deal_per_conversation_across_a_lost_answer_and_a_new_process() {
    let fake = Arc::new(PipedriveFake::new((100, 10)));
    let addr = pipedrive_fake::serve(fake.clone()).await;
    *fake.search_lag.lock().unwrap() = LAG;
    let crm = adapter(addr);

    // The deal is made, but its answer is lost.
    fake.fail_once
        .lock()
        .unwrap()
        .insert("POST /api/v2/deals".into(), Fault::SlowAfter);
    let first = crm
        .apply(&conversation("w1#conversation", revision(1), false))
        .await;
    assert!(matches!(first, Err(CrmError::Transient(_))), "{first:?}");
    assert_eq!(fake.deals.lock().unwrap().len(), 1);
    // Its retry, and the next revision's first attempt, wait out the lag rather than trust
    // the lagging search's miss.
    for e in [
        conversation("w1#conversation", revision(1), true),
        conversation("w2#conversation", revision(2), false),
    ] {
        let waited = crm.apply(&e).await;
        assert!(
            matches!(waited, Err(CrmError::RateLimited(Some(_)))),
            "{waited:?}"
        );
    }
    tokio::time::sleep(LAG).await;
    crm.apply(&conversation("w2#conversation", revision(2), false))
        .await
        .unwrap();
    let deals = fake.deals.lock().unwrap().clone();
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(custom(&deals[0], "wabridge_revision"), "2");
    assert_eq!(deals[0]["title"], "WhatsApp conversation with Ana Pérez");

    // A new process: found by its conversation id; the outcome wins it, the agent owns it.
    let restarted = adapter(addr);
    let mut r3 = revision(3);
    r3.outcome = Some("converted".into());
    r3.agent = Some("ana".into());
    r3.closed_at = Some(1_763_800_000_000);
    restarted
        .apply(&conversation("v:3#conversation", r3, false))
        .await
        .unwrap();
    let deals = fake.deals.lock().unwrap().clone();
    assert_eq!(deals.len(), 1, "{deals:?}");
    let d = &deals[0];
    assert_eq!(
        (d["status"].clone(), d["owner_id"].clone()),
        (json!("won"), json!(7001))
    );
    assert_eq!(custom(d, "wabridge_outcome"), "converted");
    assert_eq!(custom(d, "wabridge_closed_at"), "2025-11-22T08:26:40Z");
    assert!(d["person_id"].is_u64());

    // A message of the conversation: its note links to the deal and names the conversation.
    let activity = ActivityRecord {
        event_id: "w4".into(),
        contact_id: "c1".into(),
        kind: "text".into(),
        direction: Some(Direction::Inbound),
        text: Some("Gracias".into()),
        conversation_id: Some("cnv_0123456789abcdef".into()),
        ..Default::default()
    };
    restarted
        .apply(&effect("w4#activity", Record::Activity(activity), false))
        .await
        .unwrap();
    let note = fake.notes.lock().unwrap()[0].clone();
    assert_eq!(note["deal_id"], d["id"]);
    let text = note["content"].as_str().unwrap();
    assert!(
        text.contains("WhatsApp conversation cnv_0123456789abcdef"),
        "{text}"
    );

    // Erasure deletes the person's conversation deal (its title names the person).
    let erasure = Effect {
        id: "x:er1#erasure".into(),
        record: Record::Erasure(ErasureItem {
            v: Default::default(),
            erasure_id: "er1".into(),
            contact_id: Some("c1".into()),
            phones: vec![PHONE.into()],
            bsuids: vec![],
            erased_at: 1,
        }),
        fields: Map::new(),
        contact: None,
        in_doubt: false,
    };
    restarted.apply(&erasure).await.unwrap();
    assert!(fake.deals.lock().unwrap().is_empty());
    assert!(fake.persons.lock().unwrap().is_empty());
    let problems = fake.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn check_names_the_conversation_deal_fields() {
    let fake = Arc::new(PipedriveFake::new((100, 10)));
    let addr = pipedrive_fake::serve(fake.clone()).await;
    let url = format!("http://{addr}");
    fake.missing_fields.lock().unwrap().extend([
        "wabridge_conversation_id".to_string(),
        "wabridge_tags".to_string(),
    ]);
    let mapping = Mapping::example("pipedrive").unwrap();
    let settings = [
        ("CRM_KIND", "pipedrive".to_string()),
        ("PIPEDRIVE_API_URL", url),
        ("PIPEDRIVE_API_TOKEN", pipedrive_fake::TOKEN.to_string()),
    ];
    let report = wabridge_crm::check::check(&mapping, |name| {
        settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .await
    .unwrap();
    assert_eq!(
        report.missing,
        ["conversation deal field `wabridge_conversation_id`"],
        "{report:?}"
    );
    assert!(
        report
            .optional
            .iter()
            .any(|o| o == "conversation deal field `wabridge_tags`"),
        "{report:?}"
    );
    // Without the field a conversation waits, naming it, rather than making unfindable deals.
    let crm = adapter(addr);
    let waited = crm
        .apply(&conversation("w1#conversation", revision(1), false))
        .await;
    match waited {
        Err(CrmError::Unauthorized(m)) => {
            assert!(m.contains("deal field `wabridge_conversation_id`"), "{m}")
        }
        other => panic!("expected the missing field named, got {other:?}"),
    }
    assert!(fake.deals.lock().unwrap().is_empty());
}
