//! `wabridge serve` with the local CRM: a revoke posted before its message, an edit, echoes from
//! the Business app and a call's events out of order land as `wabridge records` shows them,
//! each posted twice.

use serde_json::json;

use super::*;

fn messages(items: Value) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "525550001111", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Mariana Torres"}, "wa_id": "5215512345678"}],
        "messages": items}}]}]})
    .to_string()
    .into_bytes()
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("events/webhooks").join(name)).unwrap()
}

#[tokio::test]
async fn records_show_edits_deletions_echoes_and_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let from = "5215512345678";
    let revoke = messages(
        json!([{"from": from, "id": "wamid.R1", "timestamp": "1763700090",
        "type": "revoke", "revoke": {"original_message_id": "wamid.O2"}}]),
    );
    let edit = messages(
        json!([{"from": from, "id": "wamid.E1", "timestamp": "1763700060",
        "type": "edit", "edit": {"original_message_id": "wamid.O1",
        "message": {"type": "text", "text": {"body": "Son 3 camisas, no 2"}}}}]),
    );
    let originals = messages(json!([
        {"from": from, "id": "wamid.O1", "timestamp": "1763700000", "type": "text",
         "text": {"body": "Son 2 camisas"}},
        {"from": from, "id": "wamid.O2", "timestamp": "1763700010", "type": "text",
         "text": {"body": "Mi CURP es TOMA900101MDFRRR09"}}]));
    let calls = sample("call_business_status_terminate_pt_br.json");
    let echoes = sample("echoes_text_edit_revoke_pt_br.json");
    // Changes before their messages; every delivery twice.
    for body in [&revoke, &edit, &originals, &calls, &echoes] {
        for _ in 0..2 {
            let (status, answer) = post_signed(&server.webhook(), body).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    server.wait_drained();
    let records = server.records();
    let activity = |id: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "activity" && r["message_id"] == id)
            .unwrap_or_else(|| panic!("no activity {id}: {records:?}"))
            .clone()
    };
    let edited = activity("wamid.O1");
    assert_eq!(edited["text"], "Son 3 camisas, no 2");
    assert_eq!(edited["edited_at"], 1_763_700_060_000i64);
    let deleted = activity("wamid.O2");
    assert_eq!(deleted["deleted_at"], 1_763_700_090_000i64);
    assert!(deleted.get("text").is_none());
    let echo = activity("wamid.HBgNRUNITzA1UFRCUjAwMDAwNQ==");
    assert_eq!(echo["agent"], "whatsapp_business_app");
    assert_eq!(echo["text"], "Oi João! Seu pedido sai hoje à tarde.");
    let calls: Vec<&Value> = records.iter().filter(|r| r["kind"] == "call").collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "rejected");
    assert_eq!(calls[0]["ended"], true);
    let changes = records
        .iter()
        .filter(|r| r["kind"] == "message_change")
        .count();
    assert_eq!(changes, 4, "two of Mariana's, the echo's edit and revoke");
    assert!(records.iter().all(|r| r["kind"] != "unknown"));
    // The deleted text is nowhere in the database file's records.
    let text = server.cli_ok(&["records", "--json"]);
    assert!(!text.contains("TOMA900101"));
}
