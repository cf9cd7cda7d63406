//! A scripted day of conversations on one business number, shared by the SQLite and DynamoDB
//! tests: the events (times from Meta's timestamps, so the clock is the script's) and what the
//! CRM must hold after each part, to the millisecond.

use serde_json::{json, Value};
use wabridge_core::event::Event;
use wabridge_core::mapping::Mapping;
use wabridge_core::webhook::split;

pub const NUMBER: &str = "106540352242922";
pub const MARIANA: &str = "5215512345678";
pub const JOAO: &str = "5511987654321";
/// 2026-12-04 08:00:00 UTC, in seconds (Meta's timestamps).
pub const T0: i64 = 1_796_371_200;
pub const MIN: i64 = 60;
pub const HOUR: i64 = 3600;
/// The idle time the script assumes (the default).
pub const IDLE_MS: i64 = 24 * HOUR * 1000;

/// The day's tag catalogue and rules, appended to a CRM's example mapping: Mariana's ad, a
/// keyword and a template button tag conversations; `vip` is only set through the API.
pub const TAGS: &str = r#"
[tags]
ids = ["summer_ad", "pricing", "promo", "vip"]

[[tags.rules]]
tag = "summer_ad"
ad_source_id = "120000"

[[tags.rules]]
tag = "pricing"
keyword = "precio"

[[tags.rules]]
tag = "promo"
button_payload = "PROMO_SI"
"#;

/// A CRM's example mapping (`local`, `webhook`) with [`TAGS`].
pub fn mapping(example: &str) -> Mapping {
    Mapping::from_toml(&format!("{example}\n{TAGS}")).unwrap()
}

fn one(value: Value, field: &str, item: Value) -> Event {
    let mut v = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "525550001111", "phone_number_id": NUMBER}});
    v[field] = json!([item]);
    let field_name = match field {
        "message_echoes" => "smb_message_echoes",
        "calls" => "calls",
        _ => "messages",
    };
    if let Value::Object(extra) = value {
        for (k, x) in extra {
            v[k] = x;
        }
    }
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": field_name, "value": v}]}]});
    let mut events = split(body.to_string().as_bytes(), T0 * 1000).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// A customer's text; `extra` is merged into the message (a `referral`).
