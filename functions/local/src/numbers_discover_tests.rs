use super::*;

const A: &str = "102290129340398";
const B: &str = "202290129340398";

fn registry() -> Numbers {
    let text = format!(
        r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "{A}"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}

[[number]]
label = "viejo-mx"
phone_number_id = "106540352249999"
waba_id = "{A}"
display_number = "+52 55 5000 9999"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = {{ kind = "local" }}
"#
    );
    Numbers::parse("numbers.toml", text.as_bytes()).unwrap()
}

fn listed(id: &str, display: &str, name: Option<&str>, cc: Option<&str>) -> ListedNumber {
    ListedNumber {
        id: id.into(),
        display_phone_number: display.into(),
        verified_name: name.map(str::to_string),
        status: Some("CONNECTED".into()),
        quality_rating: Some("GREEN".into()),
        country_code: cc.map(str::to_string),
    }
}

fn app(id: &str, uri: Option<&str>) -> Subscription {
    Subscription {
        app_id: Some(id.into()),
        app_name: Some("wabridge".into()),
        override_callback_uri: uri.map(str::to_string),
    }
}

fn wabas() -> Vec<Waba> {
    vec![
        Waba {
            id: A.into(),
            token_key: "WHATSAPP_ACCESS_TOKEN_MX".into(),
            numbers: vec![
                (
                    listed(
                        "106540352242922",
                        "+52 55 5000 1111",
                        Some("Ventas"),
                        Some("MX"),
                    ),
                    Ok(None),
                ),
                (
                    listed(
                        "106540352243333",
                        "+52 55 5000 3333",
                        Some("Panadería Núñez"),
                        Some("MX"),
                    ),
                    Ok(Some("https://bot.example/hook".into())),
                ),
            ],
            subscriptions: vec![app("11", None)],
        },
        Waba {
            id: B.into(),
            token_key: "WHATSAPP_ACCESS_TOKEN".into(),
            numbers: vec![
                (
                    listed(
                        "206540352244444",
                        "+1 631-555-5555",
                        Some("Jasper's Market"),
                        Some("US"),
                    ),
                    Err("Graph API: Tried accessing nonexisting field".into()),
                ),
                (
                    listed(
                        "206540352245555",
                        "+1 631-555-5556",
                        Some("Jasper's Market"),
                        Some("US"),
                    ),
                    Ok(None),
                ),
            ],
            subscriptions: vec![
                app("11", Some("https://elsewhere.example/webhook")),
                app("12", None),
            ],
        },
    ]
}

#[test]
fn new_numbers_get_entries_that_parse_into_the_registry_and_registered_ones_a_line() {
    let registry = registry();
    let r = report(&wabas(), Some(&registry), None, None, None);
    let text = r.lines.join("\n");
    assert!(
        text.contains("# ventas-mx (106540352242922) is already in the registry"),
        "{text}"
    );
    assert!(
        !text.contains("phone_number_id = \"106540352242922\""),
        "{text}"
    );
    for label in [
        "panaderia-nunez-mx",
        "jaspers-market-us",
        "jaspers-market-us-2",
    ] {
        assert!(
            text.contains(&format!("label = \"{label}\"")),
            "{label}: {text}"
        );
    }
    assert!(
        text.contains("# Jasper's Market (US): quality GREEN, status CONNECTED"),
        "{text}"
    );
    // The WABA's token key is suggested: the token that just read it.
    assert!(
        text.contains("token_key = \"WHATSAPP_ACCESS_TOKEN\""),
        "{text}"
    );
    // Pasted under the registry, the entries parse with the registry's own parser.
    let base = r#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
crm = { kind = "local" }
"#;
    let pasted = Numbers::parse("numbers.toml", format!("{base}\n{text}").as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ids: Vec<&str> = pasted
        .all()
        .iter()
        .map(|n| n.phone_number_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "106540352242922",
            "106540352243333",
            "206540352244444",
            "206540352245555"
        ]
    );
    assert_eq!(pasted.all()[3].waba_id, B);
    let objects = &r.objects;
    assert_eq!(objects.len(), 4);
    assert_eq!(objects[0]["registered"], "ventas-mx");
    assert_eq!(objects[1]["suggested_label"], "panaderia-nunez-mx");
    assert_eq!(
        objects[1]["override_callback_uri"],
        "https://bot.example/hook"
    );
}

