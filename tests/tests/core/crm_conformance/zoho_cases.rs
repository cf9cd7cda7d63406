//! Zoho conversations beyond the suite's case: what the Case shows (owner and status from
//! `[conversations]`, origin, tags, revision) and a status people set kept by later open
//! revisions; a revision whose Case never reached Zoho creating it with the mandatory status;
//! erasure reaching the Cases; a missing Cases field making conversations wait; `crm check`
//! naming the Cases fields.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use wabridge_core::conversations::update::Change;
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::mapping::Mapping;
use wabridge_core::records::Record;

use super::conversations::{conversation_event, deliver, on_number, sync_with};
use super::zoho::Zoho;
use super::{text, Harness, Subject};

const AGENT_OWNER: &str = "5725767000000411001";

fn mapping() -> Mapping {
    let mut m = Mapping::example("zoho").unwrap();
    m.conversations
        .owners
        .insert("ana".into(), AGENT_OWNER.into());
    m.conversations
        .outcome_stages
        .insert("lost".into(), "Closed".into());
    m
}

fn crm(h: &Harness<Zoho>) -> Arc<dyn Crm> {
    Arc::new(h.subject.adapter_mapped(&mapping()))
}

fn cases(h: &Harness<Zoho>) -> Vec<(String, Map<String, Value>)> {
    let cases = h.subject.fake.cases.lock().unwrap();
    cases
        .iter()
        .map(|(id, c)| (id.clone(), c.body.clone()))
        .collect()
}