pub fn text(from: &str, id: &str, at: i64, extra: Value) -> Event {
    let mut item = json!({"from": from, "id": id, "timestamp": at.to_string(),
        "type": "text", "text": {"body": "Hola"}});
    if let Value::Object(extra) = extra {
        for (k, x) in extra {
            item[k] = x;
        }
    }
    one(
        json!({"contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}]}),
        "messages",
        item,
    )
}

/// A status of a message the business sent through the API.
pub fn status(to: &str, id: &str, status: &str, at: i64, category: &str) -> Event {
    one(
        json!({}),
        "statuses",
        json!({"id": id, "status": status, "timestamp": at.to_string(), "recipient_id": to,
            "pricing": {"pricing_model": "PMP", "category": category, "type": "regular"}}),
    )
}

/// A message sent from the WhatsApp Business app.
pub fn echo(to: &str, id: &str, at: i64) -> Event {
    one(
        json!({}),
        "message_echoes",
        json!({"from": "525550001111", "to": to, "id": id, "timestamp": at.to_string(),
            "type": "text", "text": {"body": "Ya te ayudo"}}),
    )
}

/// A customer's edit of their message `original`.
pub fn edit(from: &str, id: &str, original: &str, at: i64) -> Event {
    one(
        json!({"contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}]}),
        "messages",
        json!({"from": from, "id": id, "timestamp": at.to_string(), "type": "edit",
            "edit": {"original_message_id": original,
                     "message": {"type": "text", "text": {"body": "Hola de nuevo"}}}}),
    )
}

/// The terminate event of a call the customer placed at `at` and that lasted a minute.
pub fn call(from: &str, id: &str, at: i64) -> Event {
    one(
        json!({"contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}]}),
        "calls",
        json!({"id": id, "from": from, "to": "525550001111", "event": "terminate",
            "timestamp": (at + 60).to_string(), "direction": "USER_INITIATED", "status": "COMPLETED",
            "start_time": at.to_string(), "end_time": (at + 60).to_string(), "duration": 60}),
    )
}

/// The first part, in delivery order: Mariana writes from an ad at 08:00 and the API reply's
/// statuses come `delivered` (07:02 after) before `sent` (07:00 after); a template opens
/// João's at 09:00, he answers at 09:30 and the Business app at 09:32:15, the echo and his
/// reply arriving before the template's status.
pub fn morning() -> Vec<Event> {
    let ad = json!({"referral": {"source_type": "ad", "source_id": "120000", "ctwa_clid": "x1"}});
    vec![
        text(MARIANA, "wamid.M1", T0, ad),
        status(
            MARIANA,
            "wamid.R1",
            "delivered",
            T0 + 7 * MIN + 2,
            "service",
        ),
        status(MARIANA, "wamid.R1", "sent", T0 + 7 * MIN, "service"),
        echo(JOAO, "wamid.E1", T0 + HOUR + 32 * MIN + 15),
        text(JOAO, "wamid.J1", T0 + HOUR + 30 * MIN, json!({})),
        status(JOAO, "wamid.T1", "sent", T0 + HOUR, "marketing"),
    ]
}

/// After the morning, João asks for the price at 09:40 and taps the template's button at
/// 09:45, the tap arriving first.
pub fn late_morning() -> Vec<Event> {
    let button = json!({"type": "button", "button": {"payload": "PROMO_SI", "text": "Sí, quiero"}});
    vec![
        text(JOAO, "wamid.J3", T0 + HOUR + 45 * MIN, button),
        text(
            JOAO,
            "wamid.J2",
            T0 + HOUR + 40 * MIN,
            json!({"text": {"body": "¿Y el PRECIO del envío?"}}),
        ),
    ]
}

/// What the CRM holds after [`late_morning`]: João's conversation tagged by the keyword and
/// the button, Mariana's by her ad (from the morning).
pub fn check_late_morning(all: &[Value]) {
    assert_eq!(all.len(), 2, "{all:#?}");
    let (mariana, joao) = (&all[0], &all[1]);
    assert_eq!(mariana["tags"], json!(["summer_ad"]), "{mariana}");
    assert_eq!(joao["tags"], json!(["pricing", "promo"]), "{joao}");
    assert_eq!(joao["inbound_count"], 3);
    assert_eq!(joao["last_inbound_at"], (T0 + HOUR + 45 * MIN) * 1000);
}

/// The value of the conversion posted for Mariana's purchase.
pub const SALE: f64 = 1499.9;

/// What the CRM holds after João's conversation got `vip` through the API and Mariana's
/// conversion was posted (each twice).
pub fn check_api_changes(all: &[Value]) {
    let (mariana, joao) = (&all[0], &all[1]);
    assert_eq!(joao["tags"], json!(["pricing", "promo", "vip"]), "{joao}");
    assert_eq!(mariana["outcome"], "converted", "{mariana}");
    assert_eq!(mariana["outcome_value"], SALE);
    assert_eq!(mariana["outcome_currency"], "MXN");
    assert_eq!(mariana["first_response_ms"], 7 * MIN * 1000);
}

/// The second part: Mariana writes again 26 h later, then the first reply's late `read`.
pub fn next_day() -> Vec<Event> {
    vec![
        text(MARIANA, "wamid.M2", T0 + 26 * HOUR, json!({})),
        status(MARIANA, "wamid.R1", "read", T0 + 9 * MIN, "service"),
    ]
}

/// The latest revision of each conversation among `records` (any kinds), by opening time.
pub fn latest(records: &[Value]) -> Vec<Value> {
    let mut by_id: std::collections::BTreeMap<String, Value> = Default::default();
    for r in records.iter().filter(|r| r["kind"] == "conversation") {
        let id = r["id"].as_str().unwrap().to_string();
        let newer = by_id
            .get(&id)
            .is_none_or(|old| old["revision"].as_u64() <= r["revision"].as_u64());
        if newer {
            by_id.insert(id, r.clone());
        }
    }
    let mut all: Vec<Value> = by_id.into_values().collect();
    all.sort_by_key(|c| c["opened_at"].as_i64());
    all
}

/// What the CRM holds after [`morning`]: Mariana's and João's conversations.
pub fn check_morning(all: &[Value]) {
    assert_eq!(all.len(), 2, "{all:#?}");
    let (mariana, joao) = (&all[0], &all[1]);
    assert_eq!(mariana["opened_by"], "customer");
    assert_eq!(mariana["origin"], "ctwa_ad");
    assert_eq!(mariana["first_response_ms"], 7 * MIN * 1000);
    assert_eq!(mariana["first_response_at"], (T0 + 7 * MIN) * 1000);
    assert_eq!(mariana["inbound_count"], 1);
    assert_eq!(mariana["outbound_count"], 1);
    assert_eq!(mariana["number"], NUMBER);
    assert_eq!(mariana["pricing_categories"], json!(["service"]));
    assert_eq!(mariana["pricing_types"], json!(["regular"]));
    assert_eq!(mariana["closed_at"], Value::Null);
    assert_eq!(mariana["tags"], json!(["summer_ad"]));
    assert_eq!(joao["tags"], json!([]));
    assert_eq!(joao["opened_by"], "business");
    assert_eq!(joao["origin"], "template");
    assert_eq!(joao["opened_at"], (T0 + HOUR) * 1000);
    assert_eq!(joao["first_inbound_at"], (T0 + HOUR + 30 * MIN) * 1000);
    assert_eq!(joao["first_response_ms"], (2 * MIN + 15) * 1000);
    assert_eq!(joao["agent"], "whatsapp_business_app");
    assert_eq!(joao["inbound_count"], 1);
    assert_eq!(joao["outbound_count"], 2);
    assert_eq!(joao["outcome"], Value::Null);
    assert_eq!(joao["pricing_categories"], json!(["marketing"]));
    assert_ne!(mariana["contact_id"], joao["contact_id"]);
}

/// What the CRM holds after [`next_day`]: Mariana's first conversation closed for idleness at
/// its last message + 24 h, unchanged by the late `read`; a new one open.
pub fn check_next_day(all: &[Value], first_id: &Value) {
    assert_eq!(all.len(), 3, "{all:#?}");
    let closed = &all[0];
    assert_eq!(&closed["id"], first_id);
    assert_eq!(closed["close_reason"], "idle");
    assert_eq!(closed["closed_at"], (T0 + 7 * MIN + 2) * 1000 + IDLE_MS);
    assert_eq!(closed["first_response_ms"], 7 * MIN * 1000);
    assert_eq!(closed["outbound_count"], 1);
    let next = &all[2];
    assert_eq!(next["contact_id"], closed["contact_id"]);
    assert_eq!(next["opened_by"], "customer");
    assert_eq!(next["opened_at"], (T0 + 26 * HOUR) * 1000);
    assert_eq!(next["origin"], "organic");
    assert_eq!(next["first_response_ms"], Value::Null);
    assert_eq!(next["closed_at"], Value::Null);
}
