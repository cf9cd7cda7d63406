//! Tests of the settings parser and of the settings it reads: horizons, retention, send rate,
//! the Graph API address.

use super::*;

#[test]
fn retry_horizons_default_parse_and_name_a_bad_value() {
    let with = |name: &'static str, value: &'static str| {
        retry_policies(move |n| (n == name).then(|| value.to_string()))
    };
    let (events, sends) = retry_policies(|_| None).unwrap();
    assert_eq!(events.horizon, 7 * DAY);
    assert_eq!(sends.horizon, DAY);
    assert_eq!(
        with(WABRIDGE_RETRY_HORIZON, "36h").unwrap().0.horizon,
        DAY * 3 / 2
    );
    assert_eq!(
        with(WABRIDGE_SEND_RETRY_HORIZON, " 90min ")
            .unwrap()
            .1
            .horizon,
        90 * MINUTE
    );
    for (name, bad) in [
        (WABRIDGE_RETRY_HORIZON, "seven days"),
        (WABRIDGE_RETRY_HORIZON, "10d"),
        (WABRIDGE_RETRY_HORIZON, "30s"),
        (WABRIDGE_RETRY_HORIZON, "7"),
        (WABRIDGE_SEND_RETRY_HORIZON, "4d"),
        (WABRIDGE_SEND_RETRY_HORIZON, "-1h"),
    ] {
        let e = with(name, bad).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { name: n, value, .. } if *n == name && value == bad),
            "{name}={bad}: {e}"
        );
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn retention_defaults_to_30_days_and_rejects_nonsense() {
    let day = 86_400;
    let days = |v| parse_ledger_retention(v).map(|d| d.as_secs() / day);
    assert_eq!(days(None), Ok(30));
    assert_eq!(days(Some("  ")), Ok(30));
    assert_eq!(days(Some("45")), Ok(45));
    for bad in ["0", "-3", "2.5", "thirty", "99999"] {
        let e = days(Some(bad)).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { name, value, .. }
                if *name == WABRIDGE_LEDGER_RETENTION_DAYS && value == bad),
            "{e}"
        );
        assert!(
            e.to_string().contains(WABRIDGE_LEDGER_RETENTION_DAYS),
            "{e}"
        );
    }
}

#[test]
fn a_bad_send_rate_is_an_error_not_the_default() {
    let with = |rate: &str, instances: &str| {
        let (rate, instances) = (rate.to_string(), instances.to_string());
        send_rate(move |n| match n {
            WABRIDGE_SENDS_PER_SECOND => Some(rate.clone()),
            WABRIDGE_SENDER_INSTANCES => Some(instances.clone()),
            _ => None,
        })
    };
    assert_eq!(send_rate(|_| None), Ok((DEFAULT_SENDS_PER_SECOND, 1)));
    assert_eq!(with("20", "2"), Ok((20.0, 2)));
    for (rate, instances, name) in [
        ("abc", "1", WABRIDGE_SENDS_PER_SECOND),
        ("0", "1", WABRIDGE_SENDS_PER_SECOND),
        ("NaN", "1", WABRIDGE_SENDS_PER_SECOND),
        ("80", "0", WABRIDGE_SENDER_INSTANCES),
        ("80", "two", WABRIDGE_SENDER_INSTANCES),
    ] {
        let e = with(rate, instances).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { name: n, .. } if *n == name),
            "{rate}/{instances}: {e}"
        );
    }
}

#[test]
fn settings_trim_treat_blank_as_unset_and_name_what_is_wrong() {
    let s = Settings::new(|n| match n {
        "A" => Some("  7 ".into()),
        "B" => Some("   ".into()),
        "C" => Some("seven".into()),
        _ => None,
    });
    assert_eq!(s.optional("A").as_deref(), Some("7"));
    assert_eq!(s.optional("B"), None);
    assert_eq!(s.number("A", 1u32, "a count", |_| true), Ok(7));
    assert_eq!(s.number("B", 1u32, "a count", |_| true), Ok(1));
    assert_eq!(
        s.number("A", 1u32, "a count from 10", |n| *n >= 10),
        Err(ConfigError::Invalid {
            name: "A",
            value: "7".into(),
            expected: "a count from 10"
        })
    );
    let e = s.number("C", 1u32, "a count", |_| true).unwrap_err();
    assert_eq!(e.to_string(), "C must be a count, got \"seven\"");
    let e = s.required("D", "nothing works").unwrap_err();
    assert_eq!(e.to_string(), "D is not set: nothing works");
}

#[test]
fn graph_api_url_and_version_are_checked() {
    let with = |url: &'static str, version: &'static str| {
        Settings::new(move |n| match n {
            WHATSAPP_API_URL => Some(url.to_string()),
            WHATSAPP_API_VERSION => Some(version.to_string()),
            _ => None,
        })
        .graph_api()
    };
    assert_eq!(
        Settings::new(|_| None).graph_api(),
        Ok((
            DEFAULT_WHATSAPP_API_URL.into(),
            DEFAULT_WHATSAPP_API_VERSION.into()
        ))
    );
    assert_eq!(
        with("http://127.0.0.1:4010/", "v24.0"),
        Ok(("http://127.0.0.1:4010".into(), "v24.0".into()))
    );
    for (url, version, name) in [
        ("graph.facebook.com", "v23.0", WHATSAPP_API_URL),
        ("ftp://graph.facebook.com", "v23.0", WHATSAPP_API_URL),
        ("https://graph.facebook.com", "23", WHATSAPP_API_VERSION),
        ("https://graph.facebook.com", "v23", WHATSAPP_API_VERSION),
        ("https://graph.facebook.com", "v2x.0", WHATSAPP_API_VERSION),
    ] {
        let e = with(url, version).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { name: n, .. } if *n == name),
            "{e}"
        );
    }
}
