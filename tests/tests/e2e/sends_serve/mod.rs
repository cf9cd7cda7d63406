//! Outgoing sends wired into the event flow, end to end through the real `wabridge serve`
//! binary: `POST /sends` → the sender → Meta's API (Prism mocking Meta's OpenAPI spec, behind a
//! small loopback front that answers Meta's error for two chosen numbers) → signed status,
//! message, `user_preferences` and `message_template_status_update` webhooks → `GET /sends/{id}`,
//! the policy guards, and the CRM records (`wabridge records --json`).
//!
//! What would break each test: a status webhook not applied to its send (delivery tracking),
//! a STOP / `user_preferences` / template status not reaching the guards, the 24-hour window
//! not written by inbound messages, a send that ends in the sender not reported to the CRM (or
//! reported twice).

mod alerts;
mod conversation_tags;
mod conversations;
mod crm;
mod delivery;
mod front;
mod guards;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wabridge_tests::gateway::{http_client, Gateway};

use front::front;

const SECRET: &str = "sends-serve-test-secret";
const API_KEY: &str = "sends-serve-api-key";
const PHONE_NUMBER_ID: &str = "106540352242922";
/// The front answers Meta's 131026 (undeliverable) for this number...
const UNDELIVERABLE: &str = "+525512340026";
/// ... and 131050 (the user stopped marketing messages) for this one.
const STOPPED_AT_META: &str = "+525512340050";

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The gateway over `data`, sending through `graph` (or not sending at all: `None`).
fn start(data: &Path, graph: Option<&str>) -> Gateway {
    let mut env = vec![
        ("WHATSAPP_APP_SECRET", SECRET),
        ("WABRIDGE_API_KEY", API_KEY),
    ];
    if let Some(url) = graph {
        env.extend([
            ("WHATSAPP_API_URL", url),
            ("WHATSAPP_ACCESS_TOKEN", "EAAGtestToken123"),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ]);
    }
    Gateway::start_in(data, &env)
}

async fn post_json(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let r = http_client()
        .post(format!("{}{path}", gw.url))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn send(gw: &Gateway, body: Value) -> (u16, Value) {
    post_json(gw, "/sends", body).await
}

/// `POST /sends` that must be accepted; returns the send id.
async fn send_ok(gw: &Gateway, body: Value) -> String {
    let (status, v) = send(gw, body.clone()).await;
    assert_eq!(status, 202, "{body} → {v}");
    v["id"].as_str().unwrap().to_string()
}

async fn get_send(gw: &Gateway, id: &str) -> Value {
    let r = http_client()
        .get(format!("{}/sends/{id}", gw.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

async fn wait_state(gw: &Gateway, id: &str, state: &str) -> Value {
    wabridge_tests::eventually(
        &format!("send {id} to be {state}"),
        Duration::from_secs(45),
        || async {
            let v = get_send(gw, id).await;
            (v["state"] == state).then_some(v)
        },
    )
    .await
}

async fn consent(gw: &Gateway, to: &str, action: &str, at: Option<&str>) {
    let mut body = json!({"to": to, "action": action, "category": "marketing", "source": "web_form",
                          "evidence": "https://example.com/form/42"});
    if let Some(at) = at {
        body["at"] = json!(at);
    }
    let (status, v) = post_json(gw, "/consents", body).await;
    assert_eq!(status, 201, "{v}");
}

/// Posts a signed webhook and waits until crm-sync has handled everything.
async fn webhook(gw: &Gateway, value_field: &str, value: Value) {
    webhook_at(gw, value_field, value, now_s()).await
}

/// [`webhook`] with `entry[].time` = `time`.
async fn webhook_at(gw: &Gateway, value_field: &str, value: Value, time: i64) {
    let body = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "102290129340398", "time": time,
         "changes": [{"field": value_field, "value": value}]}]});
    let (status, v) = gw.post_signed(body.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{v}");
    gw.wait_drained();
    assert_eq!(
        gw.stats()["events_queue"]["dead"],
        0,
        "nothing dead-lettered"
    );
}

fn metadata() -> Value {
    json!({"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID})
}

async fn status(gw: &Gateway, send_id: &str, wamid: &str, wa_id: &str, st: &str, errors: Value) {
    let mut s = json!({"id": wamid, "status": st, "timestamp": now_s().to_string(),
                       "recipient_id": wa_id, "biz_opaque_callback_data": send_id});
    if !errors.is_null() {
        s["errors"] = errors;
    }
    webhook(
        gw,
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(), "statuses": [s]}),
    )
    .await;
}

async fn inbound(gw: &Gateway, wa_id: &str, user_id: Option<&str>, id: &str, text: &str, ts: i64) {
    let mut msg = json!({"from": wa_id, "id": id, "timestamp": ts.to_string(), "type": "text",
                         "text": {"body": text}});
    let mut contact = json!({"profile": {"name": "Ana"}, "wa_id": wa_id});
    if let Some(u) = user_id {
        msg["from_user_id"] = json!(u);
        contact["user_id"] = json!(u);
    }
    webhook(
        gw,
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
               "contacts": [contact], "messages": [msg]}),
    )
    .await;
}

async fn preference(gw: &Gateway, wa_id: &str, value: &str, ts: i64) {
    webhook(
        gw,
        "user_preferences",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
               "contacts": [{"wa_id": wa_id, "profile": {"name": "Ana"}}],
               "user_preferences": [{"wa_id": wa_id, "detail": "User requested to stop marketing messages",
                                      "category": "marketing_messages", "value": value,
                                      "timestamp": ts}]}),
    )
    .await;
}

async fn template_status(gw: &Gateway, name: &str, event: &str, time: i64) {
    webhook_at(
        gw,
        "message_template_status_update",
        json!({"event": event, "message_template_id": 594425479261596_i64,
               "message_template_name": name, "message_template_language": "es_MX",
               "reason": "NONE"}),
        time,
    )
    .await;
}

fn template(to: &str, name: &str, category: &str) -> Value {
    json!({"to": to, "template": name, "language": "es_MX", "category": category})
}

fn outbound<'a>(records: &'a [Value], send_id: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["kind"] == "activity" && r["send_id"] == send_id)
        .collect()
}
