use super::*;
use crate::numbers::{Number, UnknownNumbers};

const FILE: &str = r#"
unknown_numbers = "soporte-co"

[[number]]
label = "ventas-mx"
phone_number_id = "106540352242922"
waba_id = "102290129340398"
display_number = "+52 55 5000 1111"
token_key = "WHATSAPP_ACCESS_TOKEN_MX"
sends_per_second = 40
business_hours = { timezone = "America/Mexico_City", days = ["mon", "fri"], open = "09:00", close = "18:00" }
crm = { kind = "local" }

[[number]]
label = "soporte-co"
phone_number_id = "206540352242922"
waba_id = "202290129340398"
display_number = "+57 601 500 2222"
token_key = "WHATSAPP_ACCESS_TOKEN_CO"
[number.crm]
kind = "webhook"
settings = { CRM_WEBHOOK_URL = "https://erp.example.co/hook" }
secrets = { CRM_WEBHOOK_SECRET = "CRM_WEBHOOK_SECRET_CO" }
"#;

#[test]
fn a_file_split_into_items_joins_back_to_the_same_registry() {
    let split = split("numbers.toml", FILE.as_bytes()).unwrap();
    let labels: Vec<&str> = split.entries.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(labels, ["ventas-mx", "soporte-co"]);
    assert_eq!(split.entries[1].phone_number_id, "206540352242922");
    assert!(
        split.entries[0].text.starts_with("[[number]]"),
        "{}",
        split.entries[0].text
    );
    assert!(!split.entries[0].text.contains("soporte-co"));
    let settings = split.settings.as_deref().unwrap();
    assert_eq!(settings.trim(), r#"unknown_numbers = "soporte-co""#);

    let joined = join("table t", Some(settings), &split.entries)
        .unwrap()
        .unwrap();
    let (a, b) = (split.numbers.all(), joined.all());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        // Lines differ (the items are laid out anew); everything else is the file's.
        assert_eq!(
            Number {
                line: 0,
                ..x.clone()
            },
            Number {
                line: 0,
                ..y.clone()
            }
        );
    }
    assert_eq!(b[0].sends_per_second, 40.0);
    assert!(b[0].business_hours.is_some());
    assert_eq!(joined.unknown, UnknownNumbers::RouteTo("soporte-co".into()));
    assert_eq!(
        join("table t", None, &[]).unwrap(),
        None,
        "no items, no registry"
    );
}

#[test]
fn a_file_that_does_not_check_is_not_split() {
    let bad = FILE.replace("\"206540352242922\"", "\"20654-CO\"");
    let err = split("numbers.toml", bad.as_bytes()).unwrap_err();
    assert_eq!(err.line, Some(16), "{err}");
    assert!(err.problem.contains("`phone_number_id`"), "{err}");
}

fn entries() -> Vec<Entry> {
    split("numbers.toml", FILE.as_bytes()).unwrap().entries
}

#[test]
fn a_bad_item_is_refused_naming_its_label_line_and_field() {
    let mut items = entries();
    items[1].text = items[1]
        .text
        .replace("WHATSAPP_ACCESS_TOKEN_CO", "EAAGsecret.token");
    let err = join("table t", None, &items).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("table t, item `soporte-co`"), "{shown}");
    assert!(shown.contains("line "), "{shown}");
    assert!(shown.contains("`token_key`"), "{shown}");
    assert!(
        !shown.contains("EAAGsecret"),
        "never quotes a pasted token: {shown}"
    );

    let mut items = entries();
    items[0].text = "[[number]]\nlabel = \"ventas-mx\"\n".into();
    let err = join("table t", None, &items).unwrap_err().to_string();
    assert!(
        err.contains("item `ventas-mx`") && err.contains("phone_number_id"),
        "{err}"
    );

    let mut items = entries();
    items[0].text = "not toml at all [".into();
    let err = join("table t", None, &items).unwrap_err().to_string();
    assert!(
        err.contains("item `ventas-mx`") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn items_that_clash_are_refused_naming_both() {
    let mut items = entries();
    items[1].text = items[1].text.replace("206540352242922", "106540352242922");
    let err = join("table t", None, &items).unwrap_err().to_string();
    assert!(
        err.contains("item `soporte-co`")
            && err.contains("`phone_number_id` duplicates item `ventas-mx`"),
        "{err}"
    );

    let mut items = entries();
    items[1].label = "otro".into();
    let err = join("table t", None, &items).unwrap_err().to_string();
    assert!(err.contains("is not the item's label"), "{err}");

    // The settings name a number no item holds.
    let err = join(
        "table t",
        Some("unknown_numbers = \"gone\""),
        &entries()[..1],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("table t, settings") && err.contains("unknown_numbers"),
        "{err}"
    );
}
