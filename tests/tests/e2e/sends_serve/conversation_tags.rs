//! Tags, agents, outcomes and conversions of a conversation through `wabridge serve`: the
//! mapping's `[tags]` rules tag it from the customer's messages; `PATCH /conversations/{id}`
//! and `POST /conversations/{id}/tags` change it (checked against the catalogues, precise 4xx
//! otherwise); `wabridge conversations close|tag` do the same from the command line; a
//! conversion makes it `converted` with its value, once; its lead names it. Every change
//! reaches the local CRM through the events queue.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

const MAPPING: &str = r#"
[agents]
ids = ["ana", "bruno"]
[outcomes]
ids = ["resolved", "converted", "lost"]
[tags]
ids = ["pricing", "express", "vip"]
[[tags.rules]]
tag = "pricing"
keyword = "precio"
[[tags.rules]]
tag = "express"
list_reply_id = "envio_express"
"#;

/// `method` on `path` with a JSON (or raw) body and the API key.
async fn call(gw: &Gateway, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = http_client()
        .request(method, format!("{}{path}", gw.url))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn json_call(gw: &Gateway, method: &str, path: &str, body: Value) -> (u16, Value) {
    call(gw, method, path, body.to_string().into_bytes()).await
}

/// The CRM's latest revision of conversation `id`, once `ready` holds for it.
async fn in_crm(gw: &Gateway, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wabridge_tests::eventually(what, Duration::from_secs(20), || async {
        gw.wait_drained();
        gw.records()
            .into_iter()
            .find(|r| r["kind"] == "conversation" && r["id"] == id)
            .filter(|r| ready(r))
    })
    .await
}

#[tokio::test]
async fn tags_agents_outcomes_and_conversions_reach_the_crm_through_api_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    let text = format!("{}\n{MAPPING}", wabridge_core::mapping::LOCAL_EXAMPLE);
    std::fs::write(&mapping, text).unwrap();
    let gw = Gateway::start_in(
        &dir.path().join("data"),
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WABRIDGE_API_KEY", API_KEY),
            ("WABRIDGE_MAPPING", mapping.to_str().unwrap()),
        ],
    );
    let wa_id = "5215512340081";
    let t0 = now_s() - 600;
    // Tags by rule: a keyword (accents and case ignored) and a list reply.
    inbound(&gw, wa_id, None, "wamid.TAG-IN1", "¿Cuál es el PRECIO?", t0).await;
    let reply = json!({"from": wa_id, "id": "wamid.TAG-IN2", "timestamp": (t0 + 5).to_string(),
        "type": "interactive", "interactive": {"type": "list_reply",
        "list_reply": {"id": "envio_express", "title": "Express"}}});
    webhook(
        &gw,
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
               "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}], "messages": [reply]}),
    )
    .await;
    let first = wabridge_tests::eventually(
        "the tagged conversation",
        Duration::from_secs(20),
        || async {
            gw.records()
                .into_iter()
                .find(|r| r["kind"] == "conversation" && r["inbound_count"] == 2)
        },
    )
    .await;
    assert_eq!(first["tags"], json!(["express", "pricing"]), "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    let path = format!("/conversations/{id}");
    let tags_path = format!("{path}/tags");

    // Refusals: precise, naming the value and the catalogue; nothing changes.
    let (status, v) = json_call(&gw, "PATCH", &path, json!({"agent": "carla"})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_agent")),
        "{v}"
    );
    let (status, v) = json_call(&gw, "PATCH", &path, json!({"tags": ["vip", "gold"]})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_tag")),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"gold\"") && message.contains("pricing, express, vip"),
        "{v}"
    );
    let (status, v) = json_call(&gw, "POST", &tags_path, json!({"tags": ["gold"]})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_tag")),
        "{v}"
    );
    let (status, v) = json_call(&gw, "PATCH", &path, json!({})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("empty_change")),
        "{v}"
    );
    let (status, v) = call(&gw, "PATCH", &path, Vec::new()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("empty"),
        "{v}"
    );
    let (status, v) = json_call(&gw, "PATCH", &path, json!({"tags": "vip"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = json_call(&gw, "POST", &tags_path, json!({"tags": []})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("empty_change")),
        "{v}"
    );
    let big = json!({"tags": vec!["vip"; 5000]});
    let (status, _) = json_call(&gw, "POST", &tags_path, big).await;
    assert_eq!(status, 413);
    let (status, v) = json_call(
        &gw,
        "PATCH",
        "/conversations/cnv_missing",
        json!({"outcome": "lost"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cnv_missing"),
        "{v}"
    );
    let (status, v) = json_call(
        &gw,
        "POST",
        "/conversations/cnv_missing/tags",
        json!({"tags": ["vip"]}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let (status, _) = json_call(&gw, "GET", &tags_path, json!({})).await;
    assert_eq!(status, 405);
    let unchanged = gw.cli_ok(&["conversations", "show", &id]);
    assert!(
        unchanged.contains(&format!("\"revision\": {}", first["revision"])),
        "{unchanged}"
    );

    // PATCH replaces the tags and assigns the agent; POST adds.
    let (status, v) = json_call(
        &gw,
        "PATCH",
        &path,
        json!({"agent": "bruno", "tags": ["vip"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["agent"].as_str(), &v["tags"]),
        (Some("bruno"), &json!(["vip"]))
    );
    let (status, v) = json_call(&gw, "POST", &tags_path, json!({"tags": ["pricing", "vip"]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["tags"], json!(["pricing", "vip"]));

    // DELETE removes one tag; a repeat, or a tag it lacks, changes nothing; outside the
    // catalogue is a 422.
    let (status, v) = call(&gw, "DELETE", &format!("{tags_path}/pricing"), Vec::new()).await;
    assert_eq!((status, &v["tags"]), (200, &json!(["vip"])), "{v}");
    let revision = v["revision"].clone();
    for tag in ["pricing", "express"] {
        let (status, v) = call(&gw, "DELETE", &format!("{tags_path}/{tag}"), Vec::new()).await;
        assert_eq!((status, &v["revision"]), (200, &revision), "{tag}: {v}");
    }
    let (status, v) = call(&gw, "DELETE", &format!("{tags_path}/gold"), Vec::new()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("unknown_tag")),
        "{v}"
    );
    let (status, _) = call(&gw, "POST", &format!("{tags_path}/vip"), Vec::new()).await;
    assert_eq!(status, 405);
    let (status, _) = call(
        &gw,
        "DELETE",
        "/conversations/cnv_missing/tags/vip",
        Vec::new(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, v) = json_call(&gw, "POST", &tags_path, json!({"tags": ["pricing"]})).await;
    assert_eq!(
        (status, &v["tags"]),
        (200, &json!(["pricing", "vip"])),
        "{v}"
    );

    // The CLI: close, then tag the closed conversation; errors name the field.
    let closed: Value = serde_json::from_str(&gw.cli_ok(&["conversations", "close", &id])).unwrap();
    assert_eq!(closed["close_reason"], "explicit");
    let tagged: Value =
        serde_json::from_str(&gw.cli_ok(&["conversations", "tag", &id, "express"])).unwrap();
    assert_eq!(tagged["tags"], json!(["express", "pricing", "vip"]));
    assert_eq!(
        tagged["closed_at"], closed["closed_at"],
        "a closed conversation stays closed"
    );
    let untagged: Value =
        serde_json::from_str(&gw.cli_ok(&["conversations", "tag", &id, "express", "--remove"]))
            .unwrap();
    assert_eq!(untagged["tags"], json!(["pricing", "vip"]));
    let tagged: Value =
        serde_json::from_str(&gw.cli_ok(&["conversations", "tag", &id, "express"])).unwrap();
    assert_eq!(tagged["tags"], json!(["express", "pricing", "vip"]));
    let refused = gw.cli(&["conversations", "tag", &id, "gold"], &[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("tag \"gold\"") && err.contains("pricing, express, vip"),
        "{err}"
    );
    let missing = gw.cli(&["conversations", "close", "cnv_missing"], &[]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("cnv_missing"),
        "{err}"
    );

    // An outcome on the closed conversation: taken, still closed; all of it in the CRM.
    let (status, v) = json_call(&gw, "PATCH", &path, json!({"outcome": "resolved"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["closed_at"], closed["closed_at"]);
    let crm = in_crm(
        &gw,
        &id,
        "the API's and the CLI's changes in the CRM",
        |r| r["outcome"] == "resolved",
    )
    .await;
    assert_eq!(crm["tags"], json!(["express", "pricing", "vip"]), "{crm}");
    assert_eq!(crm["agent"], "bruno");
    assert_eq!(crm["close_reason"], "explicit");

    // A conversion names the conversation (from its lead), twice: converted with its value.
    let records = gw.records();
    let lead = records
        .iter()
        .find(|r| r["kind"] == "lead")
        .unwrap_or_else(|| panic!("no lead: {records:#?}"));
    assert_eq!(lead["conversation_id"], id.as_str(), "{lead}");
    let sale = json!({"contact_id": first["contact_id"], "value": 250.5, "currency": "mxn",
                      "event_id": "deal-77", "conversation_id": id});
    for _ in 0..2 {
        let (status, v) = json_call(&gw, "POST", "/conversions", sale.clone()).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["conversation_id"], id.as_str(), "{v}");
    }
    let crm = in_crm(&gw, &id, "the conversion in the CRM", |r| {
        r["outcome"] == "converted"
    })
    .await;
    assert_eq!(
        (
            crm["outcome_value"].as_f64(),
            crm["outcome_currency"].as_str()
        ),
        (Some(250.5), Some("MXN"))
    );
    let shown: Value = serde_json::from_str(&gw.cli_ok(&["conversations", "show", &id])).unwrap();
    assert_eq!(
        shown["revision"], crm["revision"],
        "the repeat changed nothing"
    );
    assert_eq!(gw.stats()["events_queue"]["dead"], 0);
}