fn conversation_effect(record: ConversationRecord) -> Effect {
    Effect {
        id: format!("conversation:{}", record.id),
        record: Record::Conversation(record),
        fields: Default::default(),
        contact: None,
        in_doubt: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_shows_owner_status_and_tags_and_keeps_a_status_people_set() {
    let h = Harness::<Zoho>::start().await;
    let (sync, conversations) = sync_with(&h.db, crm(&h), mapping());
    deliver(
        &sync,
        &on_number(text("wamid.Z1", "5215512340401", "Hola")),
        2,
    )
    .await;
    let id = conversations.store().open().await.unwrap()[0]
        .record
        .id
        .clone();
    let all = cases(&h);
    assert_eq!(all.len(), 1, "{all:?}");
    let case = &all[0].1;
    assert_eq!(case["wabridge_Conversation_Id"], id.as_str());
    assert_eq!(case["Case_Origin"], "WhatsApp");
    assert_eq!(case["Status"], "New");
    assert_eq!(case["wabridge_Revision"], 1);
    let contact = case["Contact_Name"]["id"].clone();
    // The Note stays on the contact and names the conversation.
    let notes = h.subject.fake.notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["Parent_Id"]["id"], contact);
    assert!(
        notes[0]["Note_Content"]
            .as_str()
            .unwrap()
            .contains(&format!("conversation: {id}\nwabridge: ")),
        "{notes:?}"
    );

    // An agent puts the Case on hold; the conversation's next open revisions keep that.
    h.subject
        .fake
        .cases
        .lock()
        .unwrap()
        .values_mut()
        .for_each(|c| {
            c.body.insert("Status".into(), json!("On Hold"));
        });
    let change = Change {
        agent: Some("ana".into()),
        tags: Some(vec!["envios".into(), "ventas".into()]),
        ..Default::default()
    };
    let (changed, _) = conversations
        .update(&id, &change, 1_763_790_000_000)
        .await
        .unwrap()
        .unwrap();
    deliver(&sync, &conversation_event(&changed.record), 2).await;
    let case = &cases(&h)[0].1;
    assert_eq!(case["Status"], "On Hold");
    assert_eq!(case["Owner"], json!({"id": AGENT_OWNER}));
    assert_eq!(case["wabridge_Tags"], "envios;ventas");
    assert_eq!(case["wabridge_Revision"], changed.record.revision);
    assert_eq!(
        case["Contact_Name"]["id"], contact,
        "kept by an event naming no contact"
    );
    // An outcome with a status replaces it.
    let lost = Change {
        outcome: Some("lost".into()),
        ..Default::default()
    };
    let (lost, _) = conversations
        .update(&id, &lost, 1_763_790_100_000)
        .await
        .unwrap()
        .unwrap();
    deliver(&sync, &conversation_event(&lost.record), 1).await;
    let case = &cases(&h)[0].1;
    assert_eq!(
        (case["Status"].as_str(), case["wabridge_Outcome"].as_str()),
        (Some("Closed"), Some("lost"))
    );
    assert_eq!(cases(&h).len(), 1);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_revision_without_its_case_creates_it_with_the_open_status() {
    let h = Harness::<Zoho>::start().await;
    let record = ConversationRecord {
        id: "cnv_late".into(),
        number: "106540352242922".into(),
        revision: 4,
        ..Default::default()
    };
    let adapter = crm(&h);
    adapter
        .apply(&conversation_effect(record.clone()))
        .await
        .unwrap();
    adapter.apply(&conversation_effect(record)).await.unwrap();
    let all = cases(&h);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].1["Status"], "New");
    assert_eq!(all[0].1["wabridge_Revision"], 4);
    h.assert_documented();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_contacts_cases() {
    let h = Harness::<Zoho>::start().await;
    let (sync, _) = sync_with(&h.db, crm(&h), mapping());
    deliver(
        &sync,
        &on_number(text("wamid.Z2", "5215512340402", "Hola")),
        1,
    )
    .await;
    deliver(
        &sync,
        &on_number(text("wamid.Z3", "5215512340403", "Hola")),
        1,
    )
    .await;
    assert_eq!(cases(&h).len(), 2);
    // Erasure finds contacts by search, which lags behind writes.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let erasure = Effect {
        id: "erasure:z".into(),
        record: Record::Erasure(ErasureItem {
            v: Default::default(),
            erasure_id: "z".into(),
            contact_id: None,
            phones: vec!["+525512340402".into()],
            bsuids: vec![],
            erased_at: 1,
        }),
        fields: Default::default(),
        contact: None,
        in_doubt: false,
    };
    let adapter = crm(&h);
    adapter.apply(&erasure).await.unwrap();
    adapter.apply(&erasure).await.unwrap();
    h.assert_documented();
    let left = h.subject.conversations().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].contact, "+525512340403");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cases_field_makes_the_conversation_wait() {
    let h = Harness::<Zoho>::start().await;
    h.subject
        .fake
        .missing_fields
        .lock()
        .unwrap()
        .insert("Cases/wabridge_Conversation_Id".into());
    let record = ConversationRecord {
        id: "cnv_wait".into(),
        revision: 1,
        ..Default::default()
    };
    let e = crm(&h)
        .apply(&conversation_effect(record))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CrmError::Unauthorized(m) if m.contains("Cases field `wabridge_Conversation_Id`")),
        "{e:?}"
    );
    assert!(cases(&h).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_cases_fields() {
    let subject = Zoho::start_with(Duration::ZERO).await;
    let base = format!("http://{}", subject.addr);
    let run = || {
        let pairs: HashMap<String, String> = [
            ("CRM_KIND", "zoho"),
            ("ZOHO_API_URL", base.as_str()),
            ("ZOHO_ACCOUNTS_URL", base.as_str()),
            ("ZOHO_CLIENT_ID", super::zoho_fake::CLIENT_ID),
            ("ZOHO_CLIENT_SECRET", super::zoho_fake::CLIENT_SECRET),
            ("ZOHO_REFRESH_TOKEN", super::zoho_fake::REFRESH_TOKEN),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        async move {
            wabridge_crm::check::check(&mapping(), move |n| pairs.get(n).cloned())
                .await
                .unwrap()
        }
    };
    let report = run().await;
    assert!(report.passed(), "{report:?}");
    assert!(
        report.ok.iter().any(|o| o == "2 Cases fields found"),
        "{report:?}"
    );
    subject.fake.missing_fields.lock().unwrap().extend([
        "Cases/wabridge_Revision".to_string(),
        "Cases/wabridge_Tags".to_string(),
    ]);
    subject
        .fake
        .not_unique
        .lock()
        .unwrap()
        .insert("Cases/wabridge_Conversation_Id".into());
    let report = run().await;
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("Cases field `wabridge_Revision`"),
        "{missing}"
    );
    assert!(
        missing.contains(
            "Cases field `wabridge_Conversation_Id` set to \"Do not allow duplicate values\""
        ),
        "{missing}"
    );
    assert_eq!(report.missing.len(), 2, "{missing}");
    assert!(
        report
            .optional
            .iter()
            .any(|o| o == "Cases field `wabridge_Tags`"),
        "{report:?}"
    );
    assert!(subject.fake.problems.lock().unwrap().is_empty());
}
