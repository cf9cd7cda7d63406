//! The webhook endpoint: Meta's verification handshake, signed deliveries recorded once, and
//! precise errors for bad requests.

use serde_json::Value;
use wabridge_core::signature::{sign, AppSecret};
use wabridge_tests::gateway::{http_client, Gateway};

use super::*;

#[tokio::test]
async fn handshake_echoes_the_challenge_only_with_the_right_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let ok = http_client()
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444",
            server.webhook()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let bad = http_client()
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444",
            server.webhook()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    let health = http_client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn signed_deliveries_become_records_once_even_when_posted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let body = batch("A");
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    // Meta retries the same delivery (same bytes) and a later one repeats one message.
    let (status, _) = post_signed(&server.webhook(), &body).await;
    assert_eq!(status, 200);
    server.wait_drained();
    let recs = records(dir.path());
    assert!(
        recs.iter().all(|r| r["kind"].is_string()),
        "every line has a kind: {recs:#?}"
    );
    // 2 inbound messages + 1 status = 3 activities, 1 unknown field, 2 people: each once.
    assert_eq!(count_kind(&recs, "activity"), 3, "{recs:#?}");
    assert_eq!(count_kind(&recs, "unknown"), 1, "{recs:#?}");
    assert_eq!(count_kind(&recs, "contact"), 2, "{recs:#?}");
    // The default lead policy opens one lead per person's first conversation: once each too.
    let leads: Vec<&Value> = recs.iter().filter(|r| r["kind"] == "lead").collect();
    let mut lead_contacts: Vec<&str> = leads
        .iter()
        .map(|r| r["contact_id"].as_str().expect("lead has a contact_id"))
        .collect();
    lead_contacts.sort();
    lead_contacts.dedup();
    assert!(!leads.is_empty(), "{recs:#?}");
    assert_eq!(
        lead_contacts.len(),
        leads.len(),
        "one lead per person: {recs:#?}"
    );
    // One conversation per person, kept at its latest revision.
    assert_eq!(count_kind(&recs, "conversation"), 2, "{recs:#?}");
    let others = recs
        .iter()
        .filter(|r| !["lead", "attribution", "conversation"].contains(&r["kind"].as_str().unwrap()))
        .count();
    assert_eq!(others, 6, "{recs:#?}");
    let unknown = recs.iter().find(|r| r["kind"] == "unknown").unwrap();
    assert_eq!(unknown["field"], "brand_new_field_meta_added");
    let text = recs
        .iter()
        .find(|r| r["message_id"] == "wamid.A.1")
        .expect("the first message became an activity");
    assert_eq!(text["text"], "Hola, ¿tienen envío a Monterrey?");

    let s = stats(dir.path());
    assert_eq!(s["dedupe_keys"], 4);
    assert_eq!(s["events_queue"]["dead"], 0);
}

#[tokio::test]
async fn bad_requests_get_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Gateway::start_in(
        dir.path(),
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WABRIDGE_MAX_BODY_BYTES", "4096"),
        ],
    );
    let c = http_client();
    let body = batch("B");

    let unsigned = c
        .post(server.webhook())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let v: Value = unsigned.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");

    let wrong = c
        .post(server.webhook())
        .header(
            "x-hub-signature-256",
            sign(&AppSecret::new("other").unwrap(), &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let (status, v) = post_signed(&server.webhook(), b"{\"object\": \"whatsapp_business_acc").await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["code"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );

    let (status, v) = post_signed(&server.webhook(), br#"{"object":"page","entry":[]}"#).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("object"),
        "names the problem: {v}"
    );

    let big = vec![b' '; 4097];
    let (status, v) = post_signed(&server.webhook(), &big).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
    let huge = vec![b' '; 3 * 1024 * 1024];
    let (status, _) = post_signed(&server.webhook(), &huge).await;
    assert_eq!(status, 413);

    let missing = c.get(format!("{}/nope", server.url)).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let put = c.put(server.webhook()).body("x").send().await.unwrap();
    assert_eq!(put.status().as_u16(), 405);

    // None of that left anything behind.
    server.wait_drained();
    assert!(records(dir.path()).is_empty());
}
