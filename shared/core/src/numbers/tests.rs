use super::route::Route;
use super::*;
use crate::event::{Event, EventKind};

const TWO: &str = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
language = "es_MX"
default_country = "MX"
crm = { kind = "local" }

[[number]]
label = "soporte-co"
phone_number_id = "206540352242922"
waba_id = "202290129340398"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
sends_per_second = 20

[number.crm]
kind = "Webhook"
settings = { CRM_WEBHOOK_URL = "https://erp.example.co/hook" }
secrets = { CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_CO" }
"#;

fn two() -> Numbers {
    Numbers::parse("numbers.toml", TWO.as_bytes()).unwrap()
}

#[test]
fn a_registry_parses_with_defaults_and_targets() {
    let n = two();
    let [mx, co] = n.all() else {
        panic!("two numbers")
    };
    assert_eq!(mx.label, "ventas-mx");
    assert_eq!(mx.line, 3);
    assert_eq!(mx.sends_per_second, DEFAULT_SENDS_PER_SECOND);
    assert_eq!(mx.language.as_deref(), Some("es_MX"));
    assert_eq!(mx.default_country.as_deref(), Some("MX"));
    assert_eq!(mx.display_digits(), "525550001111");
    assert_eq!(co.sends_per_second, 20.0);
    assert_eq!(co.crm.kind, "webhook", "kinds are lower-cased");
    assert_eq!(n.unknown, UnknownNumbers::DeadLetter);
    assert_eq!(n.find("soporte-co"), Some(co));
    assert_eq!(n.find("106540352242922"), Some(mx));
    assert_eq!(n.find("nope"), None);
    assert_eq!(n.targets().len(), 2);

    // The target's own settings and secret keys win; what it leaves out comes from the env.
    let lookup = co.crm.lookup(
        |name| Some(format!("env:{name}")),
        |key| (key == "CRM_WEBHOOK_SECRET_CO").then(|| "whsec_co".to_string()),
    );
    assert_eq!(lookup(config::CRM_KIND).as_deref(), Some("webhook"));
    assert_eq!(lookup(config::WABRIDGE_MAPPING), None);
    assert_eq!(
        lookup(config::CRM_WEBHOOK_URL).as_deref(),
        Some("https://erp.example.co/hook")
    );
    assert_eq!(
        lookup(config::CRM_WEBHOOK_SECRET).as_deref(),
        Some("whsec_co")
    );
    assert_eq!(
        lookup(config::CRM_TIMEOUT_MS).as_deref(),
        Some("env:CRM_TIMEOUT_MS")
    );
}

#[test]
fn two_numbers_may_share_one_target() {
    let text = TWO.replace(
        "[number.crm]\nkind = \"Webhook\"\nsettings = { CRM_WEBHOOK_URL = \"https://erp.example.co/hook\" }\nsecrets = { CRM_WEBHOOK_SECRET = \"CRM_WEBHOOK_SECRET_CO\" }",
        "crm = { kind = \"local\" }",
    );
    let n = Numbers::parse("n.toml", text.as_bytes()).unwrap();
    let targets = n.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].1, vec!["ventas-mx", "soporte-co"]);
}

