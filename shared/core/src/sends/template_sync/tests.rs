//! Page parsing and the sync against a scripted source.

use super::*;
use serde_json::json;

#[test]
fn placeholders_are_distinct_and_well_formed() {
    assert_eq!(
        placeholders("Hola {{1}}, tu pedido {{2}} llega el {{3}}. Gracias {{1}}!"),
        ["1", "2", "3"]
    );
    assert_eq!(
        placeholders("Olá {{first_name}}, use {{ coupon_code }} até {{date}}"),
        ["first_name", "coupon_code", "date"]
    );
    assert!(placeholders("no params, {not one}, {{}} {{a b}} {{").is_empty());
    assert_eq!(placeholders("{{{1}}}"), ["1"]);
}

#[test]
fn only_the_body_counts() {
    let components = [
        json!({"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"}),
        json!({"type": "BODY", "text": "Hola {{1}}, total {{2}}"}),
        json!({"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://x.mx/{{1}}"}]}),
    ];
    assert_eq!(body_parameter_count(&components), 2);
    assert_eq!(
        body_parameter_count(&[json!({"type": "HEADER", "text": "{{1}}"})]),
        0
    );
    let example_only = [json!({"type": "BODY", "example": {"body_text": [["Ana", "1042", "$3"]]}})];
    assert_eq!(body_parameter_count(&example_only), 3);
}

#[test]
fn paging_follows_next_only() {
    let last = json!({"data": [], "paging": {"cursors": {"after": "X", "before": "Y"}}});
    assert_eq!(parse_page(&last).unwrap().next_after, None);
    let more = json!({"data": [], "paging": {"cursors": {"after": "X"}, "next": "https://graph.facebook.com/..."}});
    assert_eq!(parse_page(&more).unwrap().next_after.as_deref(), Some("X"));
    let broken = json!({"data": [], "paging": {"next": "https://graph.facebook.com/..."}});
    assert!(matches!(parse_page(&broken), Err(SyncError::Invalid(_))));
    assert!(matches!(
        parse_page(&json!({"error": {}})),
        Err(SyncError::Invalid(_))
    ));
}

/// One config per WABA, in file order, read as the first of its numbers with a token; a
/// WABA without any token fails closed naming the setting, never a value.
#[test]
fn one_sync_per_waba_with_a_token_of_its_numbers() {
    let entry = |label: &str, id: &str, waba: &str, key: &str| {
        format!(
            "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"{waba}\"\n\
             display_number = \"+52 55 5000 {}\"\ntoken_key = \"{key}\"\n[number.crm]\nkind = \"local\"\n",
            &id[..4]
        )
    };
    let text = entry("a", "1065", "111", "TOKEN_A")
        + &entry("b", "2065", "222", "TOKEN_B")
        + &entry("c", "3065", "111", "TOKEN_C");
    let numbers = crate::numbers::Numbers::parse("numbers.toml", text.as_bytes()).unwrap();
    // A's token is not in the store: WABA 111 reads with C's.
    let secret = |k: &str| (k != "TOKEN_A").then(|| format!("EAAG-{k}"));
    let configs = TemplateSyncConfig::per_waba(|_| None, &numbers, secret).unwrap();
    let got: Vec<(&str, &str)> = configs
        .iter()
        .map(|c| (c.waba_id.as_str(), c.access_token.as_str()))
        .collect();
    assert_eq!(got, [("111", "EAAG-TOKEN_C"), ("222", "EAAG-TOKEN_B")]);
    let err = TemplateSyncConfig::per_waba(
        |_| None,
        &numbers,
        |k: &str| (k == "TOKEN_A").then(|| "EAAG-secret".to_string()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(config::WHATSAPP_ACCESS_TOKEN), "{err}");
    assert!(!err.contains("EAAG"), "{err}");
}

#[test]
fn config_fails_closed_and_builds_the_url() {
    let err = TemplateSyncConfig::from_lookup(|n| {
        (n == config::WHATSAPP_ACCESS_TOKEN).then(|| "EAAB".into())
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(config::WHATSAPP_BUSINESS_ACCOUNT_ID),
        "{err}"
    );
    let err = TemplateSyncConfig::from_lookup(|n| {
        (n == config::WHATSAPP_BUSINESS_ACCOUNT_ID).then(|| "102290129340398".into())
    })
    .unwrap_err();
    assert!(
        err.to_string().contains(config::WHATSAPP_ACCESS_TOKEN),
        "{err}"
    );
    let ok = TemplateSyncConfig::from_lookup(|n| match n {
        config::WHATSAPP_BUSINESS_ACCOUNT_ID => Some("102290129340398".into()),
        config::WHATSAPP_ACCESS_TOKEN => Some("EAAB".into()),
        config::WHATSAPP_API_URL => Some("http://127.0.0.1:9/".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        ok.templates_url(),
        "http://127.0.0.1:9/v23.0/102290129340398/message_templates"
    );
    assert!(TemplateSyncConfig::from_lookup(|n| match n {
        config::WHATSAPP_BUSINESS_ACCOUNT_ID => Some("../me".into()),
        config::WHATSAPP_ACCESS_TOKEN => Some("EAAB".into()),
        _ => None,
    })
    .is_err());
}
