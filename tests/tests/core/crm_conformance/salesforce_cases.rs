//! Salesforce conversations beyond the suite's case: what the Case shows (owner and status from
//! `[conversations]`, origin, tags, revision), a Task of a new process finding its Case by SOQL,
//! Lead mode (no Cases), erasure reaching the Cases, a missing Case field making events wait,
//! and `crm check` naming the Case fields.

use std::sync::Arc;

use serde_json::Value;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::mapping::Mapping;
use wabridge_core::records::Record;
use wabridge_crm::salesforce::PersonObject;

use super::conversations::{conversation_event, deliver, on_number, sync_with};
use super::salesforce::Salesforce;
use super::{text, Harness, Subject};

const AGENT_OWNER: &str = "0055e000001AbCdAAA";

fn mapping() -> Mapping {
    let mut m = Mapping::example("salesforce").unwrap();
    m.conversations
        .owners
        .insert("ana".into(), AGENT_OWNER.into());
    m.conversations
        .outcome_stages
        .insert("converted".into(), "Converted".into());
    m
}

fn crm(h: &Harness<Salesforce>, object: PersonObject) -> Arc<dyn Crm> {
    Arc::new(h.subject.adapter_mapped(&mapping(), object, 10))
}

fn cases(h: &Harness<Salesforce>) -> Vec<(String, serde_json::Map<String, Value>)> {
    h.subject.fake.of("Case")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_shows_owner_status_origin_tags_and_its_tasks() {
    let h = Harness::<Salesforce>::start().await;
    let (sync, conversations) = sync_with(&h.db, crm(&h, PersonObject::Contact), mapping());
    deliver(
        &sync,
        &on_number(text("wamid.K1", "5215512340301", "Hola")),
        1,
    )
    .await;
    let id = conversations.store().open().await.unwrap()[0]
        .record
        .id
        .clone();
    let case = &cases(&h)[0].1;
    assert_eq!(case["wabridge_Conversation_Id__c"], id.as_str());
    assert_eq!(case["Origin"], "WhatsApp");
    // Open: the org's default status, no owner without an agent.
    assert_eq!(case["Status"], "New");
    assert!(case.get("OwnerId").is_none(), "{case:?}");
    let task = &h.subject.fake.of("Task")[0].1;
    assert_eq!(task["WhatId"].as_str(), Some(cases(&h)[0].0.as_str()));
    assert_eq!(task["wabridge_Conversation_Id__c"], id.as_str());

    let change = wabridge_core::conversations::update::Change {
        agent: Some("ana".into()),
        tags: Some(vec!["envios".into(), "ventas".into()]),
        outcome: Some("converted".into()),
        ..Default::default()
    };
    let (changed, _) = conversations
        .update(&id, &change, 1_763_790_000_000)
        .await
        .unwrap()
        .unwrap();
    deliver(&sync, &conversation_event(&changed.record), 2).await;
    h.assert_documented();
    let all = cases(&h);
    assert_eq!(all.len(), 1, "{all:?}");
    let case = &all[0].1;
    assert_eq!(case["OwnerId"], AGENT_OWNER);
    assert_eq!(case["Status"], "Converted", "the outcome's status");
    assert_eq!(case["wabridge_Tags__c"], "envios;ventas");
    assert_eq!(case["wabridge_Agent__c"], "ana");
    assert_eq!(case["wabridge_Revision__c"], changed.record.revision);
    assert_eq!(
        h.subject.contacts()[0].key,
        "+525512340301",
        "the outcome's event names no contact; the Case keeps its own"
    );
    assert!(case["ContactId"]
        .as_str()
        .is_some_and(|c| c.starts_with("003")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_finds_the_case_of_a_task_by_soql() {
    let h = Harness::<Salesforce>::start().await;
    let (sync, conversations) = sync_with(&h.db, crm(&h, PersonObject::Contact), mapping());
    let first = on_number(text("wamid.K2", "5215512340302", "Hola"));
    deliver(&sync, &first, 1).await;
    let id = conversations.store().open().await.unwrap()[0]
        .record
        .id
        .clone();
    // A Task of the conversation in a process that never wrote its Case.
    let fresh = crm(&h, PersonObject::Contact);
    let mut effect = task_effect(&id);
    fresh.apply(&effect).await.unwrap();
    let case_id = cases(&h)[0].0.clone();
    let tasks = h.subject.fake.of("Task");
    let linked = tasks
        .iter()
        .filter(|(_, t)| t["WhatId"].as_str() == Some(case_id.as_str()))
        .count();
    assert_eq!(linked, 2, "{tasks:?}");
    // A conversation without a Case (yet): the Task is written, unlinked.
    effect.id = "wamid.K4#activity".into();
    if let Record::Activity(a) = &mut effect.record {
        a.conversation_id = Some("cnv_none".into());
    }
    fresh.apply(&effect).await.unwrap();
    let unlinked = h
        .subject
        .fake
        .of("Task")
        .into_iter()
        .find(|(_, t)| t["wabridge_Effect_Id__c"] == "wamid.K4#activity")
        .unwrap();
    assert!(unlinked.1.get("WhatId").is_none(), "{unlinked:?}");
    assert_eq!(unlinked.1["wabridge_Conversation_Id__c"], "cnv_none");
    h.assert_documented();
}

/// An inbound message's activity effect of conversation `id`, on +52 55 1234 0302.
fn task_effect(id: &str) -> Effect {
    let mapping = mapping();
    let contact = wabridge_core::records::ContactRecord {
        id: "c-k3".into(),
        phone_e164: Some("+525512340302".into()),
        ..Default::default()
    };
    let activity = wabridge_core::records::ActivityRecord {
        kind: "text".into(),
        text: Some("¿Y el envío?".into()),
        conversation_id: Some(id.to_string()),
        ..Default::default()
    };
    let contact = Record::Contact(contact);
    let fields = mapping.apply(&contact).unwrap();
    Effect {
        id: "wamid.K3#activity".into(),
        record: Record::Activity(activity.clone()),
        fields: mapping.apply(&Record::Activity(activity)).unwrap(),
        contact: Some((contact, fields)),
        in_doubt: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_mode_writes_no_cases_and_tasks_keep_the_conversation_id() {
    let h = Harness::<Salesforce>::start().await;
    let (sync, conversations) = sync_with(&h.db, crm(&h, PersonObject::Lead), mapping());
    deliver(
        &sync,
        &on_number(text("wamid.K5", "5215512340303", "Hola")),
        2,
    )
    .await;
    h.assert_documented();
    assert!(cases(&h).is_empty());
    let id = conversations.store().open().await.unwrap()[0]
        .record
        .id
        .clone();
    let task = &h.subject.fake.of("Task")[0].1;
    assert!(task.get("WhatId").is_none(), "{task:?}");
    assert_eq!(task["wabridge_Conversation_Id__c"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_cases_before_the_contact() {
    let h = Harness::<Salesforce>::start().await;
    let (sync, _) = sync_with(&h.db, crm(&h, PersonObject::Contact), mapping());
    deliver(
        &sync,
        &on_number(text("wamid.K6", "5215512340304", "Hola")),
        1,
    )
    .await;
    deliver(
        &sync,
        &on_number(text("wamid.K7", "5215512340305", "Hola")),
        1,
    )
    .await;
    assert_eq!(cases(&h).len(), 2);
    let erasure = Effect {
        id: "erasure:k".into(),
        record: Record::Erasure(ErasureItem {
            v: Default::default(),
            erasure_id: "k".into(),
            contact_id: None,
            phones: vec!["+525512340304".into()],
            bsuids: vec![],
            erased_at: 1,
        }),
        fields: Default::default(),
        contact: None,
        in_doubt: false,
    };
    let adapter = crm(&h, PersonObject::Contact);
    adapter.apply(&erasure).await.unwrap();
    adapter.apply(&erasure).await.unwrap();
    h.assert_documented();
    let keys: Vec<String> = h.subject.contacts().into_iter().map(|c| c.key).collect();
    assert_eq!(keys, ["+525512340305"]);
    let left = h.subject.conversations().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].contact, "+525512340305");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_case_field_makes_the_conversation_wait() {
    let h = Harness::<Salesforce>::start().await;
    h.subject
        .fake
        .missing_fields
        .lock()
        .unwrap()
        .insert("Case/wabridge_Revision__c".into());
    let record = wabridge_core::conversations::ConversationRecord {
        id: "cnv_wait".into(),
        revision: 1,
        ..Default::default()
    };
    let effect = Effect {
        id: "conversation:cnv_wait".into(),
        record: Record::Conversation(record),
        fields: Default::default(),
        contact: None,
        in_doubt: false,
    };
    let e = crm(&h, PersonObject::Contact)
        .apply(&effect)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CrmError::Unauthorized(m) if m.contains("Case field `wabridge_Revision__c`")),
        "{e:?}"
    );
    assert!(cases(&h).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_case_fields() {
    let subject = Salesforce::start_with(std::time::Duration::ZERO).await;
    let url = format!("http://{}", subject.addr);
    let run = || {
        let pairs: std::collections::HashMap<String, String> = [
            ("CRM_KIND", "salesforce"),
            ("SALESFORCE_LOGIN_URL", url.as_str()),
            ("SALESFORCE_CLIENT_ID", super::salesforce_fake::CLIENT_ID),
            (
                "SALESFORCE_CLIENT_SECRET",
                super::salesforce_fake::CLIENT_SECRET,
            ),
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
        report.ok.iter().any(|o| o == "2 Case fields found"),
        "{report:?}"
    );
    subject.fake.missing_fields.lock().unwrap().extend([
        "Case/wabridge_Revision__c".to_string(),
        "Case/wabridge_Tags__c".to_string(),
        "Task/wabridge_Conversation_Id__c".to_string(),
    ]);
    subject
        .fake
        .not_external
        .lock()
        .unwrap()
        .insert("Case/wabridge_Conversation_Id__c".into());
    let report = run().await;
    let missing = report.missing.join("\n");
    assert!(
        missing.contains("Case field `wabridge_Revision__c`"),
        "{missing}"
    );
    assert!(
        missing.contains("Case field `wabridge_Conversation_Id__c` flagged External ID"),
        "{missing}"
    );
    assert_eq!(report.missing.len(), 2, "{missing}");
    let optional = report.optional.join("\n");
    assert!(
        optional.contains("Case field `wabridge_Tags__c`"),
        "{optional}"
    );
    assert!(
        optional.contains("Task field `wabridge_Conversation_Id__c`"),
        "{optional}"
    );
    assert!(subject.fake.problems.lock().unwrap().is_empty());
}
