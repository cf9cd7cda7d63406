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

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wabridge_tests::gateway::Gateway;
use wabridge_tests::prism::Prism;

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

/// A loopback "Graph API": forwards every request to Prism (so each is checked against Meta's
/// spec) except those to [`UNDELIVERABLE`] and [`STOPPED_AT_META`], answered with Meta's error
/// body (HTTP 400, `error.code`).
struct Front {
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

async fn front(prism: &Prism) -> Front {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    let upstream = prism.url().to_string();
    async fn forward(
        State(upstream): State<String>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let to = v["to"].as_str().unwrap_or_default().trim_start_matches('+');
        let meta_error = |code: i64, message: &str| {
            (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                json!({"error": {"message": message, "type": "OAuthException", "code": code,
                        "error_data": {"messaging_product": "whatsapp", "details": message},
                        "fbtrace_id": "AbCdEf"}})
                .to_string(),
            )
                .into_response()
        };
        if to == UNDELIVERABLE.trim_start_matches('+') {
            return meta_error(131026, "Message undeliverable");
        }
        if to == STOPPED_AT_META.trim_start_matches('+') {
            return meta_error(131050, "User has stopped marketing messages");
        }
        let mut req = reqwest::Client::new()
            .post(format!("{upstream}{}", uri.path()))
            .body(body.to_vec());
        for name in ["authorization", "user-agent", "content-type"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                req = req.header(name, v);
            }
        }
        match req.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let text = r.text().await.unwrap_or_default();
                (status, [("content-type", "application/json")], text).into_response()
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(forward))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Front { url, _task: task }
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

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post_json(gw: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let r = http()
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
    let r = http()
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

#[tokio::test]
async fn a_send_moves_forward_with_its_status_webhooks_and_lands_in_the_crm() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));

    // 202 → sent (Prism, Meta's spec) → delivered → read.
    let id = send_ok(
        &gw,
        template("+52 1 55 1234 0001", "order_confirmation", "UTILITY"),
    )
    .await;
    wait_state(&gw, &id, "sent").await;
    status(
        &gw,
        &id,
        "wamid.track.1",
        "5215512340001",
        "delivered",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id).await["state"], "delivered");
    status(
        &gw,
        &id,
        "wamid.track.1",
        "5215512340001",
        "read",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id).await["state"], "read");
    // Meta may send only `read`; a `delivered` arriving after it does not move the send back.
    let id3 = send_ok(
        &gw,
        template("+525512340003", "order_confirmation", "UTILITY"),
    )
    .await;
    wait_state(&gw, &id3, "sent").await;
    status(
        &gw,
        &id3,
        "wamid.track.3",
        "5215512340003",
        "read",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id3).await["state"], "read");
    status(
        &gw,
        &id3,
        "wamid.track.3",
        "5215512340003",
        "delivered",
        Value::Null,
    )
    .await;
    assert_eq!(get_send(&gw, &id3).await["state"], "read");

    // A `failed` status ends a sent send failed, with Meta's error.
    let id2 = send_ok(
        &gw,
        template("+525512340002", "order_confirmation", "UTILITY"),
    )
    .await;
    wait_state(&gw, &id2, "sent").await;
    status(
        &gw,
        &id2,
        "wamid.track.2",
        "5215512340002",
        "failed",
        json!([{"code": 131026, "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "The recipient is not on WhatsApp"}}]),
    )
    .await;
    let v = get_send(&gw, &id2).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "meta_131026", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not on WhatsApp"),
        "{v}"
    );

    // The CRM: one outbound activity per send, carrying the send id and the final state.
    let records = gw.records();
    let a = outbound(&records, &id);
    assert_eq!(a.len(), 1, "{records:#?}");
    assert_eq!(a[0]["status"], "read");
    assert_eq!(
        outbound(&records, &id3)[0]["status"],
        "read",
        "{records:#?}"
    );
    assert_eq!(a[0]["direction"], "outbound");
    assert_eq!(a[0]["callback_data"], id.as_str());
    let b = outbound(&records, &id2);
    assert_eq!(b.len(), 1, "{records:#?}");
    assert_eq!(b[0]["status"], "failed");
    assert_eq!(b[0]["errors"][0]["code"], 131026);
}

#[tokio::test]
async fn stop_keywords_and_user_preferences_stop_marketing_until_an_opt_in() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));
    let earlier = Some("2026-01-01T00:00:00Z");

    for (n, (number, wa_id, word)) in [
        ("+525512340011", "5215512340011", "STOP"),
        ("+525512340012", "5215512340012", "baja"),
    ]
    .into_iter()
    .enumerate()
    {
        consent(&gw, number, "opt_in", earlier).await;
        send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;
        inbound(
            &gw,
            wa_id,
            None,
            &format!("wamid.stop.{n}"),
            word,
            now_s() - 5,
        )
        .await;
        let (status, v) = send(&gw, template(number, "promo_verano", "MARKETING")).await;
        assert_eq!(status, 422, "{word}: {v}");
        assert_eq!(v["error"]["code"], "marketing_opted_out", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("keyword"),
            "{v}"
        );
        // Utility templates are not marketing: still allowed.
        send_ok(&gw, template(number, "order_confirmation", "UTILITY")).await;
        // A later opt-in resumes marketing: through the API, or the contact writes ALTA.
        if n == 0 {
            consent(&gw, number, "opt_in", None).await;
        } else {
            inbound(&gw, wa_id, None, "wamid.alta.1", "ALTA", now_s() - 1).await;
        }
        send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;
    }

    // `user_preferences`: stop, then resume.
    let number = "+525512340013";
    consent(&gw, number, "opt_in", earlier).await;
    preference(&gw, "5215512340013", "stop", now_s() - 10).await;
    let (status, v) = send(&gw, template(number, "promo_verano", "MARKETING")).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "marketing_opted_out");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_preferences"),
        "{v}"
    );
    preference(&gw, "5215512340013", "resume", now_s() - 5).await;
    send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;

    // The consent history shows each change once.
    let r = http()
        .get(format!("{}/consents?to=%2B525512340011", gw.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let history: Value = r.json().await.unwrap();
    let sources: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["web_form", "keyword", "web_form"], "{history}");
    assert_eq!(history["marketing"], "opted_in");
}

