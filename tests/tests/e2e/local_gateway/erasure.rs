//! Erasure on the embedded engine, end to end: `wabridge serve` takes every sample webhook, a
//! send and a consent; `DELETE /contacts/{id}` (admin scope) erases João, whose Brazilian number
//! Meta spells with its ninth digit. Afterwards nothing the test wrote about him (numbers in
//! any spelling, his name, his message texts, his contact id) is in any table or in the file's
//! bytes, others' data is untouched, a marketing send to him is refused, and the erasure is
//! idempotent; unknown and malformed contacts answer 404 and 400.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_tests::stores::{bytes_contain, message_texts, sqlite_file_bytes, sqlite_rows};

use super::clean_logs::samples;
use super::*;

const ADMIN: &str = "erasure-admin-key-4b1d9f";
const READER: &str = "erasure-read-key-77c2e0";
/// João's number as Meta sends it (Brazil's ninth digit); he is typed below without it.
const WA_ID: &str = "5511987654321";
const NAME: &str = "João Pereira";

/// What the samples say about whoever `is_him` picks, and about everyone else.
fn split_people(is_him: impl Fn(&str) -> bool) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut his, mut others) = (BTreeSet::new(), BTreeSet::new());
    for (_, body) in samples() {
        let payload: Value = serde_json::from_slice(&body).unwrap();
        for entry in payload["entry"].as_array().into_iter().flatten() {
            for change in entry["changes"].as_array().into_iter().flatten() {
                let value = &change["value"];
                for m in value["messages"].as_array().into_iter().flatten() {
                    let from = m["from"].as_str().unwrap_or_default();
                    message_texts(m, if is_him(from) { &mut his } else { &mut others });
                }
            }
        }
    }
    (his.difference(&others).cloned().collect(), others)
}

async fn delete(url: &str, key: &str) -> (u16, Value) {
    let r = gateway::http_client()
        .delete(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_nowhere_in_the_file_and_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let keys = json!([
        {"id": "ops", "scopes": ["admin"], "key": ADMIN},
        {"id": "bi", "scopes": ["read"], "key": READER}
    ])
    .to_string();
    let env = [
        ("WHATSAPP_APP_SECRET", SECRET),
        ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
        ("WABRIDGE_API_KEYS", keys.as_str()),
    ];
    let server = Gateway::start_in(dir.path(), &env);
    for (file, body) in samples() {
        let (status, v) = post_signed(&server.webhook(), &body).await;
        assert_eq!(status, 200, "{}: {v}", file.display());
    }
    let client = gateway::http_client();
    let r = client
        .post(format!("{}/sends", server.url))
        .bearer_auth(ADMIN)
        .json(
            &json!({"to": "+55 11 98765-4321", "template": "order_update", "language": "pt_BR",
            "category": "UTILITY", "parameters": ["Pedido de João 8841"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = client
        .post(format!("{}/consents", server.url))
        .bearer_auth(ADMIN)
        .json(
            &json!({"to": WA_ID, "category": "marketing", "action": "opt_in",
            "source": "web_form", "evidence": "formulario-joao-loja-centro"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    server.wait_drained_for(Duration::from_secs(60));
    let contact_id = records(dir.path())
        .iter()
        .find(|r| r["kind"] == "contact" && r["wa_id"] == WA_ID)
        .and_then(|r| r["id"].as_str().map(String::from))
        .expect("João is a contact");
    let (texts, _) = split_people(|from| from == WA_ID);
    assert!(texts.len() >= 2, "{texts:?}");
    let others_before = records(dir.path())
        .iter()
        .filter(|r| r["kind"] == "contact" && r["id"] != contact_id.as_str())
        .count();

    // Only the admin scope erases; a malformed or unknown contact is refused.
    let url = |id: &str| format!("{}/contacts/{id}", server.url);
    let him = url("%2B55%2011%208765-4321"); // without the ninth digit, percent-encoded
    let (status, body) = delete(&him, READER).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`admin`"),
        "{body}"
    );
    let (status, body) = delete(&url("not-a-person"), ADMIN).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_contact")),
        "{body}"
    );
    let (status, body) = delete(&url("%2B5491155554444"), ADMIN).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    let (status, erased) = delete(&him, ADMIN).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["contact_id"], contact_id.as_str());
    assert_eq!(erased["already_erased"], false);
    for store in ["identities", "sends", "consent_history", "last_inbound"] {
        assert!(
            erased["removed"][store].as_u64().unwrap_or(0) > 0,
            "{store}: {erased}"
        );
    }
    // Idempotent, by any of his names.
    for again in [url(WA_ID), url(&contact_id)] {
        let (status, repeat) = delete(&again, ADMIN).await;
        assert_eq!(status, 200, "{repeat}");
        assert_eq!(repeat["erasure_id"], erased["erasure_id"]);
        assert_eq!(repeat["already_erased"], true);
    }
    // The tombstone: marketing to him is refused, as after an opt-out.
    let r = client
        .post(format!("{}/sends", server.url))
        .bearer_auth(ADMIN)
        .json(
            &json!({"to": WA_ID, "template": "promo", "language": "pt_BR",
            "category": "MARKETING"}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("erasure"),
        "{body}"
    );

    // The local CRM erases his records on the erasure record.
    server.wait_drained_for(Duration::from_secs(60));
    let audit = server.cli_ok(&["audit", "--json"]);
    assert!(
        audit.contains("\"erasure\"") && audit.contains("key:ops"),
        "{audit}"
    );
    assert!(server.terminate());

    // The CLI is the same service: a repeat finds the erasure; bad input names the flag.
    let repeat: Value = serde_json::from_str(&gateway::cli_ok(
        dir.path(),
        &["erase", "--contact", WA_ID],
        &[],
    ))
    .unwrap();
    assert_eq!(repeat["already_erased"], true, "{repeat}");
    let out = cli(&["erase", "--contact", "not-a-person"], dir.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--contact"), "{err}");
    let out = cli(
        &["erase", "--contact", "+54 9 11 5555 4444"],
        dir.path(),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no contact"), "{err}");
    assert!(
        !err.contains("5555"),
        "the error does not repeat the number: {err}"
    );

    let path = dir.path().join("wabridge.db");
    let rows = sqlite_rows(&path);
    let bytes = sqlite_file_bytes(&path);
    let mut needles: Vec<String> = texts.into_iter().collect();
    needles.extend(
        [
            WA_ID,
            "551187654321",
            "+5511987654321",
            NAME,
            "formulario-joao-loja-centro",
            "Pedido de João 8841",
        ]
        .map(String::from),
    );
    let mut left = Vec::new();
    for needle in &needles {
        for (table, row) in &rows {
            if bytes_contain(row.as_bytes(), needle) {
                left.push(format!("{needle:?} in {table}: {row}"));
            }
        }
        if bytes_contain(&bytes, needle) {
            left.push(format!("{needle:?} in the file's bytes"));
        }
    }
    for (table, row) in &rows {
        if table != "erasures" && row.contains(&contact_id) {
            left.push(format!("the contact id in {table}: {row}"));
        }
    }
    assert!(
        left.is_empty(),
        "left after the erasure:\n{}",
        left.join("\n")
    );
    let others_after = records(dir.path())
        .iter()
        .filter(|r| r["kind"] == "contact")
        .count();
    assert_eq!(others_after, others_before, "the others' contacts stay");
    assert!(
        rows.iter()
            .any(|(t, r)| t == "identities" && r.contains("phone:5521")),
        "others' identities stay"
    );
}
