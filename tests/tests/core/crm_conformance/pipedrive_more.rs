//! What Pipedrive does beyond the suite: erasure deletes the person's persons, an unchanged
//! contact costs no call, and custom fields travel by their codes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use wabridge_core::crm::{Crm, Effect};
use wabridge_core::erasure::ErasureItem;
use wabridge_core::mapping::Mapping;
use wabridge_core::records::{ContactRecord, Record};
use wabridge_crm::pipedrive::{PipedriveAuth, PipedriveCrm, PipedriveSettings};

use super::pipedrive_fake::{self, code, PipedriveFake};

async fn adapter() -> (Arc<PipedriveFake>, PipedriveCrm) {
    let fake = Arc::new(PipedriveFake::new((100, 10)));
    let addr = pipedrive_fake::serve(fake.clone()).await;
    let mapping = Mapping::example("pipedrive").unwrap();
    let crm = PipedriveCrm::new(PipedriveSettings {
        base: format!("http://{addr}"),
        auth: PipedriveAuth::ApiToken(pipedrive_fake::TOKEN.into()),
        id_field: mapping.id_property.clone().unwrap(),
        bsuid_field: wabridge_crm::bsuid_field(&mapping).map(String::from),
        effect_field: mapping.effect_property.clone(),
        limits: (100, 10),
        timeout: Duration::from_secs(2),
        search_lag: Duration::ZERO,
        conversations: Default::default(),
    })
    .unwrap();
    (fake, crm)
}

fn contact(effect: &str, id: &str, phone: Option<&str>, bsuid: Option<&str>, name: &str) -> Effect {
    let mut fields = Map::new();
    fields.insert("whatsapp_id".into(), json!(phone.or(bsuid)));
    if let Some(b) = bsuid {
        fields.insert("whatsapp_bsuid".into(), json!(b));
    }
    if let Some(p) = phone {
        fields.insert("phone".into(), json!(p));
    }
    fields.insert("name".into(), json!(name));
    Effect {
        id: effect.into(),
        record: Record::Contact(ContactRecord {
            id: id.into(),
            phone_e164: phone.map(String::from),
            bsuid: bsuid.map(String::from),
            ..Default::default()
        }),
        fields,
        contact: None,
        in_doubt: false,
    }
}

#[tokio::test]
async fn custom_fields_travel_by_code_and_an_unchanged_contact_costs_no_call() {
    let (fake, crm) = adapter().await;
    crm.apply(&contact(
        "e1#contact",
        "c1",
        Some("+525512340008"),
        Some("MX.a1"),
        "Ana",
    ))
    .await
    .unwrap();
    let person = fake
        .persons
        .lock()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .body
        .clone();
    assert_eq!(
        person["custom_fields"][code("whatsapp_id")],
        "+525512340008"
    );
    assert_eq!(person["custom_fields"][code("whatsapp_bsuid")], "MX.a1");
    assert!(
        person["custom_fields"].get("whatsapp_id").is_none(),
        "names are not codes"
    );
    assert_eq!(person["phones"][0]["value"], "+525512340008");

    let calls = fake.arrivals.lock().unwrap().len();
    crm.apply(&contact(
        "e2#contact",
        "c1",
        Some("+525512340008"),
        Some("MX.a1"),
        "Ana",
    ))
    .await
    .unwrap();
    assert_eq!(
        fake.arrivals.lock().unwrap().len(),
        calls,
        "unchanged: no call"
    );
    crm.apply(&contact(
        "e3#contact",
        "c1",
        Some("+525512340008"),
        Some("MX.a1"),
        "Ana María",
    ))
    .await
    .unwrap();
    assert_eq!(fake.arrivals.lock().unwrap().len(), calls + 1, "one PATCH");
    let person = fake
        .persons
        .lock()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .body
        .clone();
    assert_eq!(person["name"], "Ana María");
    assert_eq!(fake.persons.lock().unwrap().len(), 1);
    assert!(
        fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        fake.problems.lock().unwrap()
    );
}

#[tokio::test]
async fn erasure_deletes_the_persons_of_every_number_and_bsuid() {
    let (fake, crm) = adapter().await;
    crm.apply(&contact(
        "e1#contact",
        "c1",
        Some("+525512340009"),
        None,
        "Ana",
    ))
    .await
    .unwrap();
    crm.apply(&contact("e2#contact", "c2", None, Some("BR.zz9"), "Bia"))
        .await
        .unwrap();
    crm.apply(&contact(
        "e3#contact",
        "c3",
        Some("+525512340010"),
        None,
        "Otro",
    ))
    .await
    .unwrap();
    assert_eq!(fake.persons.lock().unwrap().len(), 3);
    let erasure = Effect {
        id: "x:er1#erasure".into(),
        record: Record::Erasure(ErasureItem {
            v: Default::default(),
            erasure_id: "er1".into(),
            contact_id: Some("c1".into()),
            phones: vec!["+525512340009".into()],
            bsuids: vec!["BR.zz9".into()],
            erased_at: 1,
        }),
        fields: Map::new(),
        contact: None,
        in_doubt: false,
    };
    crm.apply(&erasure).await.unwrap();
    // Repeating it (a redelivery) finds nobody and is done.
    crm.apply(&erasure).await.unwrap();
    let left: Vec<Value> = fake
        .persons
        .lock()
        .unwrap()
        .values()
        .map(|p| p.body["name"].clone())
        .collect();
    assert_eq!(left, [json!("Otro")]);
    assert!(
        fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        fake.problems.lock().unwrap()
    );
}

#[tokio::test]
async fn settings_never_print_the_token() {
    let settings = PipedriveSettings {
        base: "https://acme.pipedrive.com".into(),
        auth: PipedriveAuth::ApiToken("0123456789abcdef-secret".into()),
        id_field: "whatsapp_id".into(),
        bsuid_field: None,
        effect_field: None,
        limits: (20, 10),
        timeout: Duration::from_secs(1),
        search_lag: Duration::ZERO,
        conversations: Default::default(),
    };
    let printed = format!("{settings:?}");
    assert!(
        !printed.contains("0123456789abcdef-secret") && printed.contains("acme"),
        "{printed}"
    );
}