#[tokio::test]
async fn template_status_updates_pause_and_resume_sends() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));
    let t0 = now_s() - 100;

    send_ok(
        &gw,
        template("+525512340021", "recordatorio_cita", "UTILITY"),
    )
    .await;
    template_status(&gw, "recordatorio_cita", "PAUSED", t0).await;
    let (status, v) = send(
        &gw,
        template("+525512340021", "recordatorio_cita", "UTILITY"),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "template_not_sendable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("PAUSED"),
        "{v}"
    );
    // Another template is not affected.
    send_ok(
        &gw,
        template("+525512340021", "order_confirmation", "UTILITY"),
    )
    .await;
    template_status(&gw, "recordatorio_cita", "APPROVED", t0 + 10).await;
    send_ok(
        &gw,
        template("+525512340021", "recordatorio_cita", "UTILITY"),
    )
    .await;
    // An older PAUSED delivered late changes nothing.
    template_status(&gw, "recordatorio_cita", "PAUSED", t0 + 5).await;
    send_ok(
        &gw,
        template("+525512340022", "recordatorio_cita", "UTILITY"),
    )
    .await;
}

#[tokio::test]
async fn an_inbound_message_opens_the_24_hour_window_under_phone_and_bsuid() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), Some(&front.url));

    let text = |to: Value| {
        let mut b = json!({"text": "Hola Ana, ¿en qué te ayudamos?"});
        b.as_object_mut()
            .unwrap()
            .extend(to.as_object().unwrap().clone());
        b
    };
    let (status, v) = send(&gw, text(json!({"to": "+525512340031"}))).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "outside_customer_service_window");
    let (status, _) = send(&gw, text(json!({"recipient": "MX.win31"}))).await;
    assert_eq!(status, 422);

    // A message 2 hours old opens the window (for its phone and its BSUID)...
    inbound(
        &gw,
        "5215512340031",
        Some("MX.win31"),
        "wamid.win.1",
        "Hola",
        now_s() - 7200,
    )
    .await;
    let id = send_ok(&gw, text(json!({"to": "+525512340031"}))).await;
    wait_state(&gw, &id, "sent").await;
    send_ok(&gw, text(json!({"recipient": "MX.win31"}))).await;
    // ... a message 25 hours old does not.
    inbound(
        &gw,
        "5215512340032",
        None,
        "wamid.win.2",
        "Hola",
        now_s() - 25 * 3600,
    )
    .await;
    let (status, v) = send(&gw, text(json!({"to": "+525512340032"}))).await;
    assert_eq!(status, 422, "{v}");
}

