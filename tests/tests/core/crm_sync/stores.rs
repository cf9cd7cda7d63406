//! The SQLite stores crm-sync relies on: the effects ledger and the identity store.

use std::time::Duration;

use wabridge_core::identity::{IdentityKey, IdentityStore};
use wabridge_core::ledger::{Claim, Ledger};

use super::*;

#[tokio::test]
async fn ledger_claims_are_exclusive_and_done_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::new(Db::open(dir.path().join("l.db")).unwrap());
    let lease = Duration::from_millis(300);
    assert_eq!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    assert!(matches!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Busy(_)
    ));
    // The holder "crashed": after the lease the next attempt proceeds, in doubt.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Proceed { in_doubt: true }
    );
    ledger.confirm("e1").await.unwrap();
    assert_eq!(ledger.claim("e1", lease).await.unwrap(), Claim::Done);
    ledger.release("e1").await.unwrap();
    assert_eq!(
        ledger.claim("e1", lease).await.unwrap(),
        Claim::Done,
        "release never reopens done"
    );
    // A definite failure releases: the retry is not in doubt.
    assert_eq!(
        ledger.claim("e2", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    ledger.release("e2").await.unwrap();
    assert_eq!(
        ledger.claim("e2", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    // An attempt that ended without knowing ends its lease: the next one proceeds at once, in doubt.
    assert_eq!(
        ledger.claim("e3", lease).await.unwrap(),
        Claim::Proceed { in_doubt: false }
    );
    ledger.abandon("e3").await.unwrap();
    assert_eq!(
        ledger.claim("e3", lease).await.unwrap(),
        Claim::Proceed { in_doubt: true }
    );
    // Forward-only ranks.
    assert!(ledger.advance_status("m", 1).await.unwrap());
    assert!(ledger.advance_status("m", 3).await.unwrap());
    assert!(!ledger.advance_status("m", 2).await.unwrap());
    assert!(
        ledger.advance_status("m", 3).await.unwrap(),
        "equal rank passes (retries)"
    );
}

#[tokio::test]
async fn identity_store_links_and_moves_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteIdentityStore::new(Db::open(dir.path().join("i.db")).unwrap());
    let phone = IdentityKey::Phone("525512345678".into());
    let bsuid = IdentityKey::Bsuid("MX.1".into());
    let r = store
        .resolve(std::slice::from_ref(&phone), "c1")
        .await
        .unwrap();
    assert!(r.created);
    let r = store
        .resolve(&[phone.clone(), bsuid.clone()], "c2")
        .await
        .unwrap();
    assert_eq!((r.contact_id.as_str(), r.created), ("c1", false));
    assert_eq!(store.lookup(&bsuid).await.unwrap().as_deref(), Some("c1"));
    // A key linked elsewhere is never stolen by resolve.
    let other = IdentityKey::Phone("5491100000000".into());
    store
        .resolve(std::slice::from_ref(&other), "c3")
        .await
        .unwrap();
    let r = store
        .resolve(&[phone.clone(), other.clone()], "c4")
        .await
        .unwrap();
    assert_eq!(r.contact_id, "c1");
    assert_eq!(store.lookup(&other).await.unwrap().as_deref(), Some("c3"));
    // Move.
    let new_phone = IdentityKey::Phone("525599999999".into());
    assert_eq!(
        store.move_key(&phone, &new_phone, "c5").await.unwrap(),
        "c1"
    );
    assert_eq!(store.lookup(&phone).await.unwrap(), None);
    assert_eq!(
        store.lookup(&new_phone).await.unwrap().as_deref(),
        Some("c1")
    );
    // Moving again (a redelivery) keeps it on c1.
    assert_eq!(
        store.move_key(&phone, &new_phone, "c6").await.unwrap(),
        "c1"
    );
}
