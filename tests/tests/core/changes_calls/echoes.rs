//! Messages the business sends from the WhatsApp Business app (`smb_message_echoes`): outbound
//! activities with agent `whatsapp_business_app` on the customer's contact, which never open or
//! extend the 24-hour window; their edits and revokes follow the inbound rule.

use super::*;

const APP: &str = "whatsapp_business_app";
const SENT: &str = "wamid.HBgNRUNITzA1UFRCUjAwMDAwNQ==";
const LATER: &str = "wamid.HBgNRUNITzA4UFRCUjAwMDAwOA==";

fn echo(item: Value) -> Event {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "smb_message_echoes", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "551140040000", "phone_number_id": "207654321098765"},
        "message_echoes": [item]}}]}]});
    let mut events = split_body(&body);
    assert_eq!(events.len(), 1);
    events.remove(0)
}

#[tokio::test]
async fn echoes_are_the_business_apps_outbound_messages_and_keep_the_window_shut() {
    let env = env();
    let events = sample("echoes_text_edit_revoke_pt_br.json");
    env.deliver_twice(&events.iter().collect::<Vec<_>>()).await;
    let activity = env.one("activity").await;
    assert_eq!(activity["direction"], "outbound");
    assert_eq!(activity["agent"], APP);
    assert_eq!(activity["message_id"], SENT);
    // The echoed edit landed on it.
    assert_eq!(activity["text"], "Oi João! Seu pedido sai hoje à tarde.");
    assert_eq!(activity["edited_at"], 1_763_700_530_000i64);
    // On the customer's contact (`to`), not the business number (`from`).
    let contact = env.one("contact").await;
    assert_eq!(contact["phone_e164"], "+5511987654321");
    assert_eq!(activity["contact_id"], contact["id"]);
    let changes = env.lines("message_change").await;
    assert_eq!(changes.len(), 2);
    assert!(changes
        .iter()
        .all(|c| c["direction"] == "outbound" && c["agent"] == APP));
    assert!(
        env.window.inbound.lock().unwrap().is_empty(),
        "an echo never opens the window"
    );
    // The revoke named a message not seen yet: it applies when that echo arrives.
    let late = echo(
        json!({"from": "551140040000", "to": "5511987654321", "id": LATER,
        "timestamp": "1763700400", "type": "text", "text": {"body": "Cupom: JOAO10"}}),
    );
    env.deliver_twice(&[&late]).await;
    let late = env
        .lines("activity")
        .await
        .into_iter()
        .find(|a| a["message_id"] == LATER)
        .unwrap();
    assert_eq!(late["deleted_at"], 1_763_700_560_000i64);
    assert!(!env.store_holds("JOAO10").await);
    // The customer's own reply does open it.
    let reply = inbound(json!({"from": "5511987654321", "id": "wamid.REPLY",
        "timestamp": "1763700600", "type": "text", "text": {"body": "Obrigado!"}}));
    env.deliver(&reply).await;
    assert_eq!(
        *env.window.inbound.lock().unwrap(),
        vec!["m:wamid.REPLY".to_string()]
    );
}

#[tokio::test]
async fn an_echo_names_the_customer_whichever_end_carries_the_business_number() {
    // Meta's reference: `from` the business, `to` the customer. Some fixtures swap them.
    for (from, to) in [
        ("551140040000", "5511987654321"),
        ("5511987654321", "+55 11 4004-0000"),
    ] {
        let env = env();
        let e = echo(
            json!({"from": from, "to": to, "id": "wamid.E1", "timestamp": "1763700500",
            "type": "text", "text": {"body": "Bom dia"}}),
        );
        assert_eq!(e.kind, wabridge_core::event::EventKind::Echo);
        env.deliver_twice(&[&e]).await;
        assert_eq!(env.one("contact").await["phone_e164"], "+5511987654321");
    }
    // One that names no customer at all dead-letters, saying so.
    let env = env();
    let e = echo(
        json!({"from": "551140040000", "id": "wamid.E2", "timestamp": "1",
        "type": "text", "text": {"body": "?"}}),
    );
    let d = Delivery {
        message_id: e.key.clone(),
        receipt: "r".into(),
        body: e.to_json(),
        receive_count: 1,
        enqueued_at: None,
    };
    match env.sync.handle(&d).await {
        Outcome::DeadLetter(reason) => assert!(reason.contains("echo without a user"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_business_writing_a_stop_word_is_not_the_customers_opt_out() {
    let env = env();
    let e = echo(
        json!({"from": "551140040000", "to": "5511987654321", "id": "wamid.E3",
        "timestamp": "1763700500", "type": "text", "text": {"body": "SAIR"}}),
    );
    env.deliver_twice(&[&e]).await;
    assert_eq!(env.one("activity").await["text"], "SAIR");
    assert!(env.lines("consent").await.is_empty());
}
