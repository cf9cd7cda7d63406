//! End-to-end tests of the real `wabridge` binary: built once, spawned on port 0 with a temporary
//! data dir, driven over loopback HTTP and through its CLI, its SQLite file inspected directly.

mod api_keys;
mod changes_calls;
pub(crate) mod clean_logs;
mod cli;
mod crash;
mod durability;
mod erasure;
mod media;
mod outage;
mod retention;
mod startup;
mod webhook;

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};
use wabridge_tests::gateway::{self, Gateway};
use wabridge_tests::workspace_root;

const SECRET: &str = "local-gateway-test-secret";
const VERIFY_TOKEN: &str = "local-gateway-verify-token";

const ENV: &[(&str, &str)] = &[
    ("WHATSAPP_APP_SECRET", SECRET),
    ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
];

/// The gateway over `data` with the test's secret and verify token.
fn start(data: &Path) -> Gateway {
    Gateway::start_in(data, ENV)
}

fn cli(args: &[&str], data: &Path, env: &[(&str, &str)]) -> Output {
    gateway::cli(data, args, env)
}

fn records(data: &Path) -> Vec<Value> {
    gateway::json_lines(&gateway::cli_ok(data, &["records", "--json"], &[]))
}

fn stats(data: &Path) -> Value {
    serde_json::from_str(&gateway::cli_ok(data, &["stats"], &[])).unwrap()
}

async fn post_signed(url: &str, body: &[u8]) -> (u16, Value) {
    gateway::post_signed_with(url, SECRET, body).await
}

fn message(id: &str, from: &str, text: &str) -> Value {
    json!({"from": from, "id": id, "timestamp": "1749416383", "type": "text", "text": {"body": text}})
}

/// A batched delivery: two entries; messages, a status and a field we do not map.
fn batch(tag: &str) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "102290129340398", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": "María José"}, "wa_id": "5215512345678"}],
                    "messages": [
                        message(&format!("wamid.{tag}.1"), "5215512345678", "Hola, ¿tienen envío a Monterrey?"),
                        message(&format!("wamid.{tag}.2"), "5215512345678", "Gracias")
                    ]}},
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                    "statuses": [{"id": format!("wamid.{tag}.out"), "status": "delivered",
                                  "timestamp": "1749416400", "recipient_id": "5511987654321"}]}}
            ]},
            {"id": "102290129340399", "changes": [
                {"field": "brand_new_field_meta_added", "value": {"anything": format!("{tag}-x")}}
            ]}
        ]
    })
    .to_string()
    .into_bytes()
}

/// Sorted `event_id`s of the records made from events (activities and unknowns; contacts are
/// merged per person and carry none).
fn keys(records: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = records
        .iter()
        .filter(|r| r["kind"] == "activity" || r["kind"] == "unknown")
        .filter_map(|r| r["event_id"].as_str().map(str::to_string))
        .collect();
    k.sort();
    k
}

fn count_kind(records: &[Value], kind: &str) -> usize {
    records.iter().filter(|r| r["kind"] == kind).count()
}