/// Each refusal names the line and the field, so the operator knows what to fix.
#[test]
fn bad_registries_name_the_line_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "label = \"ventas-mx\"\nlabel = 3",
            "line 2, column",
            "duplicate",
        ),
        ("[[number]]\nlabel = \"a\"", "line 1", "missing field"),
        ("", "", "no [[number]]"),
        ("numbers = []", "line 1", "unknown field"),
        (
            "[[number]]\nlabel = \"a\"\ncolor = 1",
            "line",
            "unknown field `color`",
        ),
    ];
    for (text, at, what) in cases {
        let e = Numbers::parse("n.toml", text.as_bytes()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.starts_with("WABRIDGE_NUMBERS n.toml: "), "{shown}");
        assert!(
            shown.contains(at) && shown.contains(what),
            "{text:?}: {shown}"
        );
    }
    let edits: &[(&str, &str, &str)] = &[
        // A second number under the first one's label, id or display digits.
        (
            "label = \"soporte-co\"",
            "label = \"ventas-mx\"",
            "line 13: number `ventas-mx`: `label` duplicates the number on line 3",
        ),
        (
            "phone_number_id = \"206540352242922\"",
            "phone_number_id = \"106540352242922\"",
            "line 13: number `soporte-co`: `phone_number_id` duplicates the number on line 3",
        ),
        (
            "+57 601 500 2222",
            "525550001111",
            "`display_number` duplicates the number on line 3",
        ),
        (
            "label = \"soporte-co\"",
            "label = \"Soporte CO\"",
            "line 13: `label` \"Soporte CO\"",
        ),
        (
            "waba_id = \"202290129340398\"",
            "waba_id = \"WABA-2\"",
            "line 15: number `soporte-co`: `waba_id` must be Meta's id",
        ),
        (
            "phone_number_id = \"206540352242922\"",
            "phone_number_id = \"\"",
            "line 14: number `soporte-co`: `phone_number_id`",
        ),
        (
            "token_key = \"WHATSAPP_ACCESS_TOKEN_CO\"",
            "token_key = \"EAAGm0PX4ZCpsBA\"",
            "line 17: number `soporte-co`: `token_key` must name a secret key",
        ),
        (
            "display_number = \"+57 601 500 2222\"",
            "display_number = \"call us\"",
            "line 16: number `soporte-co`: `display_number`",
        ),
        (
            "sends_per_second = 20",
            "sends_per_second = 0",
            "line 18: number `soporte-co`: `sends_per_second`",
        ),
        (
            "sends_per_second = 20",
            "sends_per_second = \"fast\"",
            "line 18",
        ),
        (
            "language = \"es_MX\"",
            "language = \"Spanish\"",
            "line 8: number `ventas-mx`: `language`",
        ),
        (
            "default_country = \"MX\"",
            "default_country = \"mx\"",
            "line 9: number `ventas-mx`: `default_country`",
        ),
        // A secret written into the file instead of its key's name.
        (
            "settings = { CRM_WEBHOOK_URL",
            "settings = { CRM_WEBHOOK_SECRET = \"whsec_x\", CRM_WEBHOOK_URL",
            "number `soporte-co`: `crm` settings hold the secret CRM_WEBHOOK_SECRET",
        ),
        (
            "secrets = { CRM_WEBHOOK_SECRET",
            "secrets = { CRM_WEBHOOK_URL = \"U\", CRM_WEBHOOK_SECRET",
            "secrets name CRM_WEBHOOK_URL, which is not a secret setting",
        ),
        (
            "\"CRM_WEBHOOK_SECRET_CO\"",
            "\"whsec_abc\"",
            "must name a secret key",
        ),
        ("kind = \"Webhook\"", "kind = \" \"", "`crm` needs a `kind`"),
        ("kind = \"Webhook\"", "", "missing field `kind`"),
    ];
    for (from, to, expected) in edits {
        assert!(TWO.contains(from), "{from}");
        let text = TWO.replacen(from, to, 1);
        let e = Numbers::parse("n.toml", text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains(expected), "{to}: {e}");
    }
    let e = Numbers::parse("n.toml", &vec![b' '; MAX_FILE_BYTES + 1]).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    let e = Numbers::parse("n.toml", b"\xff\xfe").unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

#[test]
fn unknown_numbers_go_to_a_named_target_or_to_dead_letters() {
    let routed = format!("unknown_numbers = \"soporte-co\"\n{TWO}");
    let n = Numbers::parse("n.toml", routed.as_bytes()).unwrap();
    assert_eq!(n.unknown, UnknownNumbers::RouteTo("soporte-co".into()));
    let explicit = format!("unknown_numbers = \"dead_letter\"\n{TWO}");
    let n = Numbers::parse("n.toml", explicit.as_bytes()).unwrap();
    assert_eq!(n.unknown, UnknownNumbers::DeadLetter);
    let wrong = format!("unknown_numbers = \"ventas\"\n{TWO}");
    let e = Numbers::parse("n.toml", wrong.as_bytes()).unwrap_err();
    assert!(
        e.to_string()
            .contains("line 1: `unknown_numbers` must be dead_letter or the label"),
        "{e}"
    );
}

#[test]
fn a_number_without_its_token_stops_the_start() {
    let n = two();
    let all = [
        "WHATSAPP_ACCESS_TOKEN_MX",
        "WHATSAPP_ACCESS_TOKEN_CO",
        "CRM_WEBHOOK_SECRET_CO",
    ];
    assert_eq!(n.check_secrets("n.toml", |k| all.contains(&k)), Ok(()));
    let e = n
        .check_secrets("n.toml", |k| k != "WHATSAPP_ACCESS_TOKEN_CO")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "WABRIDGE_NUMBERS n.toml: line 13: number `soporte-co`: `token_key` names \
         WHATSAPP_ACCESS_TOKEN_CO, which is not in the secret store"
    );
    let e = n
        .check_secrets("n.toml", |k| k != "CRM_WEBHOOK_SECRET_CO")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("`crm.secrets` names CRM_WEBHOOK_SECRET_CO"),
        "{e}"
    );
}

#[test]
fn tokens_are_masked_to_their_last_four_characters() {
    assert_eq!(mask_token("EAAGm0PX4ZCpsBAabcdefghijkl1234"), "****1234");
    assert_eq!(mask_token("short"), "****");
}

fn event(kind: EventKind, waba: &str, number: Option<&str>, item: &str) -> Event {
    Event {
        v: 1,
        key: "k".into(),
        kind,
        field: "f".into(),
        waba_id: waba.into(),
        entry_time: None,
        phone_number_id: number.map(str::to_string),
        display_phone_number: None,
        contact: None,
        item: serde_json::value::RawValue::from_string(item.into()).unwrap(),
        received_at: 0,
    }
}

