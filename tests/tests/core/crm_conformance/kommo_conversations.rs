//! Kommo's conversation leads beyond the suite's case: a create whose answer was lost makes
//! every later write of that conversation wait out the search lag (no second lead), a new
//! process finds the lead by its conversation id while a full-text hit on another lead is not
//! taken for it, owners and outcomes from `[conversations]` set the responsible user and status,
//! tags are added without removing those people set, a lead made without a contact is linked
//! by the next message's write, and `wabridge crm check` names the conversation fields.

use std::time::Duration;

use serde_json::{json, Map, Value};
use wabridge_core::conversations::ConversationRecord;
use wabridge_core::crm::{Crm, CrmError, Effect};
use wabridge_core::mapping::Mapping;
use wabridge_core::records::{ContactRecord, Record};
use wabridge_crm::kommo::KommoCrm;

use super::kommo::{custom, Kommo};
use super::{Fault, Subject};

const LAG: Duration = Duration::from_millis(1500);
const PHONE: &str = "+525512340088";
const CNV: &str = "cnv_89abcdef01234567";

fn adapter(subject: &Kommo) -> KommoCrm {
    let mut settings = subject.settings();
    settings
        .conversations
        .owners
        .insert("ana".into(), "8001".into());
    settings
        .conversations
        .outcome_stages
        .insert("converted".into(), "won".into());
    KommoCrm::new(settings).unwrap()
}

fn revision(n: u64) -> ConversationRecord {
    ConversationRecord {
        id: CNV.into(),
        contact_id: "c1".into(),
        number: "106540352242922".into(),
        revision: n,
        ..Default::default()
    }
}

fn conversation(id: &str, r: ConversationRecord, with_contact: bool, in_doubt: bool) -> Effect {
    let mut fields = Map::new();
    fields.insert("whatsapp_id".into(), json!(PHONE));
    fields.insert("phone".into(), json!(PHONE));
    fields.insert("name".into(), json!("Ana Pérez"));
    let contact = Record::Contact(ContactRecord {
        id: "c1".into(),
        phone_e164: Some(PHONE.into()),
        ..Default::default()
    });
    Effect {
        id: id.into(),
        record: Record::Conversation(r),
        fields: Map::new(),
        contact: with_contact.then_some((contact, fields)),
        in_doubt,
    }
}

fn leads(subject: &Kommo) -> Vec<Value> {
    subject
        .fake
        .leads
        .lock()
        .unwrap()
        .iter()
        .filter(|l| custom(l, true, "wabridge_conversation_id").is_some())
        .cloned()
        .collect()
}

fn tags(lead: &Value) -> Vec<String> {
    lead["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lead_per_conversation_across_a_lost_answer_and_a_new_process() {
    let subject = Kommo::start_with(Duration::ZERO).await;
    subject.lag_search_index(LAG);
    let crm = adapter(&subject);
    // Another lead that Kommo's full-text search finds for the id: not the conversation's.
    subject
        .fake
        .leads
        .lock()
        .unwrap()
        .push(json!({"id": 1, "name": format!("Copia de {CNV}"),
        "custom_fields_values": [], "contacts": [], "tags": []}));
    subject
        .fake
        .lead_created
        .lock()
        .unwrap()
        .insert(1, std::time::Instant::now() - LAG);

    // The first write names no contact (an outcome set through the API got there first); its
    // answer is lost.
    subject
        .fake
        .fail_once
        .lock()
        .unwrap()
        .insert("POST /api/v4/leads".into(), Fault::SlowAfter);
    let first = crm
        .apply(&conversation("v:1#conversation", revision(1), false, false))
        .await;
    assert!(matches!(first, Err(CrmError::Transient(_))), "{first:?}");
    assert_eq!(leads(&subject).len(), 1);
    for e in [
        conversation("v:1#conversation", revision(1), false, true),
        conversation("w2#conversation", revision(2), true, false),
    ] {
        let waited = crm.apply(&e).await;
        assert!(
            matches!(waited, Err(CrmError::RateLimited(Some(_)))),
            "{waited:?}"
        );
    }
    tokio::time::sleep(LAG).await;
    // A person tags the lead by hand meanwhile.
    let made = leads(&subject)[0]["id"].clone();
    for l in subject.fake.leads.lock().unwrap().iter_mut() {
        if l["id"] == made {
            l["tags"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "vip"}));
        }
    }
    let mut r2 = revision(2);
    r2.tags = vec!["envios".into()];
    crm.apply(&conversation("w2#conversation", r2, true, false))
        .await
        .unwrap();
    let found = leads(&subject);
    assert_eq!(found.len(), 1, "{found:?}");
    let lead = &found[0];
    assert_eq!(
        custom(lead, true, "wabridge_revision").as_deref(),
        Some("2")
    );
    assert_eq!(lead["name"], format!("WhatsApp conversation {CNV}"));
    assert_eq!(tags(lead), ["WhatsApp", "vip", "envios"]);
    // Linked to the contact by the message's write.
    let contact = lead["contacts"][0].as_u64().expect("linked");
    assert!(subject.fake.contacts.lock().unwrap().contains_key(&contact));

    // A new process: found by its conversation id; the outcome wins it, the agent owns it.
    let restarted = adapter(&subject);
    let mut r3 = revision(3);
    r3.outcome = Some("converted".into());
    r3.outcome_value = Some(1250.4);
    r3.agent = Some("ana".into());
    r3.closed_at = Some(1_763_800_000_000);
    restarted
        .apply(&conversation("v:3#conversation", r3, false, false))
        .await
        .unwrap();
    let found = leads(&subject);
    assert_eq!(found.len(), 1, "{found:?}");
    let lead = &found[0];
    assert_eq!(
        (
            lead["status_id"].clone(),
            lead["responsible_user_id"].clone(),
            lead["price"].clone()
        ),
        (json!(142), json!(8001), json!(1250))
    );
    assert_eq!(
        custom(lead, true, "wabridge_closed_at").as_deref(),
        Some("2025-11-22T08:26:40Z")
    );
    assert_eq!(lead["contacts"].as_array().unwrap().len(), 1);
    let problems = subject.fake.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_the_conversation_lead_fields() {
    let subject = Kommo::start_with(Duration::ZERO).await;
    subject.fake.missing_fields.lock().unwrap().extend([
        "wabridge_revision".to_string(),
        "wabridge_first_response_ms".to_string(),
    ]);
    let url = format!("http://{}", subject.addr);
    let pairs = [
        ("CRM_KIND", "kommo".to_string()),
        ("KOMMO_TOKEN", super::kommo_fake::TOKEN.to_string()),
        ("KOMMO_API_URL", url),
    ];
    let report = wabridge_crm::check::check(&Mapping::example("kommo").unwrap(), |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .await
    .unwrap();
    assert_eq!(
        report.missing,
        ["conversation lead field `wabridge_revision`"],
        "{report:?}"
    );
    assert!(
        report
            .optional
            .iter()
            .any(|o| o == "conversation lead field `wabridge_first_response_ms`"),
        "{report:?}"
    );
    // Without it a conversation waits, naming the field.
    let waited = adapter(&subject)
        .apply(&conversation("w1#conversation", revision(1), true, false))
        .await;
    match waited {
        Err(CrmError::Unauthorized(m)) => {
            assert!(m.contains("lead field `wabridge_revision`"), "{m}")
        }
        other => panic!("expected the missing field named, got {other:?}"),
    }
    assert!(leads(&subject).is_empty());
}
