//! WhatsApp calls: one call record per call on the contact, whatever the order of its connect,
//! status and terminate events, delivered twice; permission replies on the contact; account and
//! template updates as their own records.

use super::*;

#[tokio::test]
async fn a_rejected_business_call_is_one_record_in_every_order() {
    let events = sample("call_business_status_terminate_pt_br.json");
    assert_eq!(events.len(), 3);
    let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "c:wacid.HBgNQ0FMTDAyUFRCUjAwMDAwMg==:terminate",
            "c:wacid.HBgNQ0FMTDAyUFRCUjAwMDAwMg==:status:RINGING",
            "c:wacid.HBgNQ0FMTDAyUFRCUjAwMDAwMg==:status:REJECTED",
        ]
    );
    let mut seen = Vec::new();
    for order in permutations(&events.iter().collect::<Vec<_>>()) {
        let env = env();
        env.deliver_twice(&order).await;
        let mut call = env.one("call").await;
        assert_eq!(call["outcome"], "rejected", "{call}");
        assert_eq!(call["direction"], "outbound");
        assert_eq!(call["ended"], true);
        assert_eq!(call["placed_at"], 1_763_700_700_000i64);
        assert_eq!(call["ended_at"], 1_763_700_713_000i64);
        assert_eq!(call["callback_data"], "retorno-pedido-8841");
        assert!(call.get("duration_s").is_none());
        let contact = env.one("contact").await;
        assert_eq!(contact["phone_e164"], "+5511987654321");
        assert_eq!(call["contact_id"], contact["id"]);
        assert!(env.window.inbound.lock().unwrap().is_empty());
        call.as_object_mut().unwrap().remove("contact_id");
        seen.push(call);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[tokio::test]
async fn an_answered_user_call_has_its_start_end_and_duration() {
    let events = sample("call_user_connect_terminate_es_mx.json");
    for order in permutations(&events.iter().collect::<Vec<_>>()) {
        let env = env();
        env.deliver_twice(&order).await;
        let call = env.one("call").await;
        assert_eq!(call["outcome"], "answered");
        assert_eq!(call["direction"], "inbound");
        assert_eq!(call["placed_at"], 1_763_700_600_000i64);
        assert_eq!(call["started_at"], 1_763_700_610_000i64);
        assert_eq!(call["ended_at"], 1_763_700_790_000i64);
        assert_eq!(call["duration_s"], 180);
        assert_eq!(call["last_event"], "terminate");
        assert_eq!(env.one("contact").await["name"], "Mariana Torres");
    }
    // Before the terminate, the call is known and has no outcome yet.
    let env = env();
    env.deliver_twice(&[&events[0]]).await;
    let ringing = env.one("call").await;
    assert_eq!(ringing["ended"], false);
    assert!(ringing.get("outcome").is_none());
}

#[tokio::test]
async fn a_call_permission_reply_is_kept_on_the_contact() {
    let env = env();
    let events = sample("call_permission_reply_es_ar.json");
    env.deliver_twice(&events.iter().collect::<Vec<_>>()).await;
    let contact = env.one("contact").await;
    assert_eq!(
        contact["call_permission"],
        json!({"response": "accept", "permanent": false, "expires_at": 1_764_305_600_000i64,
               "at": 1_763_700_800_000i64})
    );
    let activity = env.one("activity").await;
    assert_eq!(activity["text"], "call permission: accept");
}

#[tokio::test]
async fn account_and_template_updates_are_their_own_records() {
    let env = env();
    for name in [
        "account_update_restriction_es_mx.json",
        "template_components_update_es_mx.json",
        "template_category_update_pt_br.json",
    ] {
        let events = sample(name);
        env.deliver_twice(&events.iter().collect::<Vec<_>>()).await;
    }
    assert!(env.lines("unknown").await.is_empty());
    let account = env.one("account").await;
    assert_eq!(account["event"], "ACCOUNT_RESTRICTION");
    assert_eq!(account["waba_id"], "102290129340398");
    assert_eq!(
        account["restrictions"],
        json!(["RESTRICTED_BIZ_INITIATED_MESSAGING"])
    );
    assert_eq!(account["at"], 1_763_701_000_000i64);
    assert_eq!(
        account["details"]["restriction_info"][0]["expiration"],
        1_764_000_000
    );
    let templates = env.lines("template_status").await;
    let components = templates
        .iter()
        .find(|t| t["update"] == "components")
        .unwrap();
    assert_eq!(
        components["components"]["body"],
        "Hola {{1}}, te esperamos el {{2}} en nuestra sucursal."
    );
    assert_eq!(
        components["components"]["buttons"][0]["message_template_button_text"],
        "Confirmar"
    );
    let category = templates
        .iter()
        .find(|t| t["update"] == "category")
        .unwrap();
    assert_eq!(
        (&category["category"], &category["previous_category"]),
        (&json!("MARKETING"), &json!("UTILITY"))
    );
}

#[tokio::test]
async fn edited_content_is_purged_with_the_content_retention() {
    let env = env();
    env.deliver_twice(&[&edit(
        "wamid.E1",
        1_763_700_060,
        "wamid.O1",
        "Dirección: Av. Juárez 45",
    )])
    .await;
    let day = 86_400_000i64;
    let purge = wabridge_sqlite::SqliteContentPurge::new(
        env.db.clone(),
        std::time::Duration::from_secs(14 * 86_400),
    )
    .with_clock(wabridge_sqlite::Clock::manual(
        wabridge_core::clock::now_ms() + 15 * day,
    ));
    assert!(purge.purge_records(100).await.unwrap() >= 1);
    assert!(!env.store_holds("Juárez").await);
    let change = env.one("message_change").await;
    assert_eq!(change["content_purged"], true);
    assert_eq!(
        change["message_id"], "wamid.O1",
        "what is not content stays"
    );
}

#[tokio::test]
async fn other_call_events_are_kept_raw_on_the_contact() {
    let env = env();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "calls", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "525550001111", "phone_number_id": "106540352242922"},
        "calls": [{"id": "wacid.REC1", "from": "5215512345678", "timestamp": "1763700900",
            "event": "call_recording_available", "call_recording": {"type": "audio",
            "audio": {"id": "5550001", "mime_type": "audio/ogg; codecs=opus"}}}]}}]}]});
    let events = split_body(&body);
    assert_eq!(events.len(), 1);
    env.deliver_twice(&[&events[0]]).await;
    assert!(env.lines("call").await.is_empty(), "not read into a call");
    let raw = env.one("unknown").await;
    assert_eq!(raw["field"], "calls");
    assert_eq!(raw["raw"]["call_recording"]["audio"]["id"], "5550001");
    assert_eq!(raw["contact_id"], env.one("contact").await["id"]);
}

#[tokio::test]
async fn a_mapping_validates_call_fields_like_any_other() {
    let strict = format!(
        "{}\n[[call]]\nto = \"call_outcome\"\nfrom = \"outcome\"\none_of = [\"answered\"]\n",
        wabridge_core::mapping::LOCAL_EXAMPLE
    );
    let env = env_with(&strict, None);
    let events = sample("call_user_connect_terminate_es_mx.json");
    env.deliver_twice(&events.iter().collect::<Vec<_>>()).await;
    assert_eq!(env.one("call").await["fields"]["call_outcome"], "answered");
    // A rejected call breaks the catalogue: dead-lettered naming the field and the rule.
    let rejected = sample("call_business_status_terminate_pt_br.json");
    let refused = rejected
        .iter()
        .find(|e| e.key.ends_with(":status:REJECTED"))
        .unwrap();
    let d = Delivery {
        message_id: refused.key.clone(),
        receipt: "r".into(),
        body: refused.to_json(),
        receive_count: 1,
        enqueued_at: None,
    };
    match env.sync.handle(&d).await {
        Outcome::DeadLetter(reason) => {
            assert!(
                reason.contains("`call_outcome`") && reason.contains("one_of"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}
