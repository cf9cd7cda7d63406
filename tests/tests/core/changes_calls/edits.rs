//! Edits and revokes of inbound messages: the activity shows the newest edit and the fact it
//! was edited, a revoke clears the content from the store, in any order, exactly once.

use std::sync::Arc;

use serde_json::json;
use wabridge_core::media::job::MediaJob;
use wabridge_core::media::record::MediaState;
use wabridge_core::numbers::replay::DeliveryLog;
use wabridge_core::queue::Queue;
use wabridge_sqlite::queue::SqliteQueue;

use super::*;

const ORIG: &str = "wamid.ORIG1";

#[tokio::test]
async fn edits_land_on_their_activity_in_every_order_and_once() {
    let original = text(ORIG, 1_763_700_000, "Hola, quiero 2 camisas talla M");
    let first = edit(
        "wamid.EDIT1",
        1_763_700_060,
        ORIG,
        "Hola, quiero 3 camisas talla M",
    );
    let second = edit(
        "wamid.EDIT2",
        1_763_700_120,
        ORIG,
        "Hola, quiero 3 camisas talla L",
    );
    for order in permutations(&[&original, &first, &second]) {
        let env = env();
        env.deliver_twice(&order).await;
        let names: Vec<&str> = order.iter().map(|e| e.key.as_str()).collect();
        let activity = env.one("activity").await;
        assert_eq!(
            activity["text"], "Hola, quiero 3 camisas talla L",
            "{names:?}"
        );
        assert_eq!(activity["edited_at"], 1_763_700_120_000i64, "{names:?}");
        assert_eq!(activity["edit_id"], "wamid.EDIT2");
        assert_eq!(activity["message_id"], ORIG);
        assert_eq!(activity["type"], "text", "the original's type stays");
        // The CRM got each edit once, naming the original.
        let changes = env.lines("message_change").await;
        assert_eq!(changes.len(), 2, "{names:?}");
        for c in &changes {
            assert_eq!(c["message_id"], ORIG);
            assert_eq!(c["change"], "edited");
            assert_eq!(c["direction"], "inbound");
            assert_eq!(c["contact_id"], activity["contact_id"]);
        }
        // Edits are not new messages: the window heard only the original.
        assert_eq!(
            *env.window.inbound.lock().unwrap(),
            vec![format!("m:{ORIG}"); 2],
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn a_revoke_clears_the_content_from_the_store_in_every_order() {
    let original = text(ORIG, 1_763_700_000, "Mi tarjeta termina en 4421");
    let fix = edit(
        "wamid.EDIT1",
        1_763_700_030,
        ORIG,
        "Mi tarjeta termina en 4422",
    );
    let gone = revoke("wamid.REV1", 1_763_700_090, ORIG);
    for order in permutations(&[&original, &fix, &gone]) {
        let env = env();
        env.deliver_twice(&order).await;
        let names: Vec<&str> = order.iter().map(|e| e.key.as_str()).collect();
        let activity = env.one("activity").await;
        assert_eq!(activity["deleted_at"], 1_763_700_090_000i64, "{names:?}");
        assert!(activity.get("text").is_none(), "{names:?}: {activity}");
        assert!(activity.get("fields").is_none(), "mapped copies go too");
        for said in ["4421", "4422"] {
            assert!(
                !env.store_holds(said).await,
                "{names:?}: {said} still stored"
            );
        }
        let changes = env.lines("message_change").await;
        assert_eq!(changes.len(), 2, "{names:?}");
        let revoke = changes.iter().find(|c| c["change"] == "deleted").unwrap();
        assert_eq!(revoke["content"], "clear", "the mapping's default");
        assert_eq!(revoke["at"], 1_763_700_090_000i64);
    }
}

#[tokio::test]
async fn the_mapping_decides_what_the_crm_keeps_of_a_deleted_message() {
    let keep = format!(
        "{}\n[revoke]\ncontent = \"keep\"\n",
        wabridge_core::mapping::LOCAL_EXAMPLE
    );
    let env = env_with(&keep, None);
    env.deliver_twice(&[&revoke("wamid.REV1", 1_763_700_090, ORIG)])
        .await;
    assert_eq!(env.one("message_change").await["content"], "keep");
    // A mapping that says anything else does not load.
    let bad = format!(
        "{}\n[revoke]\ncontent = \"shred\"\n",
        wabridge_core::mapping::LOCAL_EXAMPLE
    );
    let err = Mapping::from_toml(&bad).unwrap_err().to_string();
    assert!(err.contains("shred"), "{err}");
}

#[tokio::test]
async fn an_edit_delivered_as_unsupported_is_kept_as_what_it_is() {
    let env = env();
    let events = sample("unsupported_edit_131051_es_mx.json");
    env.deliver_twice(&events.iter().collect::<Vec<_>>()).await;
    let activity = env.one("activity").await;
    assert_eq!(activity["type"], "unsupported");
    assert_eq!(activity["unsupported_type"], "edit");
    assert_eq!(activity["errors"][0]["code"], 131051);
    assert_eq!(
        activity["errors"][0]["details"],
        "Message type is currently not supported."
    );
    assert!(
        activity.get("edited_at").is_none(),
        "nothing says which message"
    );
    assert!(env.lines("message_change").await.is_empty());
}

#[tokio::test]
async fn bad_edits_and_revokes_dead_letter_with_a_reason() {
    let env = env();
    for (item, why) in [
        (
            json!({"from": "5215512345678", "id": "wamid.X1", "timestamp": "1", "type": "edit",
                "edit": {"message": {"type": "text", "text": {"body": "x"}}}}),
            "edit without edit.original_message_id",
        ),
        (
            json!({"from": "5215512345678", "id": "wamid.X2", "timestamp": "1", "type": "edit",
                "edit": {"original_message_id": ORIG}}),
            "edit without edit.message",
        ),
        (
            json!({"from": "5215512345678", "id": "wamid.X3", "timestamp": "1", "type": "revoke",
                "revoke": {}}),
            "revoke without revoke.original_message_id",
        ),
    ] {
        let event = inbound(item);
        let d = Delivery {
            message_id: event.key.clone(),
            receipt: "r".into(),
            body: event.to_json(),
            receive_count: 1,
            enqueued_at: None,
        };
        match env.sync.handle(&d).await {
            Outcome::DeadLetter(reason) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    assert!(env.lines("activity").await.is_empty());
}

#[tokio::test]
async fn a_new_image_in_an_edit_is_fetched_for_the_original_activity() {
    let dir = tempfile::tempdir().unwrap();
    let queue_db = Db::open(dir.path().join("q.db")).unwrap();
    let media: Arc<dyn Queue> = Arc::new(SqliteQueue::new(queue_db, "media"));
    let env = env_with(wabridge_core::mapping::LOCAL_EXAMPLE, Some(media.clone()));
    let original = inbound(
        json!({"from": "5215512345678", "id": ORIG, "timestamp": "1763700000",
        "type": "image", "image": {"id": "111", "mime_type": "image/jpeg", "sha256": "YQ==",
        "caption": "Comprobante"}}),
    );
    let edited = inbound(json!({"from": "5215512345678", "id": "wamid.EDIT1",
        "timestamp": "1763700060", "type": "edit", "edit": {"original_message_id": ORIG,
        "message": {"type": "image", "image": {"id": "222", "mime_type": "image/jpeg",
        "sha256": "Yg==", "caption": "Comprobante corregido"}}}}));
    env.deliver_twice(&[&original, &edited]).await;
    let jobs: Vec<MediaJob> = media
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .iter()
        .map(|d| MediaJob::from_json(&d.body).unwrap())
        .collect();
    let new = jobs
        .iter()
        .find(|j| j.media_id == "222")
        .expect("a job for the new file");
    assert_eq!(
        new.message_id.as_deref(),
        Some(ORIG),
        "the file belongs to the original"
    );
    assert_eq!(new.activity_event_id, "m:wamid.EDIT1");
    assert_eq!(new.kind.as_str(), "image");
    let activity = env.one("activity").await;
    assert_eq!(activity["text"], "Comprobante corregido");
    assert_eq!(activity["media"][0]["id"], "222");
    assert_eq!(activity["media"][0]["state"], "pending");
    // The pipeline's result folds into the original's activity like any file's.
    let result = new.result(MediaState::Failed, None, None, 1_763_700_100_000);
    env.deliver_twice(&[&result]).await;
    let activity = env.one("activity").await;
    assert_eq!(activity["media"][0]["state"], "failed", "{activity}");
}

#[tokio::test]
async fn a_revoke_removes_the_dead_lettered_copies_of_the_message() {
    let env = env();
    let events = SqliteQueue::new(env.db.clone(), wabridge_sqlite::EVENTS_QUEUE);
    let original = text(ORIG, 1_763_700_000, "Mi CURP es TOMA900101MDFRRR09");
    let fix = edit(
        "wamid.EDIT1",
        1_763_700_030,
        ORIG,
        "Mi CURP es TOMA900101MDFRRR08",
    );
    let other = text("wamid.OTHER", 1_763_700_001, "Otra cosa");
    events
        .send_batch(&[original.to_message(), fix.to_message(), other.to_message()])
        .await
        .unwrap();
    for d in events
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap()
    {
        events.dead_letter(&d, "CRM refused it").await.unwrap();
    }
    assert_eq!(events.dead_letters(10).await.unwrap().len(), 3);
    // A bot destination took all three: its log for `wabridge replay` holds them too.
    let log = wabridge_sqlite::deliveries::SqliteDeliveries::new(env.db.clone());
    for e in [&original, &fix, &other] {
        log.delivered("bot", &e.key, &e.to_json()).await.unwrap();
    }
    env.deliver_twice(&[&revoke("wamid.REV1", 1_763_700_090, ORIG)])
        .await;
    let left = events.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].body.contains("wamid.OTHER"));
    // A replay must not bring the deleted content back either: only the other message is left.
    let replayed = log.replay("bot", 0, i64::MAX).await.unwrap();
    assert_eq!(
        replayed, 1,
        "the message and its edit are gone from the log"
    );
    let q = SqliteQueue::new(env.db.clone(), "destination:bot");
    let got = q
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].body.contains("wamid.OTHER") && !got[0].body.contains("CURP"));
}
