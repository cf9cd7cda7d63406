//! Identities that change: BSUID-only senders, number changes, BSUID changes; each stays one
//! contact.

use serde_json::json;
use wabridge_core::consumer::{Handler, Outcome};

use super::*;

#[tokio::test]
async fn bsuid_only_senders_get_a_contact_and_a_later_phone_joins_it() {
    let e = env();
    let only_user = message(
        "wamid.u1",
        None,
        Some("MX.13491208655302741918"),
        "Luz",
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    assert_eq!(e.sync.handle(&delivery(only_user)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["bsuid"], "MX.13491208655302741918");
    assert!(contacts[0]["phone_e164"].is_null());
    // Both identities on one message: the BSUID links the phone to the same contact.
    let both = message(
        "wamid.u2",
        Some("5215512340000"),
        Some("MX.13491208655302741918"),
        "Luz",
        json!({"type": "text", "text": {"body": "mi número"}}),
    );
    assert_eq!(e.sync.handle(&delivery(both)).await, Outcome::Done);
    // And a later BSUID-only message does not wipe the phone.
    let again = message(
        "wamid.u3",
        None,
        Some("MX.13491208655302741918"),
        "Luz",
        json!({"type": "text", "text": {"body": "otra vez"}}),
    );
    assert_eq!(e.sync.handle(&delivery(again)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["phone_e164"], "+525512340000");
    assert_eq!(contacts[0]["bsuid"], "MX.13491208655302741918");
}

#[tokio::test]
async fn number_change_moves_the_identity_without_a_second_contact() {
    let e = env();
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.n1", "5215511111111", "hola")))
            .await,
        Outcome::Done
    );
    let change = message(
        "wamid.n2",
        Some("5215511111111"),
        None,
        "Ana",
        json!({"type": "system", "system": {"body": "Ana changed from +52 1 55 1111 1111 to +52 1 55 2222 2222",
               "wa_id": "5215522222222", "type": "customer_changed_number"}}),
    );
    for _ in 0..2 {
        assert_eq!(
            e.sync.handle(&delivery(change.clone())).await,
            Outcome::Done
        );
    }
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.n3", "5215522222222", "ya")))
            .await,
        Outcome::Done
    );
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["phone_e164"], "+525522222222");
    assert_eq!(contacts[0]["wa_id"], "5215522222222");
    // The old number is free: its next owner is a new contact.
    assert_eq!(
        e.sync
            .handle(&delivery(text("wamid.n4", "5215511111111", "soy otro")))
            .await,
        Outcome::Done
    );
    assert_eq!(lines(&e.records, "contact").await.len(), 2);
    let acts = lines(&e.records, "activity").await;
    assert_eq!(acts.iter().filter(|a| a["type"] == "system").count(), 1);
}

#[tokio::test]
async fn user_id_change_moves_the_bsuid() {
    let e = env();
    let first = message(
        "wamid.b1",
        None,
        Some("BR.111"),
        "Bia",
        json!({"type": "text", "text": {"body": "oi"}}),
    );
    assert_eq!(e.sync.handle(&delivery(first)).await, Outcome::Done);
    let change = message(
        "wamid.b2",
        None,
        Some("BR.111"),
        "Bia",
        json!({"type": "system", "system": {"body": "changed", "user_id": "BR.222", "type": "user_changed_user_id"}}),
    );
    assert_eq!(e.sync.handle(&delivery(change)).await, Outcome::Done);
    let later = message(
        "wamid.b3",
        None,
        Some("BR.222"),
        "Bia",
        json!({"type": "text", "text": {"body": "de novo"}}),
    );
    assert_eq!(e.sync.handle(&delivery(later)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["bsuid"], "BR.222");
}

/// Meta's current shape: `user_changed_number`, carrying the regenerated BSUID
/// (`previous_user_id` → `user_id`). Both the new number and the new BSUID land on the one contact.
#[tokio::test]
async fn user_changed_number_moves_the_phone_and_links_the_new_bsuid() {
    let e = env();
    let first = message(
        "wamid.u1",
        Some("5215511111111"),
        Some("MX.0f9e8d7c"),
        "Ana",
        json!({"type": "text", "text": {"body": "hola"}}),
    );
    assert_eq!(e.sync.handle(&delivery(first)).await, Outcome::Done);
    let change = message(
        "wamid.u2",
        Some("5215511111111"),
        None,
        "Ana",
        json!({"type": "system", "system": {"body": "User Ana changed from 5215511111111 to 5215522222222",
               "wa_id": "5215522222222", "type": "user_changed_number",
               "user_id": "MX.1a2b3c4d", "previous_user_id": "MX.0f9e8d7c"}}),
    );
    for _ in 0..2 {
        assert_eq!(
            e.sync.handle(&delivery(change.clone())).await,
            Outcome::Done
        );
    }
    // Later messages by the new number alone, or by the new BSUID alone: the same contact.
    let by_phone = text("wamid.u3", "5215522222222", "ya");
    assert_eq!(e.sync.handle(&delivery(by_phone)).await, Outcome::Done);
    let by_bsuid = message(
        "wamid.u4",
        None,
        Some("MX.1a2b3c4d"),
        "Ana",
        json!({"type": "text", "text": {"body": "sin número"}}),
    );
    assert_eq!(e.sync.handle(&delivery(by_bsuid)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["phone_e164"], "+525522222222");
    assert_eq!(contacts[0]["bsuid"], "MX.1a2b3c4d");
}

/// The sample shape of `user_changed_user_id`: `from_user_id` already carries the NEW BSUID and
/// the old one is only in `system.previous_user_id`.
#[tokio::test]
async fn user_id_change_with_the_new_id_as_sender_moves_the_previous_one() {
    let e = env();
    let first = message(
        "wamid.p1",
        None,
        Some("BR.99812345"),
        "Bia",
        json!({"type": "text", "text": {"body": "oi"}}),
    );
    assert_eq!(e.sync.handle(&delivery(first)).await, Outcome::Done);
    let change = message(
        "wamid.p2",
        None,
        Some("BR.13491208"),
        "Bia",
        json!({"type": "system", "system": {"body": "changed", "type": "user_changed_user_id",
               "user_id": "BR.13491208", "previous_user_id": "BR.99812345"}}),
    );
    assert_eq!(e.sync.handle(&delivery(change)).await, Outcome::Done);
    let later = message(
        "wamid.p3",
        None,
        Some("BR.13491208"),
        "Bia",
        json!({"type": "text", "text": {"body": "de novo"}}),
    );
    assert_eq!(e.sync.handle(&delivery(later)).await, Outcome::Done);
    let contacts = lines(&e.records, "contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["bsuid"], "BR.13491208");
    // The previous id is free again: whoever holds it next is someone else.
    let other = message(
        "wamid.p4",
        None,
        Some("BR.99812345"),
        "Outra",
        json!({"type": "text", "text": {"body": "olá"}}),
    );
    assert_eq!(e.sync.handle(&delivery(other)).await, Outcome::Done);
    assert_eq!(lines(&e.records, "contact").await.len(), 2);
}
