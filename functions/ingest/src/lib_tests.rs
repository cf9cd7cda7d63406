//! Tests of ingest's settings.

use super::*;

#[test]
fn settings_name_what_is_missing() {
    let err = Settings::from_lookup(|_| None).unwrap_err();
    assert!(err.to_string().contains("WABRIDGE_TABLE"), "{err}");
    let settings = Settings::from_lookup(|name| match name {
        "WABRIDGE_TABLE" => Some("t".into()),
        "EVENTS_QUEUE_URL" => Some("q".into()),
        "WHATSAPP_APP_SECRET" => Some("s".repeat(32)),
        _ => None,
    })
    .unwrap();
    assert_eq!(settings.table, "t");
    assert!(settings.ingest.app_secret.is_some());
    let err = Settings::from_lookup(|name| match name {
        "WABRIDGE_MAX_BODY_BYTES" => Some("lots".into()),
        _ => Some("x".into()),
    })
    .unwrap_err();
    assert!(err.to_string().contains("WABRIDGE_MAX_BODY_BYTES"), "{err}");
}

#[test]
fn api_settings_are_optional_and_never_logged() {
    let base = |name: &str| match name {
        "WABRIDGE_TABLE" => Some("t".to_string()),
        "EVENTS_QUEUE_URL" => Some("http://q/events".to_string()),
        _ => None,
    };
    let s = Settings::from_lookup(base).unwrap();
    assert_eq!(s.sends_queue_url, None);
    assert!(s.api_keys.is_empty());
    assert!(s.media_bucket.is_none() && s.media_links.is_none());

    // Media: the bucket and the link key, which never shows and must be long enough.
    let key = "media-link-key-0123456789abcdef-0123";
    let s = Settings::from_lookup(|name| match name {
        "MEDIA_BUCKET" => Some("media-b".to_string()),
        "WABRIDGE_MEDIA_LINK_KEY" => Some(key.to_string()),
        other => base(other),
    })
    .unwrap();
    assert_eq!(s.media_bucket.as_deref(), Some("media-b"));
    assert!(s.media_links.is_some());
    assert!(!format!("{s:?}").contains(key));
    let err = Settings::from_lookup(|name| match name {
        "WABRIDGE_MEDIA_LINK_KEY" => Some("short-key".to_string()),
        other => base(other),
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("WABRIDGE_MEDIA_LINK_KEY") && !err.contains("short-key"),
        "{err}"
    );

    let s = Settings::from_lookup(|name| match name {
        "SENDS_QUEUE_URL" => Some("http://q/sends".to_string()),
        "WABRIDGE_API_KEY" => Some("secret-key-123".to_string()),
        "WABRIDGE_TABLE" => Some("t".to_string()),
        "EVENTS_QUEUE_URL" => Some("http://q/events".to_string()),
        _ => None,
    })
    .unwrap();
    assert_eq!(s.sends_queue_url.as_deref(), Some("http://q/sends"));
    assert_eq!(s.api_keys.ids(), ["default"]);
    let shown = format!("{s:?}");
    assert!(!shown.contains("secret-key-123"), "{shown}");

    // Scoped keys from the secret; a bad list stops the cold start, naming it.
    let keys = r#"[{"id": "crm", "scopes": ["sends"], "key": "scoped-key-0123456789"}]"#;
    let s = Settings::from_lookup(|name| match name {
        "WABRIDGE_API_KEYS" => Some(keys.to_string()),
        other => base(other),
    })
    .unwrap();
    assert_eq!(s.api_keys.ids(), ["crm"]);
    assert!(!format!("{s:?}").contains("scoped-key"));
    let err = Settings::from_lookup(|name| match name {
        "WABRIDGE_API_KEYS" => Some(keys.replace("sends", "send")),
        other => base(other),
    })
    .unwrap_err();
    assert!(err.to_string().contains("WABRIDGE_API_KEYS"), "{err}");

    // A blank key is no key (fail closed), not an empty bearer that anyone could send.
    let s = Settings::from_lookup(|name| match name {
        "WABRIDGE_API_KEY" => Some("  ".to_string()),
        other => base(other),
    })
    .unwrap();
    assert!(s.api_keys.is_empty());
}
