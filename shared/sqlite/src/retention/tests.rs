use serde_json::{json, Value};
use wabridge_core::retention::PURGED;
use wabridge_core::sends::store::{SendRecord, SendState, SendStore};

use super::*;
use crate::{SqliteRecords, SqliteSends};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_800_000_000_000;
const OLD_TEXT: &str = "Hola, quiero el pedido A-17 en Rua Augusta 1200";
const NEW_TEXT: &str = "Bom dia, ainda tem estoque?";

fn activity(text: &str) -> Value {
    json!({"event_id":"e","contact_id":"c_1","kind":"text","direction":"inbound",
           "message_id":"wamid.X","at":1,"text":text,"payload":"BTN_SI","context":{"id":"wamid.Y"},
           "media":[{"id":"m","caption":text}],"fields":{"note":text}})
}

fn send(id: &str, created_at: i64, parameter: &str) -> SendRecord {
    SendRecord {
        id: id.into(),
        idempotency_key: None,
        request_hash: "h".into(),
        request: json!({"to":"+5215512345678","contact":"+5215512345678","type":"template",
                        "name":"pedido","language":"es_MX","parameters":[parameter]}),
        contact: "+5215512345678".into(),
        state: SendState::Sent,
        error: None,
        wamid: Some(format!("wamid.{id}")),
        created_at,
        updated_at: created_at,
    }
}

async fn dead_letter(db: &Db, id: i64, enqueued_at: i64, body: &str) {
    let body = body.to_string();
    db.write(move |t| {
        t.execute(
            "INSERT INTO queue_dead_letters(id, queue, msg_key, body, reason, receive_count,
             dead_lettered_at, enqueued_at) VALUES (?1, 'events', 'k', ?2, 'r', 1, ?3, ?3)",
            params![id, body, enqueued_at],
        )
        .map_err(sql_err)
    })
    .await
    .unwrap();
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn content_past_the_retention_is_gone_from_tables_and_file_and_the_rest_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let db = Db::open(&path).unwrap();
    let clock = Clock::manual(NOW - 100 * DAY);
    let records = SqliteRecords::new(db.clone()).with_clock(clock.clone());
    records
        .upsert("activity", "old", activity(OLD_TEXT))
        .await
        .unwrap();
    records
        .upsert(
            "unknown",
            "u",
            json!({"event_id":"u","field":"x","raw":{"note":OLD_TEXT}}),
        )
        .await
        .unwrap();
    let evidence = json!({"event_id":"k","contact_id":"c_1","status":"opted_out",
        "evidence":{"keyword":"BAJA","text":"BAJA por favor"}});
    records
        .upsert("consent", "k", evidence.clone())
        .await
        .unwrap();
    records
        .upsert("contact", "c_1", json!({"id":"c_1","name":"Ana"}))
        .await
        .unwrap();
    let sends = SqliteSends::new(db.clone());
    sends
        .create(&send("snd_old", NOW - 100 * DAY, OLD_TEXT))
        .await
        .unwrap();
    sends
        .create(&send("snd_new", NOW - 10 * DAY, NEW_TEXT))
        .await
        .unwrap();
    dead_letter(&db, 1, NOW - 100 * DAY, OLD_TEXT).await;
    dead_letter(&db, 2, NOW - 10 * DAY, NEW_TEXT).await;
    clock.advance(std::time::Duration::from_millis((90 * DAY) as u64));
    records
        .upsert("activity", "new", activity(NEW_TEXT))
        .await
        .unwrap();
    clock.advance(std::time::Duration::from_millis((10 * DAY) as u64));

    let purge = SqliteContentPurge::new(db.clone(), std::time::Duration::from_secs(90 * 86_400))
        .with_clock(clock.clone());
    assert_eq!(
        purge.purge_records(1).await.unwrap(),
        1,
        "the batch limit holds"
    );
    assert_eq!(purge.purge_records(100).await.unwrap(), 1);
    assert_eq!(purge.purge_sends(100).await.unwrap(), 1);
    assert_eq!(purge.purge_dead_letters(100).await.unwrap(), 1);
    // A second run finds nothing left to do.
    assert_eq!(purge.purge_records(100).await.unwrap(), 0);
    assert_eq!(purge.purge_sends(100).await.unwrap(), 0);

    let old = records.get("activity", "old").await.unwrap().unwrap().body;
    for field in wabridge_core::retention::ACTIVITY_CONTENT {
        assert!(old.get(*field).is_none(), "{field} left: {old:?}");
    }
    assert_eq!(old[PURGED], true);
    assert_eq!(old["direction"], "inbound", "what is not content stays");
    assert_eq!(old["message_id"], "wamid.X");
    let unknown = records.get("unknown", "u").await.unwrap().unwrap().body;
    assert!(unknown.get("raw").is_none());
    let new = records.get("activity", "new").await.unwrap().unwrap().body;
    assert_eq!(new["text"], NEW_TEXT, "content within the retention stays");
    let consent = records.get("consent", "k").await.unwrap().unwrap().body;
    assert_eq!(
        consent["evidence"], evidence["evidence"],
        "consent evidence outlives content"
    );
    assert!(records.get("contact", "c_1").await.unwrap().is_some());

    let old_send = sends.get("snd_old").await.unwrap().unwrap();
    assert!(old_send.request.get("parameters").is_none());
    assert_eq!(old_send.request["name"], "pedido");
    assert_eq!(old_send.state, SendState::Sent);
    let new_send = sends.get("snd_new").await.unwrap().unwrap();
    assert_eq!(new_send.request["parameters"][0], NEW_TEXT);

    let left: Vec<i64> = db
        .read(|c| {
            let mut s = c
                .prepare("SELECT id FROM queue_dead_letters")
                .map_err(sql_err)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
        .await
        .unwrap();
    assert_eq!(left, vec![2]);

    let bytes = file_bytes(&path);
    assert!(!contains(&bytes, OLD_TEXT), "purged text still in the file");
    assert!(contains(&bytes, NEW_TEXT), "the scan reads the file");
}
