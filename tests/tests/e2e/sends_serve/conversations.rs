//! Conversations and agents through `wabridge serve`: an agent named on `POST /sends` (checked
//! against the mapping's `[agents]` catalogue) is assigned to the conversation by the first
//! status of the send, and the conversation's first-response time is exact; `wabridge
//! conversations list|show` print it; `PATCH /conversations/{id}` sets its outcome.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn an_agent_named_on_a_send_is_assigned_to_the_conversation_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    let text = format!(
        "{}\n[agents]\nids = [\"ana\", \"bruno\"]\n[outcomes]\nids = [\"resolved\", \"lost\"]\n",
        wabridge_core::mapping::LOCAL_EXAMPLE
    );
    std::fs::write(&mapping, text).unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(
        &data,
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WABRIDGE_API_KEY", API_KEY),
            ("WABRIDGE_MAPPING", mapping.to_str().unwrap()),
        ],
    );
    let (wa_id, to) = ("5215512340071", "+5215512340071");
    let t0 = now_s() - 600;
    inbound(&gw, wa_id, None, "wamid.CONV-IN1", "¿Tienen talla M?", t0).await;

    // Outside the catalogue: 422 naming the value and the catalogue; nothing is sent.
    let (status, v) = send(&gw, json!({"to": to, "text": "Hola", "agent": "carla"})).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "unknown_agent", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("carla") && message.contains("ana, bruno"),
        "{v}"
    );

    let first = send_ok(
        &gw,
        json!({"to": to, "text": "Sí, la tenemos", "agent": "ana"}),
    )
    .await;
    let second = send_ok(
        &gw,
        json!({"to": to, "text": "¿Te la aparto?", "agent": "bruno"}),
    )
    .await;
    // Meta's statuses of both replies: Ana's 90 s after the question, Bruno's later.
    for (send_id, wamid, at) in [
        (&first, "wamid.CONV-OUT1", t0 + 90),
        (&second, "wamid.CONV-OUT2", t0 + 200),
    ] {
        let s = json!({"id": wamid, "status": "sent", "timestamp": at.to_string(),
                       "recipient_id": wa_id, "biz_opaque_callback_data": send_id});
        webhook(
            &gw,
            "messages",
            json!({"messaging_product": "whatsapp", "metadata": metadata(), "statuses": [s]}),
        )
        .await;
    }
    let conversation = wabridge_tests::eventually(
        "the conversation with both replies",
        Duration::from_secs(20),
        || async {
            gw.wait_drained();
            gw.records()
                .into_iter()
                .find(|r| r["kind"] == "conversation" && r["outbound_count"] == 2)
        },
    )
    .await;
    assert_eq!(conversation["agent"], "ana", "{conversation}");
    assert_eq!(conversation["first_response_ms"], 90_000, "{conversation}");
    assert_eq!(conversation["opened_by"], "customer");
    assert_eq!(conversation["inbound_count"], 1);
    let records = gw.records();
    let replies = outbound(&records, &first);
    assert_eq!(replies.len(), 1, "{records:#?}");
    assert_eq!(replies[0]["agent"], "ana");
    assert_eq!(replies[0]["conversation_id"], conversation["id"]);

    // The CLI shows the same conversation; an unknown id is an error naming it.
    let listed =
        wabridge_tests::gateway::json_lines(&gw.cli_ok(&["conversations", "list", "--json"]));
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], conversation["id"]);
    let id = conversation["id"].as_str().unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&gw.cli_ok(&["conversations", "show", id])).unwrap();
    assert_eq!(shown["first_response_ms"], 90_000);
    assert_eq!(shown["agent"], "ana");
    let table = gw.cli_ok(&["conversations", "list"]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(id) && l.contains("ana")),
        "{table}"
    );
    let missing = gw.cli(&["conversations", "show", "cnv_missing"], &[]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no conversation with id cnv_missing"), "{err}");

    // The outcome through the API: validated, stored, and in the CRM through crm-sync.
    let path = format!("/conversations/{id}");
    let (status, v) = patch(&gw, &path, json!({"outcome": "won"}), Some(API_KEY)).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "unknown_outcome", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("won") && message.contains("resolved, lost"),
        "{v}"
    );
    let (status, v) = patch(&gw, &path, json!({"outcome": 3}), Some(API_KEY)).await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = patch(&gw, &path, json!({"outcome": "resolved"}), None).await;
    assert_eq!(status, 401);
    let (status, v) = patch(
        &gw,
        "/conversations/cnv_missing",
        json!({"outcome": "resolved"}),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    // Twice: the second changes nothing.
    for _ in 0..2 {
        let (status, v) = patch(&gw, &path, json!({"outcome": "resolved"}), Some(API_KEY)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["outcome"], "resolved");
        assert_eq!(
            v["revision"],
            conversation["revision"].as_u64().unwrap() + 1
        );
    }
    let resolved = wabridge_tests::eventually(
        "the outcome in the CRM",
        Duration::from_secs(20),
        || async {
            gw.wait_drained();
            gw.records()
                .into_iter()
                .find(|r| r["kind"] == "conversation" && r["outcome"] == "resolved")
        },
    )
    .await;
    assert_eq!(resolved["id"], conversation["id"]);
    assert_eq!(resolved["first_response_ms"], 90_000);
    assert_eq!(gw.stats()["events_queue"]["dead"], 0);
}

async fn patch(
    gw: &Gateway,
    path: &str,
    body: serde_json::Value,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut r = http_client().patch(format!("{}{path}", gw.url)).json(&body);
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    let r = r.send().await.unwrap();
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(serde_json::Value::Null),
    )
}
