use std::time::Duration;

use super::*;

const NOW: i64 = 1_763_000_000_000;

fn request() -> ConversionRequest {
    ConversionRequest {
        contact_id: Some("c1".into()),
        value: Some(1200.0),
        currency: Some("mxn".into()),
        event_id: Some("deal-42".into()),
        ..Default::default()
    }
}

#[test]
fn valid_request_defaults_to_purchase_now() {
    let c = request().validate(NOW).unwrap();
    assert_eq!(c.event_name, "Purchase");
    assert_eq!(c.currency, "MXN");
    assert_eq!(c.event_time, NOW / 1000);
}

#[test]
fn each_bad_field_is_named() {
    type Breaks = Box<dyn Fn(&mut ConversionRequest)>;
    let cases: Vec<(&str, Breaks)> = vec![
        ("contact_id", Box::new(|r| r.contact_id = None)),
        (
            "event_id",
            Box::new(|r| r.event_id = Some("has space".into())),
        ),
        ("event_id", Box::new(|r| r.event_id = Some("x".repeat(129)))),
        ("value", Box::new(|r| r.value = None)),
        ("value", Box::new(|r| r.value = Some(-1.0))),
        ("currency", Box::new(|r| r.currency = Some("PESOS".into()))),
        (
            "event_name",
            Box::new(|r| r.event_name = Some("Lead".into())),
        ),
        (
            "event_time",
            Box::new(|r| r.event_time = Some(NOW / 1000 - 8 * 86_400)),
        ),
        (
            "event_time",
            Box::new(|r| r.event_time = Some(NOW / 1000 + 3600)),
        ),
    ];
    for (field, edit) in cases {
        let mut r = request();
        edit(&mut r);
        assert_eq!(r.validate(NOW).unwrap_err().field, field);
    }
}

#[test]
fn body_has_the_documented_shape() {
    let meta = MetaConversions::new("http://127.0.0.1:1/", "v23.0", "123", "tok", Some("waba1"));
    assert_eq!(meta.events_url(), "http://127.0.0.1:1/v23.0/123/events");
    let b = meta.body(&request().validate(NOW).unwrap(), "clid");
    let e = &b["data"][0];
    assert_eq!(e["action_source"], "business_messaging");
    assert_eq!(e["messaging_channel"], "whatsapp");
    assert_eq!(e["event_name"], "Purchase");
    assert_eq!(e["event_id"], "deal-42");
    assert_eq!(e["user_data"]["ctwa_clid"], "clid");
    assert_eq!(e["user_data"]["whatsapp_business_account_id"], "waba1");
    assert_eq!(e["custom_data"]["currency"], "MXN");
    assert_eq!(e["custom_data"]["value"], 1200.0);
    assert!(!format!("{meta:?}").contains("tok"));
}

#[test]
fn backoff_is_jittered_capped_and_honours_retry_after() {
    let p = RetryPolicy {
        attempts: 5,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };
    for attempt in 1..10 {
        let d = p.delay(attempt, None);
        assert!(d <= Duration::from_secs(1));
        assert!(d <= Duration::from_millis(100) * (1 << (attempt - 1)));
    }
    assert!(p.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
}

#[test]
fn not_configured_without_dataset_or_token() {
    assert!(MetaConversions::from_lookup(|_| None).unwrap().is_none());
    let m = MetaConversions::from_lookup(|n| match n {
        "META_DATASET_ID" => Some("99".into()),
        "WHATSAPP_ACCESS_TOKEN" => Some("t".into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    assert_eq!(m.events_url(), "https://graph.facebook.com/v23.0/99/events");
}

#[test]
fn a_bad_conversions_url_is_an_error_even_when_conversions_are_off() {
    let Err(e) = MetaConversions::from_lookup(|n| {
        (n == "META_CONVERSIONS_API_URL").then(|| "graph.facebook.com".to_string())
    }) else {
        panic!("a URL without a scheme was taken");
    };
    assert!(e.to_string().contains("META_CONVERSIONS_API_URL"), "{e}");
}