/// Sends that end in the sender (refused by a guard that changed while they waited, failed at
/// Meta's API, Meta's 131050) each reach the CRM as exactly one outbound activity (and 131050 as
/// a consent record), also when their events are delivered again.
#[tokio::test]
async fn sends_ended_by_the_sender_reach_the_crm_exactly_once() {
    let Some(prism) = Prism::start() else { return };
    let front = front(&prism).await;
    let dir = tempfile::tempdir().unwrap();

    // No Graph API configured: sends wait on the queue.
    let gw = start(dir.path(), None);
    let number = "+525512340041";
    consent(&gw, number, "opt_in", Some("2026-01-01T00:00:00Z")).await;
    let refused = send_ok(&gw, template(number, "promo_verano", "MARKETING")).await;
    // The contact opts out while the send waits.
    consent(&gw, number, "opt_out", None).await;
    assert!(gw.terminate());

    let gw = start(dir.path(), Some(&front.url));
    let v = wait_state(&gw, &refused, "refused").await;
    assert_eq!(v["error"]["code"], "marketing_opted_out", "{v}");
    let failed = send_ok(
        &gw,
        template(UNDELIVERABLE, "order_confirmation", "UTILITY"),
    )
    .await;
    let v = wait_state(&gw, &failed, "failed").await;
    assert_eq!(v["error"]["code"], "meta_131026", "{v}");
    consent(&gw, STOPPED_AT_META, "opt_in", Some("2026-01-01T00:00:00Z")).await;
    let stopped = send_ok(&gw, template(STOPPED_AT_META, "promo_verano", "MARKETING")).await;
    let v = wait_state(&gw, &stopped, "failed").await;
    assert_eq!(v["error"]["code"], "meta_131050", "{v}");

    let records = wabridge_tests::eventually(
        "three send_result activities and the 131050 consent",
        Duration::from_secs(20),
        || async {
            gw.wait_drained();
            let r = gw.records();
            let results = r.iter().filter(|r| r["type"] == "send_result").count();
            let consents = r.iter().filter(|r| r["kind"] == "consent").count();
            (results == 3 && consents == 1).then_some(r)
        },
    )
    .await;
    let a = outbound(&records, &refused);
    assert_eq!(a.len(), 1, "{records:#?}");
    assert_eq!(a[0]["status"], "refused");
    assert_eq!(a[0]["direction"], "outbound");
    assert_eq!(a[0]["errors"][0]["title"], "marketing_opted_out");
    assert!(a[0]["contact_id"].as_str().is_some_and(|c| !c.is_empty()));
    let b = outbound(&records, &failed);
    assert_eq!(b.len(), 1, "{records:#?}");
    assert_eq!(b[0]["status"], "failed");
    assert_eq!(b[0]["errors"][0]["code"], 131026);
    assert_eq!(b[0]["errors"][0]["title"], "meta_131026");
    let c = outbound(&records, &stopped);
    assert_eq!(c.len(), 1, "{records:#?}");
    assert_eq!(c[0]["errors"][0]["code"], 131050);
    let consent_record = records.iter().find(|r| r["kind"] == "consent").unwrap();
    assert_eq!(consent_record["status"], "opt_out");
    assert_eq!(consent_record["source"], "meta_error");
    assert_eq!(consent_record["evidence"]["send_id"], stopped.as_str());
    assert_eq!(consent_record["contact_id"], c[0]["contact_id"]);
    // Meta's opt-out now stops marketing to that number before anything leaves.
    let (status, v) = send(&gw, template(STOPPED_AT_META, "promo_verano", "MARKETING")).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("meta_error"),
        "{v}"
    );

    // Redelivery: the same send_result events on the events queue again change nothing.
    let before = gw.records();
    let db = rusqlite::Connection::open(dir.path().join("wabridge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    for (id, state, to, code) in [
        (&refused, "refused", number, "marketing_opted_out"),
        (&failed, "failed", UNDELIVERABLE, "meta_131026"),
    ] {
        let event = wabridge_core::sends::events::event(
            format!("send:{id}:{state}"),
            &wabridge_tests::model(json!({"send_id": id, "state": state, "to": to, "at": 1,
                   "error": {"code": code, "message": "again"}})),
        );
        db.execute(
            "INSERT INTO queue_messages (queue, msg_key, body, visible_at, enqueued_at) \
             VALUES ('events', ?1, ?2, 0, 0)",
            rusqlite::params![event.key, event.to_json()],
        )
        .unwrap();
    }
    let opt_out = wabridge_core::sends::events::event(
        format!("send:{stopped}:opted_out"),
        &wabridge_tests::model(
            json!({"send_id": stopped, "opted_out": true, "to": STOPPED_AT_META, "at": 1}),
        ),
    );
    db.execute(
        "INSERT INTO queue_messages (queue, msg_key, body, visible_at, enqueued_at) \
         VALUES ('events', ?1, ?2, 0, 0)",
        rusqlite::params![opt_out.key, opt_out.to_json()],
    )
    .unwrap();
    gw.wait_drained();
    assert_eq!(gw.stats()["events_queue"]["dead"], 0);
    assert_eq!(
        gw.records(),
        before,
        "a redelivered send_result adds nothing"
    );
}
