use super::*;
use crate::webhook::split::split;

const NUMBERS: &str = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "local" }

[[number]]
label = "soporte-co"
phone_number_id = "206540352242922"
waba_id = "202290129340398"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
crm = { kind = "local" }
"#;

const BOT: &str = r#"
[[destination]]
name = "bot-mx"
kind = "relay"
url = "https://bot.example.mx/webhook"
secret_key = "BOT_MX_SECRET"
events = ["messages"]
numbers = ["ventas-mx"]

[[destination]]
name = "warehouse"
kind = "relay"
url = "http://127.0.0.1:9000/in"
secret_key = "WAREHOUSE_SECRET"
"#;

fn parse(text: &str) -> Result<(Option<Numbers>, Destinations), NumbersError> {
    let numbers = (!destinations_only(text.as_bytes()))
        .then(|| Numbers::parse("numbers.toml", text.as_bytes()))
        .transpose()?;
    let d = Destinations::parse("numbers.toml", text.as_bytes(), numbers.as_ref())?;
    Ok((numbers, d))
}

fn message(number: &str, wamid: &str) -> Event {
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "messages": [{"from": "5215512345678", "id": wamid, "timestamp": "1", "type": "text", "text": {"body": "Hola"}}],
        "statuses": [{"id": wamid, "status": "read", "timestamp": "1", "recipient_id": "5215512345678"}]}}]}]});
    split(body.to_string().as_bytes(), 1).unwrap().remove(0)
}

#[test]
fn destinations_parse_with_defaults_and_select_by_kind_and_number() {
    let text = format!("{NUMBERS}{BOT}");
    let (numbers, d) = parse(&text).unwrap();
    let numbers = numbers.unwrap();
    let [bot, warehouse] = d.all() else {
        panic!("two destinations")
    };
    assert_eq!(bot.line, 19);
    assert_eq!(bot.kind, DestinationKind::Relay);
    assert_eq!(bot.events, [EventClass::Messages]);
    assert_eq!(bot.numbers.as_deref(), Some(&["ventas-mx".to_string()][..]));
    assert_eq!(bot.queue(), "destination:bot-mx");
    assert_eq!(warehouse.events, EventClass::ALL, "every kind by default");
    assert_eq!(warehouse.numbers, None, "every number by default");

    let mx = message("106540352242922", "wamid.MX");
    let co = message("206540352242922", "wamid.CO");
    let unknown = message("999", "wamid.X");
    let queues = |e: &Event| d.queues_for(e, Some(&numbers));
    assert_eq!(queues(&mx), ["destination:bot-mx", "destination:warehouse"]);
    assert_eq!(queues(&co), ["destination:warehouse"]);
    assert_eq!(queues(&unknown), ["destination:warehouse"]);
    let mut status = mx.clone();
    status.kind = EventKind::Status;
    assert_eq!(queues(&status), ["destination:warehouse"]);
    // wabridge's own events are not Meta's: no destination relays them.
    let own = Event::own("k".into(), EventKind::SendResult, "send_result", &1);
    assert!(queues(&own).is_empty());
}

#[test]
fn a_file_of_destinations_only_keeps_the_one_number_configuration() {
    let (numbers, d) = parse(BOT.replace("numbers = [\"ventas-mx\"]\n", "").as_str()).unwrap();
    assert!(numbers.is_none());
    assert_eq!(d.all().len(), 2);
    assert!(!destinations_only(NUMBERS.as_bytes()));
    assert!(destinations_only(BOT.as_bytes()));
    assert!(
        !destinations_only(b""),
        "an empty file is refused by Numbers::parse"
    );
    assert!(
        !destinations_only(b"[[destination]"),
        "Numbers::parse says why"
    );
}

#[test]
fn every_refusal_names_its_line_and_field() {
    let base = format!("{NUMBERS}{BOT}");
    let cases = [
        (
            base.replace("name = \"warehouse\"", "name = \"bot-mx\""),
            "line 27: destination `bot-mx`: `name` duplicates the destination on line 19",
        ),
        (
            base.replace("https://bot.example.mx/webhook", "ftp://bot.example.mx/x"),
            "line 21: destination `bot-mx`: `url` must be an http or https URL (scheme: ftp)",
        ),
        (
            base.replace("secret_key = \"BOT_MX_SECRET\"\n", ""),
            "line 19: destination `bot-mx`: `secret_key` is required",
        ),
        (
            base.replace("\"BOT_MX_SECRET\"", "\"whsec_abc\""),
            "line 22: destination `bot-mx`: `secret_key` must name a secret key",
        ),
        (
            base.replace("[\"ventas-mx\"]", "[\"ventas-ar\"]"),
            "line 24: destination `bot-mx`: `numbers` names \"ventas-ar\", which is not the label of a number (labels: ventas-mx, soporte-co)",
        ),
        (
            base.replace("[\"messages\"]", "[\"messages\", \"calls\"]"),
            "line 23: destination `bot-mx`: `events` names \"calls\": the kinds are messages, statuses, templates and account",
        ),
        (
            base.replace("kind = \"relay\"", "kind = \"kafka\""),
            "line 20: destination `bot-mx`: `kind` must be relay or records, got \"kafka\"",
        ),
        (
            base.replace("name = \"bot-mx\"", "name = \"Bot MX\""),
            "line 19: destination `name` \"Bot MX\" must be 1 to 32 of a-z, 0-9, - and _",
        ),
        (
            BOT.to_string(),
            "line 8: destination `bot-mx`: `numbers` filters by label, but the file lists no [[number]]",
        ),
        (
            base.replace("events = [\"messages\"]", "event = [\"messages\"]"),
            "unknown field `event`",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected}\n{err}");
        assert!(err.starts_with("WABRIDGE_NUMBERS numbers.toml: "), "{err}");
    }
    let (_, d) = parse(&base).unwrap();
    let err = d
        .check_secrets("numbers.toml", |k| k == "BOT_MX_SECRET")
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("line 27: destination `warehouse`: `secret_key` names WAREHOUSE_SECRET, which is not in the secret store"),
        "{err}"
    );
    assert!(d.check_secrets("numbers.toml", |_| true).is_ok());
}