/// Routing rules: by phone_number_id, else by kind (display digits, WABA, first number, every
/// target). What the registry does not know is named, never guessed.
#[test]
fn events_route_by_number_waba_or_display_digits() {
    let n = two();
    let label = |r: Route<'_>| match r {
        Route::Number(n) => n.label.clone(),
        Route::Every => "every".into(),
        Route::Unknown(why) => format!("unknown: {why}"),
    };
    let cases = [
        (
            event(
                EventKind::Message,
                "202290129340398",
                Some("106540352242922"),
                "{}",
            ),
            "ventas-mx",
        ),
        // The number decides, not the WABA of the entry.
        (
            event(EventKind::Status, "x", Some("206540352242922"), "{}"),
            "soporte-co",
        ),
        (
            event(EventKind::Message, "102290129340398", Some("999"), "{}"),
            "unknown: phone_number_id 999 is not in the registry",
        ),
        (
            event(EventKind::TemplateStatus, "202290129340398", None, "{}"),
            "soporte-co",
        ),
        (
            event(EventKind::AccountUpdate, "102290129340398", None, "{}"),
            "ventas-mx",
        ),
        (
            event(EventKind::AccountUpdate, "303", None, "{}"),
            "unknown: WABA 303 is not in the registry",
        ),
        (
            event(
                EventKind::QualityUpdate,
                "x",
                None,
                r#"{"display_phone_number":"576015002222","event":"FLAGGED"}"#,
            ),
            "soporte-co",
        ),
        (
            event(
                EventKind::QualityUpdate,
                "x",
                None,
                r#"{"display_phone_number":"15550783881"}"#,
            ),
            "unknown: display number 155******81 is not in the registry",
        ),
        (
            event(EventKind::QualityUpdate, "x", None, "{}"),
            "unknown: display number  is not in the registry",
        ),
        (event(EventKind::SendResult, "", None, "{}"), "ventas-mx"),
        (event(EventKind::Consent, "", None, "{}"), "ventas-mx"),
        (event(EventKind::Erasure, "", None, "{}"), "every"),
    ];
    for (e, expected) in cases {
        assert_eq!(label(n.route(&e)), expected, "{:?}", e.kind);
    }
}

/// `from` of a send: required with several numbers, the only one's when alone, never guessed.
#[test]
fn a_send_names_its_number_by_label_or_id() {
    let n = two();
    assert_eq!(
        n.sender_of(Some("soporte-co")).unwrap().phone_number_id,
        "206540352242922"
    );
    assert_eq!(
        n.sender_of(Some("106540352242922")).unwrap().label,
        "ventas-mx"
    );
    let (code, message) = n.sender_of(Some("ventas-ar")).unwrap_err();
    assert_eq!(code, UNKNOWN_NUMBER);
    assert!(
        message.contains("\"ventas-ar\"") && message.contains("ventas-mx, soporte-co"),
        "{message}"
    );
    assert_eq!(n.sender_of(None).unwrap_err().0, "from_required");
    let one = Numbers::parse(
        "n.toml",
        TWO.split("[[number]]")
            .take(2)
            .collect::<Vec<_>>()
            .join("[[number]]")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(one.sender_of(None).unwrap().label, "ventas-mx");
}

#[test]
fn without_a_registry_a_send_has_no_from() {
    assert_eq!(resolve_from(None, None), Ok(None));
    let (code, message) = resolve_from(None, Some("ventas-mx")).unwrap_err();
    assert_eq!(code, UNKNOWN_NUMBER);
    assert!(message.contains("WABRIDGE_NUMBERS"), "{message}");
    let n = two();
    assert_eq!(
        resolve_from(Some(&n), Some("soporte-co")),
        Ok(Some("206540352242922".to_string()))
    );
}

#[test]
fn business_hours_feed_the_sla_and_bad_ones_name_the_line() {
    let with = |hours: &str| {
        let text = TWO.replacen(
            "crm = { kind = \"local\" }",
            &format!("crm = {{ kind = \"local\" }}\nbusiness_hours = {hours}"),
            1,
        );
        Numbers::parse("numbers.toml", text.as_bytes())
    };
    let ok = with(r#"{ timezone = "America/Mexico_City", days = ["mon", "fri"], open = "09:00", close = "18:00" }"#)
        .unwrap();
    let policy = crate::conversations::sla::SlaPolicy::new(15).with_numbers(Some(&ok));
    assert_eq!(policy.hours.len(), 1, "only ventas-mx has hours");
    assert!(policy.hours.contains_key("106540352242922"));
    assert_eq!(ok.all()[1].business_hours, None);
    let err = with(r#"{ timezone = "Mexico", days = ["mon"], open = "09:00", close = "18:00" }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 11") && err.contains("timezone"), "{err}");
    let err = with(r#"{ timezone = "UTC", days = ["mon"], open = "9am", close = "18:00" }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("business_hours.open"), "{err}");
    let holidays = with(r#"{ timezone = "UTC", days = ["mon"], open = "09:00", close = "18:00", holidays = ["2026-12-25"] }"#)
        .unwrap();
    let hours = holidays.all()[0].business_hours.as_ref().unwrap();
    assert_eq!(hours.holidays, vec![jiff::civil::date(2026, 12, 25)]);
    let err = with(r#"{ timezone = "UTC", days = ["mon"], open = "09:00", close = "18:00", holidays = ["Christmas"] }"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 11") && err.contains("business_hours.holidays"),
        "{err}"
    );
}
