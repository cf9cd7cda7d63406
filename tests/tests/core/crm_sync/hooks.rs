//! The sending side's hooks hear consent changes and inbound messages.

use std::sync::Arc;

use wabridge_core::consumer::{Handler, Outcome};

use super::*;

#[derive(Default)]
struct RecordingHooks {
    calls: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl wabridge_core::sync::SyncHooks for RecordingHooks {
    async fn consent_changed(
        &self,
        contact_id: &str,
        consent: &wabridge_core::records::ConsentRecord,
    ) -> Result<(), wabridge_core::error::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("consent {contact_id} {:?}", consent.status));
        Ok(())
    }
    async fn inbound_message(
        &self,
        contact_id: &str,
        at_ms: i64,
    ) -> Result<(), wabridge_core::error::StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("inbound {contact_id} {at_ms}"));
        Ok(())
    }
}

#[tokio::test]
async fn sending_side_hooks_hear_consent_changes_and_inbound_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("h.db")).unwrap();
    let records = SqliteRecords::new(db.clone());
    let hooks = Arc::new(RecordingHooks::default());
    let sync = CrmSync::new(
        Arc::new(SqliteIdentityStore::new(db.clone())),
        Arc::new(SqliteLedger::new(db.clone())),
        Arc::new(LocalCrm::new(records.clone())),
        Arc::new(Mapping::example("local").unwrap()),
    )
    .with_hooks(hooks.clone());
    assert_eq!(
        sync.handle(&delivery(text("wamid.h1", "5215512345678", "PARAR")))
            .await,
        Outcome::Done
    );
    let contact = lines(&records, "contact").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls = hooks.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            format!("consent {contact} OptOut"),
            format!("inbound {contact} 1763780000123")
        ]
    );
}
