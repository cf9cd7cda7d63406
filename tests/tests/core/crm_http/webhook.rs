//! The webhook CRM: signed canonical records with stable ids. (Error classes, retries and
//! exactly-once: the conformance suite, `crm_conformance`.)

use std::collections::HashMap;

use wabridge_core::consumer::{Handler, Outcome};

use super::*;

#[tokio::test]
async fn webhook_posts_signed_canonical_records_with_stable_ids() {
    let rig = rig("webhook", Fake::default()).await;
    let ev = text_event(1, 10);
    assert_eq!(rig.sync.handle(&delivery(&ev, 1)).await, Outcome::Done);
    assert_eq!(
        rig.sync.handle(&delivery(&ev, 1)).await,
        Outcome::Done,
        "redelivery"
    );
    assert!(
        rig.fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        rig.fake.problems.lock().unwrap()
    );
    let hooks = rig.fake.hooks.lock().unwrap().clone();
    assert_eq!(
        hooks,
        HashMap::from([
            ("wamid.T1#contact".into(), 1),
            ("wamid.T1#activity".into(), 1)
        ])
    );
    let bodies = rig.fake.hook_bodies.lock().unwrap().clone();
    let contact = bodies.iter().find(|b| b["kind"] == "contact").unwrap();
    assert_eq!(contact["phone_e164"], "+525500000001");
    assert_eq!(contact["wa_id"], "5215500000001");
    assert_eq!(contact["fields"]["external_id"], "+525500000001");
    let activity = bodies.iter().find(|b| b["kind"] == "activity").unwrap();
    assert_eq!(activity["contact_id"], contact["id"]);
    assert_eq!(activity["event_id"], "wamid.T1");
    assert_eq!(activity["type"], "text");
    assert_eq!(activity["fields"]["channel"], "whatsapp");
}