#[test]
fn overrides_elsewhere_and_unlisted_numbers_are_warned_about() {
    let registry = registry();
    let r = report(&wabas(), Some(&registry), None, None, None);
    let all = r.warnings.join("\n");
    assert!(
        all.contains(&format!("WABA {B}'s subscription of app wabridge (11) overrides the callback URL: Meta sends this WABA's messages, calls and echoes to https://elsewhere.example/webhook")),
        "{all}"
    );
    assert!(
        all.contains("number 106540352243333 of WABA 102290129340398 overrides the callback URL: Meta sends its messages, calls and echoes to https://bot.example/hook"),
        "{all}"
    );
    assert!(
        all.contains(&format!("number viejo-mx (106540352249999) is in the registry under WABA {A}, which no longer lists it")),
        "{all}"
    );
    assert!(all.contains("could not be read (unconfirmed"), "{all}");
    assert_eq!(r.warnings.len(), 4, "{all}");
    assert!(!all.contains("ventas-mx"), "{all}");

    // With wabridge's URL: an override pointing at it is fine, one elsewhere names both.
    let r = report(
        &wabas(),
        Some(&registry),
        Some("https://bot.example/hook/"),
        None,
        None,
    );
    let all = r.warnings.join("\n");
    assert!(!all.contains("number 106540352243333"), "{all}");
    assert!(
        all.contains("to https://elsewhere.example/webhook, not to --callback-url https://bot.example/hook/, so they never reach wabridge"),
        "{all}"
    );

    // With WHATSAPP_APP_ID, only that app's subscription counts; a missing one is warned.
    let r = report(&wabas(), Some(&registry), None, Some("12"), None);
    let all = r.warnings.join("\n");
    assert!(!all.contains("elsewhere.example"), "{all}");
    assert!(
        all.contains(&format!(
            "the app WHATSAPP_APP_ID 12 is not subscribed to WABA {A}'s webhooks"
        )),
        "{all}"
    );
}

#[test]
fn wabas_come_from_the_flag_or_the_registry_and_none_names_the_flag() {
    let registry = registry();
    assert_eq!(waba_ids(&[], Some(&registry)).unwrap(), [A]);
    assert_eq!(
        waba_ids(&[B.into(), A.into(), B.into()], Some(&registry)).unwrap(),
        [B, A]
    );
    let none = waba_ids(&[], None).unwrap_err().to_string();
    assert!(
        none.starts_with("no WABA to discover: pass --waba ID"),
        "{none}"
    );
    let bad = waba_ids(&["12a".into()], None).unwrap_err().to_string();
    assert_eq!(bad, "--waba: \"12a\" is not a WABA id (digits only)");
    assert_eq!(token_key(A, Some(&registry)), "WHATSAPP_ACCESS_TOKEN_MX");
    assert_eq!(token_key(B, Some(&registry)), "WHATSAPP_ACCESS_TOKEN");
    assert!(check_url("ftp://x").is_err());
    assert!(same_url(
        "https://A.example/hook/",
        "https://a.example/hook"
    ));
}

/// For a deployment, a new number's entry takes its WABA's registered target, one line of TOML
/// that parses back to the same target; a WABA without one gets a kind `numbers add` refuses.
#[test]
fn a_deployment_entry_takes_its_wabas_target() {
    let registry = Numbers::parse(
        "numbers.toml",
        br#"
[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
[number.crm]
kind = "webhook"
mapping = "mappings/webhook.toml"
settings = { CRM_WEBHOOK_URL = "https://crm.example/mx" }
secrets = { CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_MX" }
"#,
    )
    .unwrap();
    let line = crm_line(true, registry.all(), "102290129340398");
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.ends_with("# ventas-mx's target, of the same WABA: check it"),
        "{line}"
    );
    let entry = format!(
        "[[number]]\nlabel = \"nuevo-mx\"\nphone_number_id = \"106540352243333\"\n\
         waba_id = \"102290129340398\"\ndisplay_number = \"+52 55 5000 3333\"\n\
         token_key = \"WHATSAPP_ACCESS_TOKEN_MX\"\n{line}\n"
    );
    let parsed =
        Numbers::parse("entry", entry.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{entry}"));
    assert_eq!(parsed.all()[0].crm, registry.all()[0].crm);
    // Locally the local store; a deployment's WABA without a number: a kind to fill in.
    assert!(crm_line(false, registry.all(), "102290129340398").contains("kind = \"local\""));
    let other = crm_line(true, registry.all(), "202290129340398");
    let entry = entry.replace(&line, &other);
    let err = Numbers::parse("entry", entry.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("`crm` needs a `kind`"), "{err}");
}
